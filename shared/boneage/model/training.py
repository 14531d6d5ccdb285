"""Training both stages: seeded, checkpointed, CPU or CUDA.

One loop alternates a detector step and a regressor step so a single run produces a complete
checkpoint. The interval calibration factor is fitted at the end on a held-out tenth of the
regressor samples (the 90th percentile of |error| / (1.645 sigma)), so ``coverage_90`` is right by
construction on data like the training distribution.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .boxes import anchors
from .configs import ModelConfig
from .data import Prepared, augment_detector, augment_regressor, phantom_samples, prepare, read_rsna
from .losses import assign, detector_loss, regressor_loss
from .networks import build_detector, build_regressor
from .weights import load_checkpoint, save_checkpoint

DEFAULT_MIX = {"left": 0.5, "right": 0.15, "two_hands": 0.1, "non_hand": 0.1, "adult": 0.15}


@dataclass
class TrainOptions:
    out: Path
    data: list[Path] = field(default_factory=list)
    phantoms: int = 0
    phantom_size: int = 512
    phantom_mix: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_MIX))
    epochs: int = 10
    seed: int = 0
    device: str = "cpu"
    batch: int = 32
    lr: float = 2e-3
    threads: int | None = None
    init: Path | None = None              # start from this checkpoint (fine-tuning)
    cache: list[Path] = field(default_factory=list)   # prepared-data caches: loaded when all exist, else written
    prepare_only: bool = False
    checkpoint_every_s: float = 300.0
    demo: bool = True
    # A wall-clock budget: the learning-rate schedule then follows elapsed time instead of steps, so
    # the run anneals properly whatever the machine's speed (at the price of step-exact reproducibility).
    max_minutes: float | None = None
    stages: tuple[str, ...] = ("detector", "regressor")   # train one stage per process to use two cores
    precision: str = "fp32"               # "bf16": forward passes under bf16 autocast (``autocast``)


PRECISIONS = ("fp32", "bf16")


def autocast(precision: str, device: str = "cpu") -> torch.autocast:
    """The forward-pass context for ``precision``: "bf16" runs convolutions and matrix products in
    bfloat16 (autocast; weights, optimiser state and losses stay fp32), "fp32" leaves everything fp32.
    On a CPU with AMX-BF16 a wrist-stage step takes half the fp32 time and a clinical regressor step a
    quarter (README, "Training precision"); without native bf16 (AVX512-BF16 or AMX) torch emulates it and
    it is slower. The regressor's head runs under it too, so its bone age reaches the loss rounded to bf16
    (steps of 1 month above 128 months): fine for the detector and the wrist stage's logits, a coarse
    target for a final regressor run."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: choose from {', '.join(PRECISIONS)}")
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16, enabled=precision == "bf16")


def load_data(opts: TrainOptions, cfg: ModelConfig, log: Callable[[str], None]) -> Prepared:
    if opts.cache and all(Path(c).exists() for c in opts.cache):
        log(f"loading prepared data from {', '.join(map(str, opts.cache))}")
        return Prepared.concat([Prepared.load(Path(c)) for c in opts.cache])
    parts = []
    for d in opts.data:
        parts.append(prepare((s for _, s in read_rsna(Path(d))), cfg))
        log(f"{d}: {len(parts[-1].det_images)} detector / {len(parts[-1].reg_crops)} regressor samples")
    if opts.phantoms:
        t0 = time.time()
        parts.append(prepare(phantom_samples(opts.phantoms, opts.seed + 1_000_003, opts.phantom_size,
                                             opts.phantom_mix), cfg))
        log(f"{opts.phantoms} phantoms rendered and prepared in {time.time() - t0:.0f} s")
    if not parts:
        raise ValueError("no training data: give --data folders and/or --phantoms N")
    prepared = Prepared.concat(parts) if len(parts) > 1 else parts[0]
    if opts.cache:
        Path(opts.cache[0]).parent.mkdir(parents=True, exist_ok=True)
        prepared.save(Path(opts.cache[0]))
    return prepared


def _split(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    perm = torch.randperm(n, generator=g)
    n_cal = max(1, n // 10) if n >= 10 else 0
    return perm[n_cal:], perm[:n_cal]


@torch.no_grad()
def calibrate(regressor: torch.nn.Module, p: Prepared, idx: torch.Tensor, cfg: ModelConfig,
              device: str, g: torch.Generator) -> dict[str, float]:
    """Fit the interval scale on held-out crops; also report their MAE."""
    regressor.eval()
    idx = idx[p.reg_mature[idx] < 0.5]
    if len(idx) == 0:
        return {"interval_scale": 1.0}
    errs, sig = [], []
    for chunk in idx.split(64):
        x = augment_regressor(p, chunk, g, cfg).to(device)
        male = p.reg_male[chunk]
        sex = torch.zeros(len(chunk), 3)
        sex[male == 1, 0] = 1
        sex[male == 0, 1] = 1
        sex[(male != 0) & (male != 1), 2] = 1
        age, sigma, _, _ = regressor(x, sex.to(device))
        errs.append((age.cpu() - p.reg_age[chunk]).abs())
        sig.append(sigma.cpu())
    e, s = torch.cat(errs), torch.cat(sig)
    ratio = e / (cfg.interval_z * s)
    return {"interval_scale": float(torch.quantile(ratio, 0.9)) if len(e) >= 10 else 1.0,
            "calibration_mae_months": float(e.mean()), "calibration_n": int(len(e))}


def combine(detector_ckpt: Path, regressor_ckpt: Path, out: Path) -> str:
    """One checkpoint from the detector of one run and the regressor (with its calibration) of another."""
    d, r = load_checkpoint(detector_ckpt), load_checkpoint(regressor_ckpt)
    det, reg = build_detector(r.cfg), build_regressor(r.cfg)
    det.load_state_dict(d.detector_state)
    reg.load_state_dict(r.regressor_state)
    meta = {**r.meta, "detector_from": {"model_version": d.model_version, **{k: d.meta.get(k) for k in
                                                                              ("steps", "training_data")}},
            "regressor_from": r.model_version}
    date = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d")
    return save_checkpoint(Path(out), r.cfg, det, reg, demo=r.demo and d.demo, date=date, meta=meta)


def calibrate_checkpoint(ckpt_path: Path, folder: Path, out: Path, limit: int | None = None) -> dict[str, Any]:
    """Fit the mean correction and interval scale on an RSNA-layout calibration folder (never the test
    set) through the full pipeline, and write the recalibrated checkpoint to ``out``. Where the detector's
    hand threshold moves, the other fits run a second time at the new one."""
    from .evaluation import calibrate_folder
    from .pipeline import TwoStageAssessor

    ck = load_checkpoint(ckpt_path)
    assessor = TwoStageAssessor.from_checkpoint(ck)
    fit = calibrate_folder(folder, assessor, limit=limit)
    moved = fit.get("detector", {}).get("score_threshold", ck.cfg.score_threshold)
    if moved != ck.cfg.score_threshold:
        # The age and maturity fits ran at the old hand threshold: run them again at the new one, so they
        # see the hands it now admits (the detector fits read every film's scores and come out the same).
        second = fit.get("second_hand", {}).get("second_hand_threshold", ck.cfg.second_hand_threshold)
        fit = calibrate_folder(folder, assessor.with_config(ck.cfg.with_updates(
            score_threshold=moved, second_hand_threshold=second)), limit=limit)
    updates: dict[str, Any] = {"age_correction": tuple(fit["age_correction"]), "interval_scale": fit["interval_scale"]}
    if "maturity" in fit:
        updates["mature_threshold"] = fit["maturity"]["mature_threshold"]
    if "detector" in fit:
        updates["score_threshold"] = fit["detector"]["score_threshold"]
    if "second_hand" in fit:
        updates["second_hand_threshold"] = fit["second_hand"]["second_hand_threshold"]
    cfg = ck.cfg.with_updates(**updates)
    det, reg = build_detector(cfg), build_regressor(cfg)
    det.load_state_dict(ck.detector_state)
    reg.load_state_dict(ck.regressor_state)
    date = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d")
    meta = {**ck.meta, "pipeline_calibration": {**fit, "folder": str(folder), "from": ck.model_version}}
    version = save_checkpoint(Path(out), cfg, det, reg, demo=ck.demo, date=date, meta=meta)
    return {"model_version": version, "checkpoint": str(out), "calibration": fit}


def train(cfg: ModelConfig, opts: TrainOptions, log: Callable[[str], None] = print) -> dict[str, Any]:
    autocast(opts.precision)                  # a bad value fails here, before any data is loaded
    if opts.threads:
        torch.set_num_threads(opts.threads)
    # Freshly initialised weights produce denormals that slow CPU kernels several-fold (domain.md).
    torch.set_flush_denormal(True)
    torch.manual_seed(opts.seed)
    np.random.seed(opts.seed)
    g = torch.Generator().manual_seed(opts.seed)
    device = opts.device
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    p = load_data(opts, cfg, log)
    if opts.prepare_only:
        return {"prepared": {"detector": len(p.det_images), "regressor": len(p.reg_crops)},
                "cache": [str(c) for c in opts.cache]}

    init = load_checkpoint(opts.init) if opts.init is not None else None
    if cfg.regressor.has_wrist and not (init is not None and init.cfg.regressor.has_wrist):
        # The regressor stage trains on crops alone and never the wrist stage (``--stage wrist``,
        # ``wrist_training``, does, on the detector's patches): without trained wrist weights to carry
        # over, the checkpoint has none, and its crop's mature head serves the maturity decision.
        cfg = cfg.with_wrist()
        log("no trained wrist stage to carry over: the checkpoint serves the crop's mature head "
            "(train one with --stage wrist)")
    elif init is not None and cfg.regressor.has_wrist:
        # The init's wrist stage is carried over whole: its weights were trained on its own kind of
        # input (``wrist_equalise``), which has no weights of its own to make a mismatch show.
        r = init.cfg.regressor
        cfg = cfg.with_wrist(r.wrist_size, r.wrist_widths, r.wrist_equalise)
    det, reg = build_detector(cfg), build_regressor(cfg)
    if init is not None:
        det.load_state_dict(init.detector_state)
        reg.load_state_dict(init.regressor_state)
    det.to(device).train()
    reg.to(device).train()
    params = [q for m in (det, reg) for q in m.parameters()]
    opt = torch.optim.AdamW(params, lr=opts.lr, weight_decay=1e-4)

    n_det = len(p.det_images) if "detector" in opts.stages else 0
    n_reg = len(p.reg_crops) if "regressor" in opts.stages else 0
    reg_train, reg_cal = _split(n_reg, g)
    b = opts.batch
    steps_per_epoch = max(math.ceil(n_det / b), math.ceil(len(reg_train) / b), 1)
    total = steps_per_epoch * opts.epochs
    def lr_at(frac: float) -> float:
        warm = 0.05
        if frac < warm:
            return opts.lr * (0.1 + 0.9 * frac / warm)
        return opts.lr * 0.5 * (1 + math.cos(math.pi * min((frac - warm) / (1 - warm), 1.0)))
    anc = anchors(cfg.detector).to(device)
    n_cls = len(cfg.detector.classes)
    date = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d")
    meta = {"training_data": {"rsna_folders": [str(d) for d in opts.data], "phantoms": opts.phantoms,
                              "phantom_seed": opts.seed + 1_000_003, "phantom_size": opts.phantom_size,
                              "phantom_mix": opts.phantom_mix, "cache": [str(c) for c in opts.cache]},
            "epochs": opts.epochs, "seed": opts.seed, "precision": opts.precision, "stages": list(opts.stages),
            # A fine-tune's lineage: the checkpoint it started from, how its stages were made and where it
            # came from in turn (its own ``init``; calibrations are refitted, so they are left out).
            "init": None if init is None else {"model_version": init.model_version,
                                               **{k: init.meta.get(k) for k in ("wrist_training", "precision",
                                                                                "stages", "init")}},
            "torch": str(torch.__version__)}
    length = f"{opts.max_minutes:g} min" if opts.max_minutes is not None else f"{total} steps"
    log(f"training {cfg.name}: {n_det} detector / {len(reg_train)} regressor samples, {length} on {device}")

    def save(path: Path, current: ModelConfig, extra: dict[str, Any]) -> str:
        det.eval()
        reg.eval()
        v = save_checkpoint(path, current, det, reg, demo=opts.demo, date=date, meta={**meta, **extra})
        det.train()
        reg.train()
        return v

    t_start = last_ckpt = time.time()
    budget_s = None if opts.max_minutes is None else opts.max_minutes * 60

    def progress(steps_done: int) -> float:
        """How far the schedule has run: by the clock on a time budget, else by steps."""
        return (time.time() - t_start) / budget_s if budget_s is not None else steps_done / total

    step, history = 0, []
    running: dict[str, float] = {}
    stopped_early = False
    # With a time budget, epochs run until the budget is spent (``epochs`` is then ignored).
    for epoch in (itertools.count() if budget_s is not None else range(opts.epochs)):
        det_perm = torch.randperm(n_det, generator=g) if n_det else None
        reg_perm = reg_train[torch.randperm(len(reg_train), generator=g)] if len(reg_train) else None
        for k in range(steps_per_epoch):
            losses: dict[str, torch.Tensor] = {}
            if det_perm is not None:
                idx = det_perm[(torch.arange(b) + k * b) % n_det]
                x, boxes, labels, inv = augment_detector(p, idx, g, cfg)
                targets = [assign(bx, lb, anc.cpu(), n_cls) for bx, lb in zip(boxes, labels)]
                cls_t, box_t, pos, valid = (torch.stack(t).to(device) for t in zip(*targets))
                with autocast(opts.precision, device):
                    cl, dl, il = (t.float() for t in det(x.to(device)))
                dloss = detector_loss(cl, dl, il, cls_t, box_t, pos, valid, inv.view(-1, 1).to(device))
                losses.update({f"det_{n}": v for n, v in dloss.items()})
            if reg_perm is not None:
                idx = reg_perm[(torch.arange(b) + k * b) % len(reg_perm)]
                x = augment_regressor(p, idx, g, cfg)
                male = p.reg_male[idx]
                # Sex is dropped to "unknown" a third of the time so the sex-agnostic input is learned.
                drop = (torch.rand(len(idx), generator=g) < 0.33) | ((male != 0) & (male != 1))
                sex = torch.zeros(len(idx), 3)
                sex[:, 0] = (male == 1) & ~drop
                sex[:, 1] = (male == 0) & ~drop
                sex[:, 2] = drop.float()
                with autocast(opts.precision, device):
                    age, sigma, ml, mt = (t.float() for t in reg(x.to(device), sex.to(device)))
                rloss = regressor_loss(age, sigma, ml, mt, p.reg_age[idx].to(device), male.to(device),
                                       p.reg_mature[idx].to(device))
                losses.update({f"reg_{n}": v for n, v in rloss.items()})
            total_loss = sum((v for n, v in losses.items() if n.endswith("_total")), torch.zeros(()))
            for group in opt.param_groups:
                group["lr"] = lr_at(progress(step))
            opt.zero_grad(set_to_none=True)
            total_loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
            step += 1
            for n, v in losses.items():
                running[n] = 0.95 * running.get(n, v.item()) + 0.05 * v.item()
            if step % 20 == 0 or (budget_s is None and step == total):
                # On a time budget the schedule runs on the clock: "of" has no step count to give.
                log(json.dumps({"step": step, "of": None if budget_s is not None else total,
                                "schedule": round(min(progress(step), 1.0), 3), "epoch": epoch,
                                "elapsed_s": round(time.time() - t_start),
                                **{n: round(v, 4) for n, v in running.items()}}))
            if time.time() - last_ckpt > opts.checkpoint_every_s:
                save(out / "last.pt", cfg, {"step": step})
                last_ckpt = time.time()
            if budget_s is not None and time.time() - t_start > budget_s:
                stopped_early = True
                break
        history.append({"epoch": epoch, **{n: round(v, 4) for n, v in running.items()}})
        if stopped_early:
            break

    cal = {"interval_scale": cfg.interval_scale} if not n_reg else calibrate(reg, p, reg_cal, cfg, device, torch.Generator().manual_seed(opts.seed + 7))
    final_cfg = cfg.with_updates(interval_scale=round(cal["interval_scale"], 4))
    version = save(out / "model.pt", final_cfg, {"calibration": cal, "steps": step, "stopped_early": stopped_early})
    summary = {"model_version": version, "checkpoint": str(out / "model.pt"), "steps": step,
               "seconds": round(time.time() - t_start, 1), "calibration": cal, "history": history[-3:],
               "stopped_early": stopped_early}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
