"""Training the wrist maturity stage (``boneage.model.wrist``) on top of a trained checkpoint.

The wrist network only sees what serving gives it, so its training patches are made by serving's
own code: each labelled film goes through the init checkpoint's ``TwoStageAssessor`` (detector, hand
count, inversion and mirroring decided by the detector), and the wrist patch the assessor passes to
the regressor as its third input is recorded (``record_patches``). Placement therefore follows the
detected box, never the phantom's own wrist box. Films where the detector does not find exactly one
hand give no patch (serving would not run the regressor on them either).

To learn the stress lines too, each film is also passed through ``copies`` perturbed versions
(``boneage.model.evaluation``'s rotation, off-centre crop, gamma, noise, mirror and inversion, with
random parameters); batches are augmented again (gamma, contrast, noise, shifts of a few pixels; a
wrist stage that reads ranks, ``RegressorConfig.wrist_equalise``, sees gamma and contrast only where
they clip the patch).

Labels: ``adult`` films (past the end of the standards) are 1; single left and right hands of
children are 0, and children at or above ``hard_age_months`` (168 months: the last bands, where a
closing physis has to be told from a fused one) weigh ``hard_weight`` times more; the two classes
carry equal total weight. Only the wrist network trains: the detector and the rest of the regressor
keep the init checkpoint's weights exactly, and the saved checkpoint is the init one with the
wrist stage added (config ``wrist_size``/``wrist_widths`` as in ``CONFIGS[name]``). Its maturity
threshold is fitted afterwards on a calibration folder (``training.calibrate_checkpoint``).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .configs import CONFIGS, ModelConfig
from .data import _bool, _image_index, read_png, rsna_rows
from .evaluation import _sex, off_centre_crop, rotate
from .networks import build_detector, build_regressor
from .training import autocast
from .weights import Checkpoint, load_checkpoint, save_checkpoint

CHILD_KINDS = {"left", "right"}
MATURE_KIND = "adult"


@dataclass
class WristOptions:
    init: Path
    out: Path
    data: list[Path] = field(default_factory=list)
    seed: int = 0
    copies: int = 2                       # perturbed versions of each film, besides the clean one
    steps: int = 400                      # upper bound; ``max_minutes`` may stop earlier
    max_minutes: float | None = None
    batch: int = 32
    lr: float = 2e-3
    threads: int | None = None
    hard_age_months: float = 168.0
    hard_weight: float = 4.0
    limit: int | None = None              # first N rows of each folder (tests)
    max_rotation_deg: float = 30.0        # rotated copies turn the film by up to this much either way
    # Rank-equalised wrist input (``RegressorConfig.wrist_equalise``): None keeps the init checkpoint's
    # (the same-named config's for an init without a wrist stage).
    equalise: bool | None = None
    precision: str = "fp32"               # "bf16": forward passes under bf16 autocast (``training.autocast``)


@dataclass
class WristPatches:
    patches: torch.Tensor                 # [N, 1, H, W] float16, as the assessor cut them
    mature: torch.Tensor                  # [N] 1 adult, 0 child
    age: torch.Tensor                     # [N] months (nan for adults without one)
    condition: list[str]


def wrist_config(cfg: ModelConfig, equalise: bool | None = None) -> ModelConfig:
    """``cfg`` with the wrist stage of the same-named shipped config (``CONFIGS``); kept if it has one.
    ``equalise``, when given, sets whether that stage reads ranks (``RegressorConfig.wrist_equalise``)."""
    if not cfg.regressor.has_wrist:
        ref = CONFIGS[cfg.name].regressor
        if not ref.has_wrist:
            raise ValueError(f"config {cfg.name!r} has no wrist stage")
        cfg = cfg.with_wrist(ref.wrist_size, ref.wrist_widths, ref.wrist_equalise)
    if equalise is None or equalise == cfg.regressor.wrist_equalise:
        return cfg
    return cfg.with_wrist(cfg.regressor.wrist_size, cfg.regressor.wrist_widths, equalise)


def with_wrist(ck: Checkpoint, equalise: bool | None = None) -> tuple[ModelConfig, torch.nn.Module, torch.nn.Module]:
    """Detector and regressor of ``ck`` with a wrist stage: the checkpoint's own when it has one, else
    a freshly initialised one (everything else loaded exactly). ``equalise`` given and unlike the
    checkpoint's switches its trained stage to the other input, to be trained on further."""
    cfg = wrist_config(ck.cfg, equalise)
    det, reg = build_detector(cfg), build_regressor(cfg)
    det.load_state_dict(ck.detector_state)
    missing, unexpected = reg.load_state_dict(ck.regressor_state, strict=False)
    if unexpected or any(not k.startswith("wrist.") for k in missing):
        raise ValueError(f"regressor state does not fit config {cfg.name!r}: "
                         f"missing {missing}, unexpected {unexpected}")
    det.eval()
    reg.eval()
    return cfg, det, reg


def record_patches(assessor: Any, images: Sequence[np.ndarray], sexes: Sequence[str | None]
                   ) -> list[torch.Tensor | None]:
    """The wrist patch ``assessor`` passes its regressor for each image (``None`` where it ran no
    regressor: no hand or several). The regressor itself is swapped for a recorder (its outputs are
    not needed), through the assessor's documented ``with_stages`` hook."""
    recorded: list[torch.Tensor] = []

    def recorder(crop: torch.Tensor, sex: torch.Tensor, *rest: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if not rest:
            raise ValueError("the assessor's config has no wrist stage")
        recorded.append(rest[0])
        z = torch.zeros(len(crop))
        return z, z + 1.0, z, z

    outs = assessor.with_stages(regressor_fn=recorder).assess_batch(list(images), list(sexes))
    patches = iter(torch.cat(recorded) if recorded else torch.zeros(0))
    return [next(patches) if o.qc.get("hand_count") == 1 else None for o in outs]


def random_perturbation(rng: np.random.Generator, max_rotation_deg: float = 30.0
                        ) -> tuple[str, Callable[[np.ndarray], np.ndarray]]:
    """One of the evaluation's stress perturbations with random parameters (name, function)."""
    k = int(rng.integers(6))
    if k == 0:
        deg = float(rng.uniform(-max_rotation_deg, max_rotation_deg))
        return f"rotation_{deg:.0f}", lambda im: rotate(im, deg)
    if k == 1:
        frac = float(rng.uniform(0.03, 0.12))
        return f"off_centre_{frac:.2f}", lambda im: off_centre_crop(im, frac)
    if k == 2:
        g = float(np.exp(rng.uniform(np.log(0.5), np.log(1.8))))
        return f"gamma_{g:.2f}", lambda im: np.power(np.clip(im, 0, 1), g)
    if k == 3:
        sd, seed = float(rng.uniform(0.01, 0.07)), int(rng.integers(2**31))
        return f"noise_{sd:.2f}", lambda im: np.clip(
            im + np.random.default_rng(seed).normal(0, sd, im.shape).astype(np.float32), 0, 1)
    if k == 4:
        return "mirror", lambda im: np.ascontiguousarray(im[:, ::-1])
    return "inversion", lambda im: 1.0 - im


def collect_patches(assessor: Any, folders: Sequence[Path], *, copies: int, seed: int, limit: int | None = None,
                    batch: int = 16, max_rotation_deg: float = 30.0, log: Callable[[str], None] = print
                    ) -> WristPatches:
    """Wrist patches of every labelled single hand (children and adults) in ``folders``, clean and
    under ``copies`` random perturbations each, cut by ``assessor``."""
    rng = np.random.default_rng(seed)
    patches: list[torch.Tensor] = []
    mature: list[float] = []
    ages: list[float] = []
    conds: list[str] = []
    for folder in folders:
        folder = Path(folder)
        index = _image_index(folder)
        rows = [r for r in rsna_rows(folder) if r.get("id", "").strip() in index
                and (r.get("kind") or "").strip() in CHILD_KINDS | {MATURE_KIND}][:limit]
        t0 = time.time()
        for s in range(0, len(rows), batch):
            chunk = rows[s:s + batch]
            images = [read_png(index[r["id"].strip()]) for r in chunk]
            sexes = [_sex(_bool(r.get("male", ""))) for r in chunk]
            versions = [("clean", images)]
            for _ in range(copies):
                named = [random_perturbation(rng, max_rotation_deg) for _ in chunk]
                versions.append(("perturbed", [fn(im) for (_, fn), im in zip(named, images)]))
            for cond, ims in versions:
                for r, p in zip(chunk, record_patches(assessor, ims, sexes)):
                    if p is None:
                        continue
                    patches.append(p.to(torch.float16))
                    mature.append(1.0 if r["kind"].strip() == MATURE_KIND else 0.0)
                    a = (r.get("boneage") or "").strip()
                    ages.append(float(a) if a not in ("", "nan", "None") else math.nan)
                    conds.append(cond)
        log(json.dumps({"folder": str(folder), "films": len(rows), "patches": len(patches),
                        "seconds": round(time.time() - t0)}))
    if not patches:
        raise ValueError("no wrist patches: the folders hold no single hands the detector found")
    return WristPatches(torch.stack(patches), torch.tensor(mature), torch.tensor(ages), conds)


def sample_weights(d: WristPatches, hard_age: float, hard_weight: float) -> torch.Tensor:
    """Per-patch loss weights: hard children (age >= ``hard_age``) ``hard_weight`` x, classes balanced."""
    w = torch.ones(len(d.mature))
    w[(d.mature == 0) & (d.age >= hard_age)] = hard_weight
    pos, neg = d.mature == 1, d.mature == 0
    if pos.any() and neg.any():
        w[pos] *= 0.5 / w[pos].sum() * len(w)
        w[neg] *= 0.5 / w[neg].sum() * len(w)
    return w


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Batch augmentation of [B, 1, H, W] patches in [0, 1]: gamma, contrast, noise, a shift of up to
    8 px (zero fill, as the patch's own border where the film ends)."""
    b = len(x)
    x = x.float().clamp(0, 1)
    x = x ** torch.empty(b, 1, 1, 1).uniform_(0.6, 1.6, generator=g)
    x = x * torch.empty(b, 1, 1, 1).uniform_(0.8, 1.2, generator=g)
    x = x + torch.empty(b, 1, 1, 1).uniform_(-0.05, 0.05, generator=g)
    x = x + torch.randn(x.shape, generator=g) * torch.empty(b, 1, 1, 1).uniform_(0.0, 0.04, generator=g)
    dy, dx = (int(v) for v in torch.randint(-8, 9, (2,), generator=g))
    x = torch.roll(x, (dy, dx), (2, 3))
    if dy > 0:
        x[:, :, :dy] = 0
    elif dy < 0:
        x[:, :, dy:] = 0
    if dx > 0:
        x[:, :, :, :dx] = 0
    elif dx < 0:
        x[:, :, :, dx:] = 0
    return x.clamp(0, 1)


def train_wrist(opts: WristOptions, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train the wrist stage of ``opts.init`` and write ``opts.out/model.pt`` (see the module docstring)."""
    from .pipeline import TwoStageAssessor

    autocast(opts.precision)                  # a bad value fails here, before any patch is cut
    if opts.threads:
        torch.set_num_threads(opts.threads)
    torch.set_flush_denormal(True)
    torch.manual_seed(opts.seed)
    g = torch.Generator().manual_seed(opts.seed)
    ck = load_checkpoint(opts.init)
    cfg, det, reg = with_wrist(ck, opts.equalise)
    assessor = TwoStageAssessor(cfg, det, reg, ck.model_version, ck.demo)
    t_start = time.time()
    d = collect_patches(assessor, opts.data, copies=opts.copies, seed=opts.seed, limit=opts.limit,
                        max_rotation_deg=opts.max_rotation_deg, log=log)
    t_patches = time.time() - t_start
    weights = sample_weights(d, opts.hard_age_months, opts.hard_weight)
    log(json.dumps({"patches": len(d.mature), "adult": int(d.mature.sum()),
                    "hard_children": int(((d.mature == 0) & (d.age >= opts.hard_age_months)).sum()),
                    "seconds": round(t_patches)}))

    net = reg.wrist
    assert net is not None
    net.train()
    opt = torch.optim.AdamW(net.parameters(), lr=opts.lr, weight_decay=1e-4)
    budget = opts.max_minutes * 60 if opts.max_minutes is not None else None
    t_train = time.time()
    step, running = 0, None
    while step < opts.steps and (budget is None or time.time() - t_train < budget):
        # Cosine schedule over steps or over the time budget, whichever ends first.
        frac = step / opts.steps
        if budget is not None:
            frac = max(frac, (time.time() - t_train) / budget)
        for group in opt.param_groups:
            group["lr"] = opts.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))
        idx = torch.multinomial(weights, opts.batch, replacement=True, generator=g)
        with autocast(opts.precision):
            logit = net(augment(d.patches[idx], g)).float()
        loss = F.binary_cross_entropy_with_logits(logit, d.mature[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        running = loss.item() if running is None else 0.95 * running + 0.05 * loss.item()
        if step % 20 == 0:
            log(json.dumps({"step": step, "loss": round(running, 4), "elapsed_s": round(time.time() - t_train)}))
    net.eval()
    separation = training_separation(net, d, opts.hard_age_months)
    date = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d")
    meta = {**{k: v for k, v in ck.meta.items() if k != "pipeline_calibration"},
            "previous_calibration": ck.meta.get("pipeline_calibration"),
            "wrist_training": {"init": ck.model_version, "data": [str(p) for p in opts.data], "seed": opts.seed,
                               "copies": opts.copies, "max_rotation_deg": opts.max_rotation_deg,
                               "equalise": cfg.regressor.wrist_equalise, "steps": step,
                               "precision": opts.precision,
                               "batch": opts.batch, "lr": opts.lr,
                               "hard_age_months": opts.hard_age_months, "hard_weight": opts.hard_weight,
                               "patches": len(d.mature), "max_minutes": opts.max_minutes,
                               "train_seconds": round(time.time() - t_train), "training_separation": separation,
                               "torch": str(torch.__version__)}}
    out = Path(opts.out) / "model.pt"
    # The init's maturity threshold was fitted on another network's probabilities: back to the config's
    # default until ``--calibrate`` fits one for this wrist stage.
    cfg = cfg.with_updates(mature_threshold=CONFIGS[cfg.name].mature_threshold)
    version = save_checkpoint(out, cfg, det, reg, demo=ck.demo, date=date, meta=meta)
    summary = {"model_version": version, "checkpoint": str(out), "steps": step, "patches": len(d.mature),
               "patch_seconds": round(t_patches), "train_seconds": round(time.time() - t_train),
               "training_separation": separation}
    Path(opts.out, "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


@torch.no_grad()
def wrist_logits(net: torch.nn.Module, patches: torch.Tensor) -> torch.Tensor:
    if not len(patches):
        return torch.zeros(0)
    return torch.cat([net(patches[i:i + 64].float()) for i in range(0, len(patches), 64)])


def training_separation(net: torch.nn.Module, d: WristPatches, hard_age: float) -> dict[str, Any]:
    """On the training patches themselves (a sanity check, not a held-out figure): adults' and hard
    children's mature probabilities, clean and perturbed."""
    p = torch.sigmoid(wrist_logits(net, d.patches)).numpy()
    out: dict[str, Any] = {}
    for cond in ("clean", "perturbed"):
        m = np.array([c == cond for c in d.condition])
        adult, hard = p[m & (d.mature.numpy() == 1)], p[m & (d.mature.numpy() == 0) & (d.age.numpy() >= hard_age)]
        out[cond] = {"adults_n": int(adult.size), "hard_children_n": int(hard.size),
                     "adult_p05": round(float(np.quantile(adult, 0.05)), 4) if adult.size else None,
                     "hard_child_max": round(float(hard.max()), 4) if hard.size else None,
                     "adults_above_every_hard_child": round(float(np.mean(adult > hard.max())), 4)
                     if adult.size and hard.size else None}
    return out
