"""The wrist patch covers the wrist wherever the phantom puts the hand, and is cut like the crop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from boneage.model.configs import CONFIGS
from boneage.model.preprocess import wrist_patch, wrist_window
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
