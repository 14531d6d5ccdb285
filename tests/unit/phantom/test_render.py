"""render_sample: determinism, every kind drawn as labelled, anatomy maturing with age and sex."""

from __future__ import annotations

import numpy as np
import pytest
from boneage.errors import Rejection
from boneage.phantom import KINDS, render_sample
from boneage.phantom import maturity as mat
from boneage.phantom.render import sample_chronological_age

from .measure import (bone_layer, carpal_area, carpal_centres, hand_centres, physis_gaps, physis_profile,
                      radius_epiphysis_ratio)

SIZE = 192


def render(seed: int, **kwargs):
    return render_sample(np.random.default_rng(seed), size=kwargs.pop("size", SIZE), **kwargs)


def test_same_seed_gives_identical_image_and_labels():
    for kind in KINDS:
        a, la = render(11, kind=kind)
        b, lb = render(11, kind=kind)
        assert np.array_equal(a, b) and la == lb


def test_different_seeds_give_different_images():
    a, _ = render(1)
    b, _ = render(2)
    assert not np.array_equal(a, b)


def test_image_is_float32_square_in_unit_range():
    for seed in range(12):
        img, labels = render(seed, kind=KINDS[seed % len(KINDS)], size=160)
        assert img.dtype == np.float32 and img.shape == (160, 160)
        assert 0.0 <= float(img.min()) and float(img.max()) <= 1.0
        assert labels["pixel_spacing_mm"] > 0


@pytest.mark.parametrize("kind,hands", [("left", 1), ("right", 1), ("adult", 1), ("two_hands", 2), ("non_hand", 0)])
def test_each_kind_has_its_number_of_hand_boxes_inside_the_image(kind, hands):
    for seed in range(15):
        _, labels = render(seed, kind=kind)
        assert labels["kind"] == kind
        assert len(labels["hand_boxes"]) == hands
        for x0, y0, x1, y1 in labels["hand_boxes"]:
            assert 0 <= x0 < x1 <= SIZE and 0 <= y0 < y1 <= SIZE
            # A hand is a good part of the film, not a speck.
            assert (x1 - x0) * (y1 - y0) > 0.08 * SIZE * SIZE


def test_two_hands_are_side_by_side_and_do_not_overlap():
    for seed in range(10):
        _, labels = render(seed, kind="two_hands")
        (a, b) = labels["hand_boxes"]
        overlap_x = min(a[2], b[2]) - max(a[0], b[0])
        assert overlap_x < 0.1 * SIZE


def test_hand_box_encloses_the_hand_on_a_clean_film():
    for seed, kind in enumerate(["left", "right", "adult", "left"]):
        img, labels = render(seed, kind=kind, nuisance=False, bone_age_months=30.0 + 50 * seed if kind != "adult" else None)
        x0, y0, x1, y1 = labels["hand_boxes"][0]
        tissue = img > 0.15  # soft tissue and bone; the clean background is 0.03
        ys, xs = np.nonzero(tissue[: int(y1)])  # above the box's lower edge the forearm is cut off
        assert xs.min() >= x0 - 2 and xs.max() <= x1 + 2 and ys.min() >= y0 - 2
        # and it is tight: tissue reaches close to its top (fingertips) and sides
        assert ys.min() <= y0 + 0.05 * SIZE


def test_right_hand_is_the_mirror_image_of_the_left():
    left, ll = render(5, kind="left", nuisance=False, bone_age_months=100.0, male=True)
    right, lr = render(5, kind="right", nuisance=False, bone_age_months=100.0, male=True)
    assert lr["mirrored"] and not ll["mirrored"]
    # Up to the half-pixel sampling offsets, the right hand is the left one flipped; unflipped, the
    # thumb and the radius sit on the wrong side.
    mirrored = float(np.abs(right - left[:, ::-1]).mean())
    same = float(np.abs(right - left).mean())
    assert mirrored < 0.25 * same, (mirrored, same)


def test_inverted_films_are_flagged_and_have_a_bright_background():
    seen = {True: [], False: []}
    for seed in range(80):
        img, labels = render(seed, kind="left", size=96)
        seen[labels["inverted"]].append(float(np.median(img)))
    assert seen[True], "no inverted film in 80 samples"
    assert np.median(seen[True]) > np.median(seen[False]) + 0.3


def test_nuisance_rotation_covers_at_least_25_degrees_each_way():
    rotations = [render(seed, size=48)[1]["rotation_deg"] for seed in range(60)]
    assert min(rotations) < -25 and max(rotations) > 25


def test_adult_hands_are_at_or_beyond_skeletal_maturity():
    for seed in range(10):
        _, labels = render(seed, kind="adult", size=64)
        assert labels["boneage"] >= mat.MATURE_MONTHS[labels["male"]]


@pytest.mark.parametrize("kwargs", [{"kind": "foot"}, {"bone_age_months": -1.0}, {"bone_age_months": float("nan")},
                                    {"size": 16}])
def test_bad_arguments_are_typed_rejections(kwargs):
    with pytest.raises(Rejection) as err:
        render(0, **kwargs)
    assert err.value.reason == "invalid_phantom_request"


def test_chronological_age_scatters_by_the_gp_sd_for_age_and_sex():
    rng = np.random.default_rng(0)
    for ba, male in ((120.0, True), (60.0, False)):
        dev = np.array([ba - sample_chronological_age(rng, ba, male) for _ in range(4000)])
        sd = mat.gp_sd_months(ba, male)
        assert abs(dev.mean()) < 0.1 * sd
        assert dev.std() == pytest.approx(sd, rel=0.06)


# --- maturity, measured on the drawn bone layer -------------------------------------------------

CHILDREN = range(4)


def mean_over_children(fn, bone_age: float, male: bool) -> float:
    return float(np.mean([fn(bone_layer(bone_age, male, c)) for c in CHILDREN]))


def test_carpal_centres_appear_with_age():
    for male in (False, True):
        counts = [mean_over_children(carpal_centres, ba, male) for ba in (1.0, 12.0, 40.0, 90.0)]
        assert counts == sorted(counts) and counts[-1] - counts[0] >= 4, counts


def test_girls_show_more_carpal_centres_than_boys_at_the_same_bone_age():
    for ba in (36.0, 60.0):
        girls = mean_over_children(carpal_centres, ba, False)
        boys = mean_over_children(carpal_centres, ba, True)
        assert girls > boys, (ba, girls, boys)


def test_ossified_carpal_area_grows_with_age_and_girls_lead():
    ages = (6.0, 24.0, 60.0, 108.0, 168.0)
    for male in (False, True):
        areas = [mean_over_children(carpal_area, ba, male) for ba in ages]
        assert all(b > a * 1.1 for a, b in zip(areas, areas[1:])), areas
    for ba in (24.0, 60.0, 108.0):
        assert mean_over_children(carpal_area, ba, False) > mean_over_children(carpal_area, ba, True)


def test_epiphyses_appear_in_toddlers_and_fuse_in_adolescence():
    for male in (False, True):
        infant, child, adult = (mean_over_children(hand_centres, ba, male)
                                for ba in (2.0, 100.0, mat.MATURE_MONTHS[male] + 6))
        # Separate pieces: shafts only -> shafts + epiphyses -> epiphyses fused onto their shafts.
        assert child > infant + 12 and adult < child - 12, (infant, child, adult)


def test_fusion_comes_earlier_in_girls():
    girls = mean_over_children(hand_centres, 186.0, False)
    boys = mean_over_children(hand_centres, 186.0, True)
    assert girls < boys - 5


def test_no_single_feature_gives_the_age_away():
    # Children a year apart overlap in carpal area: individual variation, not a lookup table.
    younger = [carpal_area(bone_layer(96.0, False, c)) for c in range(10, 22)]
    older = [carpal_area(bone_layer(108.0, False, c)) for c in range(10, 22)]
    assert max(younger) > min(older)
    assert np.mean(older) > np.mean(younger)


def test_radius_epiphysis_appears_widens_caps_and_fuses():
    def ratios(ba: float, male: bool) -> list[float | None]:
        return [radius_epiphysis_ratio(bone_layer(ba, male, c)) for c in range(3)]

    for male in (False, True):
        assert ratios(6.0, male) == [None] * 3  # not yet ossified
        growing = [float(np.mean(ratios(ba, male))) for ba in (18.0, 48.0, 96.0, 150.0)]
        assert growing == sorted(growing) and growing[0] < 0.4 and growing[-1] > 1.0, growing  # wider than its metaphysis: capping
        assert ratios(mat.MATURE_MONTHS[male] + 6, male) == [None] * 3  # fused into the shaft
    assert np.mean(ratios(48.0, False)) > np.mean(ratios(48.0, True))
    # Girls fuse first: at 200 months their radial physis has narrowed to a thin line, boys' is still open.
    girls = [min(physis_gaps(physis_profile(200.0, False, c)), default=0.0) for c in range(6)]
    boys = [min(physis_gaps(physis_profile(200.0, True, c)), default=0.0) for c in range(6)]
    assert np.mean(girls) < np.mean(boys) - 0.3, (girls, boys)


@pytest.mark.parametrize("male", [False, True])
@pytest.mark.parametrize("bone", ["radius", "ulna"])
def test_a_near_mature_child_still_shows_a_lucent_physis_at_the_distal_radius_and_ulna(male, bone):
    # The distal radius and ulna close last; the standards end where they have fused (girls 18 y, boys 19 y).
    # Three and six months before that end, and whatever the centre's own jitter, a thin lucent line is left.
    for months_before in (6.0, 3.0, 0.5):
        for child in range(8):
            gaps = physis_gaps(physis_profile(mat.MATURE_MONTHS[male] - months_before, male, child, bone))
            assert gaps and max(gaps) >= 0.3, (months_before, child, gaps)


@pytest.mark.parametrize("male", [False, True])
@pytest.mark.parametrize("bone", ["radius", "ulna"])
def test_an_adult_hand_has_no_physeal_gap_left(male, bone):
    # Past the end of the standards the epiphysis has merged into the metaphysis: no lucent line at all,
    # from just past the end to five years on, for every individual (their per-centre jitter included).
    for months_after in (0.5, 12.0, 60.0):
        for child in range(8):
            profile = physis_profile(mat.MATURE_MONTHS[male] + months_after, male, child, bone)
            assert physis_gaps(profile) == [], (months_after, child)
            # ... and the bone goes on from the shaft through the merged epiphysis up to the joint.
            assert (profile > 0.3).sum() > (physis_profile(mat.MATURE_MONTHS[male] - 1.0, male, child, bone) > 0.3).sum() - 5


def test_the_same_hand_just_below_and_just_past_the_end_of_the_standards_differs_at_the_physis():
    # The card's old complaint: one generator seed drew near-identical films at 224 and 280 months.
    for male in (False, True):
        end = mat.MATURE_MONTHS[male]
        for child in range(4):
            assert physis_gaps(physis_profile(end - 4.0, male, child)) and not physis_gaps(physis_profile(end + 52.0, male, child))


def test_hand_grows_with_age_on_a_fixed_scale_film():
    heights = []
    for ba in (6.0, 48.0, 120.0, 200.0):
        boxes = [render(c, kind="left", nuisance=False, bone_age_months=ba, male=True)[1]["hand_boxes"][0] for c in range(3)]
        heights.append(float(np.mean([b[3] - b[1] for b in boxes])))
    assert all(b > a * 1.1 for a, b in zip(heights, heights[1:])), heights


def test_labels_are_plain_json():
    import json

    for kind in KINDS:
        _, labels = render(3, kind=kind, male=np.bool_(True), size=64)
        assert json.loads(json.dumps(labels)) == labels


def test_render_cost_stays_within_a_loose_cpu_budget():
    # The budget is ~20 ms per 256-512 px image on one core; this only catches gross regressions
    # (CPU time, so other jobs on a shared machine matter less than for wall time).
    import time

    rng = np.random.default_rng(0)
    render_sample(rng, size=256)
    costs = []
    for _ in range(15):
        start = time.process_time()
        render_sample(rng, size=256)
        costs.append(time.process_time() - start)
    assert float(np.median(costs)) < 0.06


def test_nuisances_vary_across_films():
    labels = [render(seed, size=64)[1] for seed in range(80)]
    markers = [lab["marker"] for lab in labels]
    gammas = [lab["gamma"] for lab in labels]
    collimated = np.mean([lab["collimated"] for lab in labels])
    heights = [lab["hand_boxes"][0][3] - lab["hand_boxes"][0][1] for lab in labels]
    assert 0.5 < np.mean([m != "" for m in markers]) < 0.95 and "L" in markers
    assert min(gammas) < 0.75 and max(gammas) > 1.4
    assert 0.3 < collimated < 0.9
    assert max(heights) > 1.3 * min(heights)  # the hand's scale on the film varies
