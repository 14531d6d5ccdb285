"""Checkpoints with and without a wrist stage (``boneage.model.wrist``) through every backend and precision.

With a wrist stage the regressor stage takes a third input, the wrist patch, and its mature_logit is
the wrist network's. Each artifact must list its input shapes (three or two), load, answer like the
eager network on all four outputs (the wrist logit included) within its precision's tolerance, and
the engine's assessor must pass the patch through, so a phantom assessed on any artifact gets eager's
mature probability. The wrist checkpoint is the committed demo weights with a seeded random wrist net
in place of theirs (``conftest``); the same without a wrist stage must keep working everywhere, as must
the committed weights with their wrist stage reading ranks (``RegressorConfig.wrist_equalise``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from boneage.bench.summary import INTERVAL_FRACTION, INTERVAL_Z
from boneage.engine import weights
from boneage.engine.build import build_artifact
from boneage.engine.loader import discover, load_engine, load_stages

pytestmark = pytest.mark.skipif(
    not Path(__file__).resolve().parents[3].joinpath("shared/boneage/weights/demo.pt").exists(),
    reason="the demo weights are not committed")

ARTIFACTS = [("eager", "fp32"), ("torchscript", "fp32"), ("aoti", "fp32"), ("eager", "bf16"),
             ("torchscript", "bf16"), ("aoti", "int8")]
NAMES = [f"{b}-{p}" for b, p in ARTIFACTS]


@pytest.fixture(scope="module", params=["wrist", "no-wrist", "ranks"])
def source(request: pytest.FixtureRequest) -> weights.Weights:
    torch.set_num_threads(1)
    fixture = {"wrist": "wrist_checkpoint", "no-wrist": "no_wrist_checkpoint",
               "ranks": "ranks_checkpoint"}[request.param]
    src = weights.from_checkpoint(str(request.getfixturevalue(fixture)))
    assert len(src.stages["regressor"].inputs) == (2 if request.param == "no-wrist" else 3)
    return src


# A wrist stage that reads ranks (opt-in, ``RegressorConfig.wrist_equalise``) puts a histogram, a
# cumulative sum and a gather in front of its convolutions: built where those meet a compiler, a
# quantiser or bf16 (the other backends run the same eager or traced graph as "wrist").
RANKS_ARTIFACTS = [("aoti", "fp32"), ("aoti", "int8"), ("torchscript", "bf16")]


def _reads_ranks(source: weights.Weights) -> bool:
    return source.model_config["regressor"].get("wrist_equalise", False)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory, source: weights.Weights) -> Path:
    out = tmp_path_factory.mktemp("wrist-artifacts")
    ranks = _reads_ranks(source)
    for backend, precision in RANKS_ARTIFACTS if ranks else ARTIFACTS:
        if precision == "int8" and importlib.util.find_spec("torchao") is None:
            continue
        build_artifact(source.stages, out, backend=backend, precision=precision, config_name=source.config_name,
                       model_config=source.model_config, model_version=source.model_version,
                       weights_sha256=source.weights_sha256, demo=source.demo, max_batch=4)
    return out


def _artifact(folder: Path, name: str):
    found = [c for c in discover(folder) if c.manifest.name == name]
    if not found:
        pytest.skip(f"{name} not built for this source (int8 needs torchao; ranks build {RANKS_ARTIFACTS})")
    return found[0]


def _service_inputs(source: weights.Weights, n: int = 6) -> tuple[torch.Tensor, ...]:
    """Crops, sexes (and wrist patches) cut from phantom films the way the service cuts them (own seed)."""
    cal = weights.calibration_inputs(source.model_config, n=n, seed=77)["regressor"]
    return tuple(torch.cat(parts) for parts in zip(*cal))


def _close(got: torch.Tensor, want: torch.Tensor, precision: str) -> None:
    """fp32: float rounding. bf16 and int8: the bounds their existing tests use (IPEX bf16 parity,
    the int8 builder test): within 5 % of the output's range."""
    if precision == "fp32":
        torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-3)
    else:
        assert float((got - want).abs().max()) <= 0.05 * float(want.abs().max()) + 1e-3, (got, want)


@pytest.mark.parametrize("name", NAMES)
def test_artifact_lists_its_inputs_and_matches_the_eager_network_on_every_output(
        folder: Path, source: weights.Weights, name: str) -> None:
    cand = _artifact(folder, name)
    net = source.stages["regressor"].module
    cfg = net.cfg
    shapes = [[1, 1, cfg.crop_size, cfg.crop_size], [1, 3]] + ([[1, 1, *cfg.wrist_size]] if cfg.has_wrist else [])
    assert cand.manifest.input_shapes["regressor"] == shapes
    assert cand.manifest.model_config["regressor"]["wrist_size"] == list(cfg.wrist_size)
    _, reg = load_stages(cand)
    inputs = _service_inputs(source)
    assert len(inputs) == len(shapes)
    with torch.no_grad():
        want = net(*inputs)
    got = reg(*inputs)
    assert len(got) == 4
    precision = name.rsplit("-", 1)[1]
    ranks = cfg.wrist_equalise
    for i, (g, w) in enumerate(zip(got, want)):
        if ranks and precision != "fp32" and i == 3:
            # Ranks of a bf16 patch: bf16 keeps 8 bits of the grey level, so bright pixels merge into ties
            # before they are ranked (wrist logit moved by up to 0.21 here, 5 % of its range); int8 adds
            # its quantised weights to that.
            assert float((g - w).abs().max()) <= 0.1 * float(w.abs().max()) + 0.05, (g, w)
        elif precision == "int8" and i == 3:
            # int8 shifts the maturity logit (by 0.25 for the wrist stage here, fairly evenly over the
            # hands: a sixth of the phantoms' spread); bounded in logits, not as a share of the range.
            assert float((g - w).abs().max()) <= 0.4, (g, w)
        else:
            _close(g, w, precision)
    if precision == "int8":
        assert not torch.equal(got[0], want[0])                       # not silently fp32
    if not cfg.has_wrist:
        return
    crop, sex, wrist = inputs
    with torch.no_grad():
        torch.testing.assert_close(want[3], net.wrist(wrist))        # the reference logit is the wrist net's
    assert float(want[3].std()) > 0.3                                 # and it varies from hand to hand
    # The artifact reads the patch it is given: other hands' patches move the logit, and only it.
    moved = reg(crop, sex, wrist.roll(1, 0))
    torch.testing.assert_close(moved[3], got[3].roll(1, 0), rtol=0, atol=1e-5 if precision == "fp32" else 0.3)
    torch.testing.assert_close(moved[0], got[0])


def _phantoms(n: int = 12) -> list[tuple[np.ndarray, str]]:
    from boneage.imaging.ingest import SERVICE_TARGET_LONG_SIDE
    from boneage.phantom import render_sample

    rng = np.random.default_rng(2026)
    out = []
    for i in range(n):
        image, labels = render_sample(rng, kind="left", size=SERVICE_TARGET_LONG_SIDE)
        out.append((image, "M" if labels["male"] else "F"))
    return out


def _eager_fn(net: torch.nn.Module):
    def fn(*xs: torch.Tensor):
        with torch.no_grad():
            return net(*xs)
    return fn


@pytest.fixture(scope="module")
def eager_outputs(source: weights.Weights):
    """The phantoms assessed on the in-memory training-form networks (no artifact in between)."""
    det, reg = (_eager_fn(source.stages[s].module) for s in ("detector", "regressor"))
    assessor = weights.make_assessor(source.model_config, det, reg, source.model_version, source.demo)
    images, sexes = zip(*_phantoms())
    return assessor.assess_batch(list(images), list(sexes))


def _compare(got, eager_outputs) -> tuple[list[float], list[float], list[float]]:
    """(mature probability changes, bone age changes, eager sigmas) over the phantoms that reached the regressor."""
    p_deltas, age_deltas, sigmas = [], [], []
    for a, b in zip(got, eager_outputs):
        assert a.qc["hand_count"] == b.qc["hand_count"]
        if "mature_probability" not in b.qc:
            continue
        p_deltas.append(abs(a.qc["mature_probability"] - b.qc["mature_probability"]))
        sigmas.append(b.qc["sigma_months"])
        est = [o.estimate_months for o in (a, b)]
        age_deltas.append(abs(est[0] - est[1]))
    assert len(p_deltas) >= 8                # the demo detector finds the phantoms' hands: the regressor ran
    return p_deltas, age_deltas, sigmas


@pytest.mark.parametrize("name", NAMES)
def test_assessor_on_each_artifact_passes_the_wrist_patch_and_agrees_with_eager(
        folder: Path, source: weights.Weights, eager_outputs, name: str) -> None:
    _artifact(folder, name)
    engine = load_engine(folder, backend=name, threads=1, warm_up=True)
    assert engine.manifest["backend"] + "-" + engine.manifest["precision"] == name and not engine.fallbacks
    images, sexes = zip(*_phantoms())
    p_deltas, age_deltas, sigmas = _compare(engine.assessor.assess_batch(list(images), list(sexes)), eager_outputs)
    if name.endswith("fp32"):
        assert max(p_deltas) <= 2e-3 and max(age_deltas) <= 0.1
        return
    # Reduced precision moves the detector's box by a few pixels too, hence the crop and the wrist patch
    # (ages moved up to 4.6 months on these 12 phantoms with int8; the bench's gate judges that on its
    # own phantom set). The maturity probability moved by up to 0.08 with bf16 and 0.09 with int8 (the
    # wrist stage), 0.14 with int8 and the shipped checkpoint's crop head.
    ranks = _reads_ranks(source)
    # A wrist stage reading ranks moves further (0.19 with bf16, 0.28 with int8 on these phantoms, with
    # weights trained on standardised values): the ranks of a reduced-precision patch merge grey levels.
    assert max(p_deltas) <= (0.12 if name.endswith("bf16") else 0.2) + (0.15 if ranks else 0.0)
    # Judged on the regressor stage alone, eager's boxes held: the engine's compiled regressor, fed by
    # the assessor (crop, sex and wrist patch), within the bench's per-image bound (a tenth of the 90 %
    # interval's half-width, ``boneage.bench.summary``) on average (0.16-0.32 months here); the maturity
    # probability moved by 0.02 at most with bf16, by 0.09 with int8 (the int8 wrist logit's shift).
    held = weights.make_assessor(source.model_config, _eager_fn(source.stages["detector"].module),
                                 engine.regressor_fn, source.model_version, source.demo)
    p_held, age_held, sigmas = _compare(held.assess_batch(list(images), list(sexes)), eager_outputs)
    assert float(np.mean(age_held)) <= INTERVAL_FRACTION * INTERVAL_Z * float(np.mean(sigmas))
    # Ranks of a bf16 patch merge grey levels whatever the boxes: 0.062 with the shipped 81f5dee9's weights
    # on an AMX host (native bf16), hence a little more room for them.
    assert max(p_held) <= (0.05 if name.endswith("bf16") else 0.15) + (0.05 if ranks else 0.0)
