"""Skeletal maturity timings that drive the hand phantom, by sex, in months of bone age.

Every centre of the hand and wrist goes through the same stages, each starting at a sex-specific
bone age: absent -> appears as a small dot -> grows until it is as wide as its metaphysis -> caps
the metaphysis -> fuses (the physis closes). ``EpiphysisTiming`` holds those ages for one family
of centres, ``CARPAL_ONSET`` the appearance ages of the carpal bones.

Sources (approximate; see ``/work/shared/reference/domain.md``):
- carpal and radius/ulna appearance ages: radiopaedia "ossification centres of the wrist",
  fpnotebook HndGrwthPlts, Gilsanz & Ratib "Hand bone age" atlas;
- phalangeal/metacarpal epiphyses appear girls 10 mo-2 y, boys 14 mo-3 y, proximal phalanges first,
  then metacarpals, middle and distal phalanges (same sources);
- puberty (girls 7-13 y, boys 9-14 y): epiphyses reach the width of the metaphyses, then cap them;
- fusion: hand epiphyses girls 12-18 y, boys 16-18 y (distal phalanges first); distal radius
  16-18 y, distal ulna 17-20 y, girls 1-2 y earlier; the distal radius and ulna close last, and the
  GP standards end (girls 18 y, boys 19 y) where the hand and wrist are fully fused. So below the end
  of the standards a hand still shows a thin lucent, partly bridged physis at the distal radius/ulna,
  and past it (an adult) no physis is left: the epiphysis has merged into the metaphysis, at most a
  faint sclerotic scar line marks it (Greulich & Pyle 1959, last plates; domain brief "Fusion");
- thumb adductor sesamoid: appears at the start of puberty, about 11 y girls, 13 y boys
  (Greulich & Pyle 1959 plate descriptions; radiopaedia "sesamoid bones of the hand").
- GP standard deviations of bone age for chronological age and sex: Brush Foundation data in
  Greulich & Pyle 1959 Tables V/VI, as transcribed in the domain brief.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Bone age (months) at which the skeleton counts as mature: the end of the GP range.
MATURE_MONTHS = {False: 216.0, True: 228.0}  # keyed by ``male``

# Appearance of the carpal ossification centres, (girls, boys), months.
CARPAL_ONSET: dict[str, tuple[float, float]] = {
    "capitate": (2.0, 3.0),
    "hamate": (3.0, 4.0),
    "triquetrum": (21.0, 30.0),   # 1.5-2 y girls, 2-3 y boys
    "lunate": (33.0, 48.0),       # 2.5-3 y girls, 4 y boys
    "scaphoid": (48.0, 69.0),     # 4 y girls, 5.5-6 y boys
    "trapezium": (48.0, 69.0),
    "trapezoid": (50.0, 72.0),
    "pisiform": (111.0, 138.0),   # 9-9.5 y girls, 11-12 y boys
}

# Bone age at which a carpal bone reaches its adult size (end of puberty).
CARPAL_MATURE = (168.0, 192.0)

SESAMOID_ONSET = (132.0, 156.0)


@dataclass(frozen=True)
class EpiphysisTiming:
    """Stage ages (months) of one family of epiphyses for one sex."""

    onset: float      # the centre appears
    full_width: float  # as wide as the metaphysis
    capping: float    # capping complete
    fusion: float     # fusion begins; complete ``FUSION_SPAN`` months later


FUSION_SPAN = 12.0

# (girls, boys). Hand epiphyses: proximal phalanges appear first, then metacarpals, middle, distal;
# distal phalanges fuse first.
EPIPHYSES: dict[str, tuple[EpiphysisTiming, EpiphysisTiming]] = {
    "proximal": (EpiphysisTiming(10, 100, 138, 168), EpiphysisTiming(14, 126, 162, 198)),
    "metacarpal": (EpiphysisTiming(14, 104, 140, 168), EpiphysisTiming(21, 130, 164, 198)),
    "middle": (EpiphysisTiming(18, 106, 142, 172), EpiphysisTiming(28, 132, 166, 202)),
    "distal": (EpiphysisTiming(22, 100, 136, 156), EpiphysisTiming(34, 126, 160, 186)),
    "radius": (EpiphysisTiming(12, 118, 150, 186), EpiphysisTiming(12, 142, 174, 204)),
    "ulna": (EpiphysisTiming(62, 132, 160, 192), EpiphysisTiming(70, 156, 184, 210)),
}

# The physes that close last (domain brief: distal radius 16-18 y, distal ulna 17-20 y, after the hand's).
LAST_TO_FUSE = ("radius", "ulna")
# Below the end of the standards these keep at least this much of their open gap: a thin lucent line,
# partly bridged, however far a centre's own jitter runs ahead of the hand's bone age.
RESIDUAL_GAP = 0.4


def physis_gap(gap: float, family: str, bone_age: float, male: bool) -> float:
    """The physis gap a centre shows, given the hand's bone age (not the centre's jittered one).

    Past the end of the standards (an adult) every physis is closed (0); before it the distal radius
    and ulna are never completely closed (at least ``RESIDUAL_GAP``); other centres keep ``gap``.
    """
    if bone_age >= MATURE_MONTHS[male]:
        return 0.0
    if family in LAST_TO_FUSE:
        return max(gap, RESIDUAL_GAP)
    return gap


# GP SD of bone age for chronological age, (age months, girls SD, boys SD); ages beyond the table
# use its last row (girls end at 16 y in the source; the boys' 16 y row is carried to 17 y there).
_GP_SD = np.array([
    # age, girls, boys
    (3, 0.72, 0.69), (6, 1.16, 1.13), (9, 1.36, 1.43), (12, 1.77, 1.97), (18, 3.49, 3.52),
    (24, 4.64, 3.92), (30, 5.37, 4.52), (36, 5.97, 5.08), (42, 7.48, 5.40), (48, 8.98, 6.66),
    (54, 10.73, 8.36), (60, 11.65, 8.79), (72, 10.23, 9.17), (84, 9.64, 8.91), (96, 10.23, 9.10),
    (108, 10.74, 9.00), (120, 11.73, 9.79), (132, 11.94, 10.09), (144, 10.24, 10.38),
    (156, 10.67, 10.44), (168, 11.30, 10.72), (180, 9.23, 11.32), (192, 7.31, 12.86),
    (204, 7.31, 13.05),
])


def gp_sd_months(age_months: float, male: bool) -> float:
    """The GP (Brush Foundation) SD of bone age at this age and sex, linearly interpolated."""
    column = 2 if male else 1
    return float(np.interp(age_months, _GP_SD[:, 0], _GP_SD[:, column]))


def smoothstep(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3.0 - 2.0 * x)


@dataclass(frozen=True)
class EpiphysisState:
    """What one epiphysis looks like at a given (jittered) bone age."""

    present: bool
    width: float   # across the bone, as a fraction of the metaphysis width
    capping: float  # 0 = flat disc beside the metaphysis, 1 = fully capped
    gap: float     # physis gap as a fraction of its open width (1 = open, 0 = fused)


def epiphysis_state(age: float, timing: EpiphysisTiming) -> EpiphysisState:
    if age < timing.onset:
        return EpiphysisState(False, 0.0, 0.0, 1.0)
    # Grows from a dot (a fifth of the metaphysis) to its full width; width growth slows near the end.
    grow = (age - timing.onset) / max(timing.full_width - timing.onset, 1.0)
    width = 0.2 + 0.8 * min(grow, 1.0) ** 0.8 + 0.08 * smoothstep((age - timing.full_width) / 24.0)
    capping = smoothstep((age - (timing.capping - 30.0)) / 30.0)
    gap = 1.0 - smoothstep((age - timing.fusion) / FUSION_SPAN)
    return EpiphysisState(True, width, capping, gap)


def carpal_size(age: float, name: str, male: bool) -> float:
    """Size of a carpal bone as a fraction of its adult size (0 when not yet ossified)."""
    onset = CARPAL_ONSET[name][int(male)]
    if age < onset:
        return 0.0
    mature = CARPAL_MATURE[int(male)]
    return 0.12 + 0.88 * min((age - onset) / max(mature - onset, 1.0), 1.0) ** 0.75


def ossified_fraction(age: float, male: bool) -> float:
    """Share of a long bone's length that is ossified shaft (the rest is cartilage and epiphysis).

    At birth the cartilaginous ends take a quarter of the bone; by maturity almost none.
    """
    mature = MATURE_MONTHS[male]
    return 0.74 + 0.2 * min(age / mature, 1.0) ** 0.7


# Hand length relative to an adult male's, by maturity fraction (bone age / mature age).
# Rough growth curve: a newborn's hand is about a third of an adult's length (~6 of ~19 cm).
_GROWTH = np.array([(0.0, 0.33), (0.05, 0.42), (0.12, 0.5), (0.25, 0.58), (0.4, 0.66), (0.55, 0.74),
                    (0.7, 0.84), (0.85, 0.95), (1.0, 1.0)])


def hand_growth(age: float, male: bool) -> float:
    frac = min(max(age / MATURE_MONTHS[male], 0.0), 1.2)
    scale = float(np.interp(frac, _GROWTH[:, 0], _GROWTH[:, 1]))
    return scale * (1.0 if male else 0.92)
