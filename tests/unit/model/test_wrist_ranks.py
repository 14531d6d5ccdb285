"""The wrist stage's rank input (``wrist.rank_equalise``): no increasing change of grey levels moves it.

Gamma 0.6 on a held-out film turned children of 16-18 years "mature" through a wrist stage that read
standardised values (model card, seed 14111). These tests pin what the rank input promises: on a
patch, gamma and exposure changes leave the wrist logit exactly as it was; on a whole film,
cut by serving's own code, they leave the patch's ranks within resampling error.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from boneage.model.configs import CONFIGS, ModelConfig
from boneage.model.preprocess import wrist_patch
from boneage.model.wrist import WristMaturityNet, rank_equalise

phantom = pytest.importorskip("boneage.phantom")
WIDTHS = CONFIGS["demo"].regressor.wrist_widths
SIZE = CONFIGS["demo"].regressor.wrist_size


def _film(seed: int) -> tuple[np.ndarray, list[float]]:
    image, labels = phantom.render_sample(np.random.default_rng(seed), kind="left", bone_age_months=200.0,
                                          size=1024)
    return image, labels["hand_boxes"][0]


def test_ranks_keep_the_order_share_ties_and_lie_inside_zero_one():
    patch = torch.tensor([[[[0.0, 0.0, 0.5], [0.2, 0.9, 0.5]]]])
    r = rank_equalise(patch)[0, 0]
    # six pixels: the two zeros share (0 + 2) / 12, the two 0.5s share (3 + 5) / 12
    torch.testing.assert_close(r, torch.tensor([[2, 2, 8], [5, 11, 8]]) / 12.0)
    assert r.shape == patch.shape[2:]


def _trained_wrist(equalise: bool) -> WristMaturityNet:
    """The committed demo checkpoint's wrist stage (trained on standardised values), read either way:
    a network whose logit does follow its patch, unlike a random one's."""
    from boneage.model.weights import load_checkpoint

    state = load_checkpoint(None).regressor_state
    net = WristMaturityNet(WIDTHS, equalise=equalise)
    net.load_state_dict({k[len("wrist."):]: v for k, v in state.items() if k.startswith("wrist.")})
    return net.eval()


@pytest.mark.parametrize("change", ["gamma_0.6", "gamma_1.6", "exposure"])
def test_an_increasing_grey_level_change_leaves_the_ranked_logit_as_it_was(change):
    patch = wrist_patch(*_film(3), SIZE)[None]
    changed = {"gamma_0.6": patch ** 0.6, "gamma_1.6": patch ** 1.6, "exposure": 0.1 + 0.7 * patch}[change]
    with torch.no_grad():
        ranked, plain = _trained_wrist(True), _trained_wrist(False)
        torch.testing.assert_close(ranked(changed), ranked(patch), rtol=0, atol=5e-3)   # grey-level binning
        if change != "exposure":          # standardising absorbs a linear change, not a gamma
            assert float((plain(changed) - plain(patch)).abs()) > 0.03     # 0.07 and more here


@pytest.mark.parametrize("gamma", [0.6, 1.6])
def test_on_a_whole_film_gamma_moves_the_ranks_of_the_served_patch_only_by_resampling(gamma):
    image, box = _film(5)
    clean, bent = wrist_patch(image, box, SIZE), wrist_patch(np.power(image, gamma), box, SIZE)
    rank_change = float((rank_equalise(bent[None]) - rank_equalise(clean[None])).abs().mean())
    value_change = float((bent - clean).abs().mean())
    assert rank_change < 0.01 < value_change


def test_ranks_are_opt_in_and_a_config_keeps_its_choice_through_a_checkpoint():
    assert not CONFIGS["demo"].regressor.wrist_equalise and not CONFIGS["clinical"].regressor.wrist_equalise
    r = CONFIGS["demo"].regressor
    ranks = CONFIGS["demo"].with_wrist(r.wrist_size, r.wrist_widths, True)
    assert ModelConfig.from_dict(ranks.as_dict()).regressor.wrist_equalise
    saved = CONFIGS["demo"].as_dict()
    del saved["regressor"]["wrist_equalise"]          # a config written before the field existed
    assert not ModelConfig.from_dict(saved).regressor.wrist_equalise
