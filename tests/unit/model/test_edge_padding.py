"""Padding that software added around a negative (a rotated or shifted film's corner fill) is black on
the negative and would turn white when the pipeline turns the film back: it is found and kept black."""

from __future__ import annotations

import numpy as np
import pytest

from boneage.model.evaluation import off_centre_crop, rotate
from boneage.model.preprocess import PADDING_MIN_FRACTION, edge_padding, upright_left
from boneage.phantom import render_sample


def _negative(seed: int = 3, size: int = 384) -> np.ndarray:
    image, _ = render_sample(np.random.default_rng(seed), kind="left", size=size)
    return np.clip(1.0 - image, 0.02, 1.0).astype(np.float32)      # a negative: nothing at 0 on the film


@pytest.mark.parametrize("deg", [-25.0, 25.0, 40.0])
def test_the_fill_of_a_rotated_film_is_padding_and_the_film_is_not(deg):
    film = rotate(_negative(), deg)
    padding = edge_padding(film)
    fill, content = film == 0.0, film >= 0.02
    assert padding.shape == film.shape
    assert padding[fill].mean() > 0.995
    # Only the interpolated seam is taken from the film: no padding lies more than a pixel from the fill.
    near_fill = np.pad(fill, 1)
    near_fill = np.any([near_fill[1 + dy:1 + dy + fill.shape[0], 1 + dx:1 + dx + fill.shape[1]]
                        for dy in (-1, 0, 1) for dx in (-1, 0, 1)], axis=0)
    assert not (padding & ~near_fill).any()
    assert (padding & content).sum() < 2.5 * (film.shape[0] + film.shape[1])


def test_the_black_band_of_an_off_centre_film_is_padding():
    film = off_centre_crop(_negative(), 0.1)
    padding = edge_padding(film)
    dy, dx = int(film.shape[0] * 0.1), int(film.shape[1] * 0.1)
    assert padding[:dy, :].all() and padding[:, :dx].all()
    assert not padding[dy + 1:, dx + 1:].any()


def test_a_film_without_padding_and_scattered_dark_pixels_on_its_edge_have_none():
    film = _negative()
    assert not edge_padding(film).any()
    speckled = film.copy()
    rng = np.random.default_rng(0)
    edge = np.zeros(film.shape, bool)
    edge[:, :40] = True
    speckled[edge & (rng.random(film.shape) < 0.3)] = 0.0      # a noisy border clipped at black
    assert not edge_padding(speckled).any()


def test_a_negative_turned_back_keeps_its_padding_black_and_its_film_as_it_was():
    negative = rotate(_negative(), 25.0)
    box = [10.0, 10.0, 100.0, 200.0]
    prepared, b = upright_left(negative, box, inverted=True, mirrored=False)
    padding = edge_padding(negative)
    assert np.array_equal(b, box)
    assert float(prepared[padding].max()) == 0.0
    assert np.allclose(prepared[~padding], 1.0 - negative[~padding])
    # A film that is not a negative is passed through untouched, its own black corners included.
    positive = rotate(1.0 - _negative(), 25.0)
    same, _ = upright_left(positive, box, inverted=False, mirrored=False)
    assert np.array_equal(same, positive)


def test_bone_clipped_to_black_where_it_runs_off_a_negative_is_not_padding():
    # The display window clips a negative's densest bone to its lowest value; a forearm running off the
    # bottom edge then reaches the edge, solid, at that value. It is anatomy and stays as it is.
    film = _negative()
    h, w = film.shape
    bone = np.zeros(film.shape, bool)
    bone[h - 60:, w // 2 - 6:w // 2 + 6] = True            # a dense bar, 60 x 12 px, touching the edge
    assert bone.mean() < PADDING_MIN_FRACTION
    film[bone] = 0.0
    assert not edge_padding(film).any()
    turned_back, _ = upright_left(film, [0.0, 0.0, float(w), float(h)], inverted=True, mirrored=False)
    assert float(turned_back[bone].min()) == 1.0
