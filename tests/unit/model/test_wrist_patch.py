"""The wrist patch covers the wrist wherever the phantom puts the hand, turns with a steeply tilted
hand, and is cut like the crop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from boneage.model.configs import CONFIGS
from boneage.model import preprocess
from boneage.model.evaluation import rotate
from boneage.model.preprocess import WINDOW_TURNS_FROM_DEG, WINDOW_TURNS_UP_TO_DEG, hand_axis, wrist_cut, wrist_patch, wrist_window
from boneage.model.pipeline import TwoStageAssessor
from boneage.model.weights import load_checkpoint
from boneage.phantom import render_sample

SIZE = CONFIGS["demo"].regressor.wrist_size


@pytest.mark.parametrize("kind", ["left", "right", "adult"])
def test_the_wrist_window_holds_the_phantoms_wrist_box_across_its_rotations_scales_and_positions(kind):
    rng = np.random.default_rng(20261201)
    for _ in range(12):
        _, labels = render_sample(rng, kind=kind, size=384)
        (hx0, hy0, hx1, hy1), (wx0, wy0, wx1, wy1) = labels["hand_boxes"][0], labels["wrist_boxes"][0]
        left, top, w, h = wrist_window([hx0, hy0, hx1, hy1], SIZE)
        slack = 0.01 * (hy1 - hy0)
        assert left - slack <= wx0 and wx1 <= left + w + slack, labels["rotation_deg"]
        assert top - slack <= wy0 and wy1 <= top + h + slack, labels["rotation_deg"]


def test_the_patch_keeps_the_window_aspect_and_is_zero_outside_the_image():
    image = np.ones((400, 300), np.float32)
    box = [0.0, 0.0, 100.0, 400.0]             # a narrow hand at the film's left edge
    left, top, w, h = wrist_window(box, SIZE)
    assert w / h == pytest.approx(SIZE[1] / SIZE[0]) and left < 0
    patch = wrist_patch(image, box, SIZE)[0]
    assert patch.shape == SIZE
    outside = int(SIZE[1] * -left / w)         # patch columns left of the film
    assert float(patch[:, : outside - 2].max()) == 0.0
    inside_rows = int(SIZE[0] * (400 - top) / h) - 2          # the window also runs 4 px past the bottom
    assert float(patch[:inside_rows, outside + 2:].min()) == pytest.approx(1.0)
    assert float(patch[inside_rows + 4:].max()) == 0.0


def test_the_patch_resamples_the_window_in_order_top_to_bottom_and_left_to_right():
    yy, xx = np.mgrid[0:600, 0:500].astype(np.float32)
    box = [100.0, 50.0, 400.0, 550.0]
    left, top, w, h = wrist_window(box, SIZE)
    for ramp, axis, lo, span in ((xx / 500, 1, left, w), (yy / 600, 0, top, h)):
        patch = wrist_patch(ramp, box, SIZE)[0]
        centre = patch[SIZE[0] // 2] if axis == 1 else patch[:, SIZE[1] // 2]
        assert torch.all(centre[4:-4].diff() > 0)
        # Its first and last samples sit at the window's edges, in source pixels.
        scale = 500 if axis == 1 else 600
        assert float(centre[0]) * scale == pytest.approx(lo, abs=2.0)
        assert float(centre[-1]) * scale == pytest.approx(lo + span, abs=2.0)


@pytest.mark.parametrize("kind", ["left", "adult"])
def test_the_hand_axis_finds_the_phantoms_tilt(kind):
    rng = np.random.default_rng(20261202)
    for _ in range(12):
        image, labels = render_sample(rng, kind=kind, size=384)
        axis = hand_axis(image, labels["hand_boxes"][0])
        assert axis is not None
        # The phantom turns its hand counter-clockwise on the film for a positive rotation_deg: the
        # fingertips lean towards -x.
        assert axis.tilt_deg == pytest.approx(-labels["rotation_deg"], abs=4.0)


def _rotated(image: np.ndarray, deg: float, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The film turned ``deg`` counter-clockwise (``evaluation.rotate``) and where ``points`` land on it."""
    out = rotate(image, deg)
    t = np.radians(deg)
    d = points - [image.shape[1] / 2, image.shape[0] / 2]
    turned = np.stack([d[:, 0] * np.cos(t) + d[:, 1] * np.sin(t), -d[:, 0] * np.sin(t) + d[:, 1] * np.cos(t)], 1)
    return out, turned + [out.shape[1] / 2, out.shape[0] / 2]


def _corners(box: list[float]) -> np.ndarray:
    x0, y0, x1, y1 = box
    return np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]], dtype=np.float64)


@pytest.fixture(scope="module")
def assessor() -> TwoStageAssessor:
    return TwoStageAssessor.from_checkpoint(load_checkpoint())


@pytest.mark.parametrize("deg", [-55.0, -40.0, 40.0, 55.0])
@pytest.mark.parametrize("kind", ["left", "adult"])
def test_a_hand_tilted_past_the_turn_gets_its_wrist_window_in_its_own_frame(assessor, kind, deg):
    rng = np.random.default_rng(7)
    image, labels = render_sample(rng, kind=kind, size=512, nuisance=False)
    film, _ = _rotated(image, deg, _corners(labels["hand_boxes"][0]))
    _, wrist = _rotated(image, deg, _corners(labels["wrist_boxes"][0]))
    hand = assessor.assess(film, "F").hand_box     # the box the service would cut from
    box = [hand.x0, hand.y0, hand.x1, hand.y1]
    axis = hand_axis(film, box)
    assert axis is not None and axis.tilt_deg == pytest.approx(-deg, abs=5.0)
    # The wrist box, carried onto the turned film and into the hand's frame, lies inside the window.
    a, b = axis.to_axis(wrist[:, 0], wrist[:, 1])
    left, top, w, h = wrist_window(axis.extent, SIZE)
    slack = 0.01 * (axis.extent[3] - axis.extent[1])
    assert left - slack <= a.min() and a.max() <= left + w + slack
    assert top - slack <= b.min() and b.max() <= top + h + slack
    # The patch is that window, upright: it resembles the upright film's own patch.
    upright = wrist_patch(image, labels["hand_boxes"][0], SIZE)[0]
    turned = wrist_patch(film, box, SIZE)[0]
    assert np.corrcoef(upright.flatten().numpy(), turned.flatten().numpy())[0, 1] > 0.6


def test_adults_tilted_45_degrees_are_rejected_as_mature_and_near_mature_children_are_assessed(assessor):
    for seed in (1, 2, 3):
        for kind, age in (("adult", None), ("left", 200.0)):
            image, labels = render_sample(np.random.default_rng(seed), kind=kind, bone_age_months=age, size=1024,
                                          nuisance=False)
            for deg in (-45.0, 45.0):
                out = assessor.assess(_rotated(image, deg, _corners(labels["hand_boxes"][0]))[0],
                                      "M" if labels["male"] else "F")
                reason = out.rejection.reason.value if out.rejection else None
                assert reason == ("skeletally_mature" if kind == "adult" else None), (seed, kind, deg, out.qc)


def test_below_the_turn_the_window_stays_in_the_image_frame(monkeypatch):
    rng = np.random.default_rng(7)
    image, labels = render_sample(rng, kind="adult", size=512, nuisance=False)
    deg = WINDOW_TURNS_FROM_DEG - 8.0
    film, hand = _rotated(image, deg, _corners(labels["hand_boxes"][0]))
    box = [*hand.min(0), *hand.max(0)]
    axis = hand_axis(film, box)
    assert axis is not None and abs(axis.tilt_deg) < WINDOW_TURNS_FROM_DEG
    patch = wrist_patch(film, box, SIZE)
    monkeypatch.setattr(preprocess, "hand_axis", lambda *_: None)
    torch.testing.assert_close(patch, wrist_patch(film, box, SIZE), rtol=0, atol=0)


def test_a_silhouette_too_round_to_point_anywhere_keeps_the_image_frame():
    yy, xx = np.mgrid[0:400, 0:400].astype(np.float32)
    disc = ((xx - 200) ** 2 + (yy - 200) ** 2 < 150 ** 2).astype(np.float32)
    assert hand_axis(disc, [40.0, 40.0, 360.0, 360.0]) is None
    assert hand_axis(np.zeros((400, 400), np.float32), [40.0, 40.0, 360.0, 360.0]) is None


def test_the_turned_window_reports_its_own_height_and_is_zero_past_the_film_edge():
    rng = np.random.default_rng(7)
    image, labels = render_sample(rng, kind="adult", size=512, nuisance=False)
    film, hand = _rotated(image, 45.0, _corners(labels["hand_boxes"][0]))
    box = [*hand.min(0), *hand.max(0)]
    axis = hand_axis(film, box)
    patch, height = wrist_cut(film, box, SIZE)
    # The resolution gate measures the window actually cut: a fraction of the hand's length, not of the
    # (taller) box of the tilted hand.
    assert height == pytest.approx(wrist_window(axis.extent, SIZE)[3])
    assert height < wrist_window(box, SIZE)[3]
    # A bar tilted 40 degrees whose wrist end leaves the film at the bottom-left corner: the part of the
    # window off the film reads zeros (the film's background is 0.03), and nothing raises.
    yy, xx = np.mgrid[0:400, 0:400].astype(np.float32)
    t = np.radians(40.0)
    ux, uy = np.sin(t), -np.cos(t)                  # towards the fingertips: up and to the right
    a = -(xx - 120) * uy + (yy - 330) * ux
    b = -(xx - 120) * ux - (yy - 330) * uy
    bar = np.where((np.abs(a) < 60) & (np.abs(b) < 180), 0.8, 0.03).astype(np.float32)
    ys, xs = np.nonzero(bar > 0.5)
    edge_patch, _ = wrist_cut(bar, [float(xs.min()), float(ys.min()), float(xs.max()) + 1, float(ys.max()) + 1], SIZE)
    assert edge_patch.shape == patch.shape and float((edge_patch == 0).float().mean()) > 0.1
    assert float(edge_patch.max()) == pytest.approx(0.8, abs=0.01)


def test_a_hand_lying_across_the_film_keeps_the_image_frame(monkeypatch):
    rng = np.random.default_rng(7)
    image, labels = render_sample(rng, kind="adult", size=512, nuisance=False)
    film, hand = _rotated(image, 90.0, _corners(labels["hand_boxes"][0]))
    box = [*hand.min(0), *hand.max(0)]
    axis = hand_axis(film, box)
    assert axis is not None and abs(axis.tilt_deg) > WINDOW_TURNS_UP_TO_DEG
    patch = wrist_patch(film, box, SIZE)
    monkeypatch.setattr(preprocess, "hand_axis", lambda *_: None)
    torch.testing.assert_close(patch, wrist_patch(film, box, SIZE), rtol=0, atol=0)
