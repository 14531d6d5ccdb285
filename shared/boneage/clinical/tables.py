"""Reference tables behind the clinical interpretation, each with its source.

Greulich & Pyle / Brush Foundation: mean skeletal age and its standard deviation by chronological
age and sex, published with the atlas (Greulich WW, Pyle SI. Radiographic Atlas of Skeletal
Development of the Hand and Wrist, 2nd ed. Stanford University Press, 1959, Tables V (boys) and VI
(girls)). Public transcriptions of these tables disagree at a few points (e.g. boys 12 months SD
1.97 vs 2.1; girls 12 y SD 10.24 vs 14.0). We use ONE transcription, the one recorded in the team's
domain brief (``shared/reference/domain.md``), and the tests pin its values so that any change is
deliberate. Ages and values are in months.

Bayley-Pinneau: percent of mature (adult) height attained at a given bone age (Bayley N, Pinneau
SR. Tables for predicting adult height from skeletal age: revised for use with the Greulich-Pyle
hand standards. J Pediatr 1952;40:423-441; reprinted in the GP atlas). Only the excerpt of the
*average* tables (BA within one year of CA) that we could verify offline is carried here; the
accelerated and retarded tables are NOT transcribed, so predictions that need them return null with
a reason rather than a number from an unverified source.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GP_SOURCE = (
    "Greulich & Pyle 1959, Brush Foundation means and SDs (Tables V/VI), "
    "transcription in shared/reference/domain.md"
)
BP_SOURCE = (
    "Bayley & Pinneau, J Pediatr 1952;40:423 (reprinted in the Greulich & Pyle atlas), "
    "average-table excerpt in shared/reference/domain.md"
)


@dataclass(frozen=True)
class ReferenceTable:
    """Mean and SD of bone age (months) at tabulated chronological ages (months), one sex."""

    name: str
    source: str
    age_months: np.ndarray
    mean_months: np.ndarray
    sd_months: np.ndarray

    @property
    def min_age_months(self) -> float:
        return float(self.age_months[0])

    @property
    def max_age_months(self) -> float:
        return float(self.age_months[-1])

    def at(self, chronological_age_months: float) -> tuple[float, float]:
        """Mean and SD at ``chronological_age_months``, linearly interpolated; the caller checks range."""
        mean = float(np.interp(chronological_age_months, self.age_months, self.mean_months))
        sd = float(np.interp(chronological_age_months, self.age_months, self.sd_months))
        return mean, sd


def _table(name: str, rows: list[tuple[float, float, float]]) -> ReferenceTable:
    ages, means, sds = (np.array(col, dtype=np.float64) for col in zip(*rows, strict=True))
    assert np.all(np.diff(ages) > 0), "reference ages must increase"
    return ReferenceTable(name=name, source=GP_SOURCE, age_months=ages, mean_months=means, sd_months=sds)


# (chronological age months, mean bone age months, SD months)
GP_BOYS = _table(
    "Greulich-Pyle/Brush Foundation boys",
    [
        (3, 3.01, 0.69), (6, 6.09, 1.13), (9, 9.56, 1.43), (12, 12.74, 1.97),
        (18, 19.36, 3.52), (24, 25.97, 3.92), (30, 32.40, 4.52), (36, 38.21, 5.08),
        (42, 43.89, 5.40), (48, 49.04, 6.66), (54, 56.00, 8.36), (60, 62.43, 8.79),
        (72, 75.46, 9.17), (84, 88.20, 8.91), (96, 101.38, 9.10), (108, 113.90, 9.00),
        (120, 125.68, 9.79), (132, 137.32, 10.09), (144, 148.82, 10.38), (156, 158.39, 10.44),
        (168, 170.02, 10.72), (180, 182.72, 11.32), (192, 195.32, 12.86), (204, 206.21, 13.05),
    ],
)
GP_GIRLS = _table(
    "Greulich-Pyle/Brush Foundation girls",
    [
        (3, 3.02, 0.72), (6, 6.04, 1.16), (9, 9.05, 1.36), (12, 12.04, 1.77),
        (18, 18.22, 3.49), (24, 24.16, 4.64), (30, 30.96, 5.37), (36, 36.63, 5.97),
        (42, 43.50, 7.48), (48, 50.14, 8.98), (54, 60.06, 10.73), (60, 66.21, 11.65),
        (72, 78.50, 10.23), (84, 89.30, 9.64), (96, 100.66, 10.23), (108, 113.86, 10.74),
        (120, 125.66, 11.73), (132, 137.86, 11.94), (144, 149.62, 10.24), (156, 162.28, 10.67),
        (168, 174.25, 11.30), (180, 183.62, 9.23), (192, 189.44, 7.31),
    ],
)
GP_TABLES: dict[str, ReferenceTable] = {"M": GP_BOYS, "F": GP_GIRLS}


@dataclass(frozen=True)
class MatureHeightTable:
    """Percent of mature height attained by bone age (months), one sex, one maturity pattern."""

    name: str
    source: str
    bone_age_months: np.ndarray
    percent: np.ndarray

    def percent_at(self, bone_age_months: float) -> float:
        return float(np.interp(bone_age_months, self.bone_age_months, self.percent))


def _bp(name: str, rows: list[tuple[float, float]]) -> MatureHeightTable:
    years, pct = (np.array(col, dtype=np.float64) for col in zip(*rows, strict=True))
    return MatureHeightTable(name=name, source=BP_SOURCE, bone_age_months=years * 12.0, percent=pct)


# (bone age years, percent of mature height); the excerpt is sparse, so values between points are
# linear interpolations, not table entries (documented in docs/clinical.md).
BP_AVERAGE: dict[str, MatureHeightTable] = {
    "M": _bp(
        "Bayley-Pinneau average, boys",
        [(7, 69.5), (10, 78.4), (12, 83.4), (13, 87.6), (14, 92.7), (15, 96.8), (16, 98.2),
         (17, 99.1), (18.5, 100.0)],
    ),
    "F": _bp(
        "Bayley-Pinneau average, girls",
        [(6, 72.0), (8, 79.0), (10, 86.2), (11, 90.6), (12, 92.2), (13, 95.8), (14, 98.0),
         (15, 99.0), (16, 99.6), (18, 100.0)],
    ),
}

# BA - CA thresholds that pick the Bayley-Pinneau table (Bayley & Pinneau 1952): one year either way.
BP_ACCELERATED_MONTHS = 12.0
BP_RETARDED_MONTHS = -12.0
