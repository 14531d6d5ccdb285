"""Loads the best artifact this host can run, and falls back (with a logged warning) when it cannot.

Fallback order, first usable wins (documented in the README):

1. the backend asked for (``backend=``; the handler passes ``BONEAGE_BACKEND``), if it is among the artifacts;
2. the default the benchmark chose (``default.json`` next to the artifact folders);
3. ``aoti``, ``ipex``, ``torchscript``, ``eager``; within each, bf16 first only where the host has
   native bf16 (AVX512-BF16), else fp32 first (bf16 is emulated and slower on AVX2-only hosts);
   int8 comes after fp32 (it is chosen by the benchmark's measured accuracy, not by default);
4. eager fp32 on the committed demo weights, when no artifact is usable or none exists.

An artifact is unusable when its manifest does not match the host (torch release, IPEX presence,
CPU flags), a file is missing or corrupt, or it fails to load or to run on a zero batch. None of
these crash the service: each is one warning naming the artifact and the reason.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from boneage.compat.torch import AotiPackage, tree_flatten, tree_unflatten
from boneage.engine import host, weights
from boneage.engine.build import prepare, to_channels_last
from boneage.engine.manifest import BACKENDS, MANIFEST_NAME, Manifest, ManifestError, check_compatible

log = logging.getLogger(__name__)

DEFAULT_CHOICE = "default.json"
WARM_UP_ITERATIONS = {"torchscript": 2, "ipex": 2}
STAGES = ("detector", "regressor")
StageFn = Callable[..., Any]


def ipex_version() -> str | None:
    """IPEX's version if it can be imported here. IPEX exits the process on a foreign torch, so only
    try when torch is 2.8.* (its one supported release)."""
    if not torch.__version__.startswith("2.8."):
        return None
    try:
        import intel_extension_for_pytorch as ipex
    except Exception:
        return None
    return str(ipex.__version__)


class CompiledStage:
    """A stage callable: channels-last inputs, no autograd, batches split to what the artifact accepts."""

    def __init__(self, fn: StageFn, name: str, max_batch: int = 0) -> None:
        self.fn = fn
        self.name = name
        self.max_batch = max_batch          # 0: any batch

    def __call__(self, *inputs: torch.Tensor) -> Any:
        inputs = to_channels_last(tuple(inputs))
        n = inputs[0].shape[0]
        with torch.inference_mode():
            if not self.max_batch or n <= self.max_batch:
                return self.fn(*inputs)
            parts = [self.fn(*(t[i:i + self.max_batch] for t in inputs)) for i in range(0, n, self.max_batch)]
        flat = [tree_flatten(p) for p in parts]
        joined = [torch.cat(ts, 0) for ts in zip(*(leaves for leaves, _ in flat))]
        return tree_unflatten(joined, flat[0][1])


def _load_stage(folder: Path, manifest: Manifest, stage: str, model_config: Any) -> StageFn:
    path = folder / manifest.files[stage]["path"]
    if manifest.backend == "aoti":
        return AotiPackage(path)
    if manifest.backend == "ipex":
        import intel_extension_for_pytorch  # noqa: F401  (registers the ops the saved graph calls)

        return torch.jit.load(str(path))
    if manifest.backend == "torchscript":
        module = torch.jit.load(str(path))
        try:
            # Fuses conv+bn+relu into prepacked oneDNN ops; done here because those do not serialise.
            return torch.jit.optimize_for_inference(module)
        except Exception as exc:                      # pragma: no cover - depends on the graph
            log.warning("optimize_for_inference skipped for %s: %s", stage, exc)
            return module
    if manifest.backend == "eager":
        network = weights.build_stage(stage, model_config)
        network.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return prepare(network, manifest.precision, channels_last=False)   # stock PyTorch, as built
    raise ManifestError(f"unknown backend {manifest.backend!r}")


def zero_inputs(manifest: Manifest, stage: str, batch: int = 1) -> tuple[torch.Tensor, ...]:
    return tuple(torch.zeros([batch, *shape[1:]]) for shape in manifest.input_shapes[stage])


@dataclass
class Candidate:
    folder: Path
    manifest: Manifest


def discover(artifact_dir: Path) -> list[Candidate]:
    """Artifact folders under ``artifact_dir`` (or ``artifact_dir`` itself when it holds a manifest).

    Unreadable manifests are skipped with a warning rather than raising.
    """
    folders = [artifact_dir] if (artifact_dir / MANIFEST_NAME).exists() else sorted(
        p.parent for p in artifact_dir.glob(f"*/{MANIFEST_NAME}"))
    found = []
    for folder in folders:
        try:
            found.append(Candidate(folder, Manifest.read(folder)))
        except ManifestError as exc:
            log.warning("engine: skipping artifact %s: %s", folder.name, exc)
    return found


def fallback_order(candidates: list[Candidate], *, preferred: str | None, default: dict[str, str] | None,
                   bf16_native: bool) -> list[Candidate]:
    """Sort candidates in the documented fallback order (see the module docstring)."""
    precisions = ("bf16", "fp32", "int8") if bf16_native else ("fp32", "int8", "bf16")

    def rank(c: Candidate) -> tuple[int, int, int]:
        m = c.manifest
        asked = 0 if preferred is not None and preferred in (m.backend, m.name) else 1
        chosen = 0 if default and default.get("backend") == m.backend and default.get("precision") == m.precision else 1
        backend = BACKENDS.index(m.backend) if m.backend in BACKENDS else len(BACKENDS)
        precision = precisions.index(m.precision) if m.precision in precisions else len(precisions)
        return (asked, chosen, backend * 10 + precision)

    return sorted(candidates, key=rank)


@dataclass
class Engine:
    """What the service holds: the assessor wired to compiled stages, plus what was loaded and why."""

    assessor: Any
    manifest: dict[str, Any]
    backend: str
    precision: str
    model_version: str
    detector_fn: StageFn
    regressor_fn: StageFn
    artifact: Path | None = None
    threads: int = 1
    fallbacks: list[str] = field(default_factory=list)     # one line per artifact skipped, with the reason
    init_ms: dict[str, float] = field(default_factory=dict)

    def warm_up(self, iterations: int | None = None) -> float:
        """Run each stage on zeros so oneDNN primitives and caches exist before the first request; ms.

        The load check already ran each stage once at the fixed input shape, which is what creates
        the oneDNN primitives: compiled AOTInductor code and eager are warm after it. TorchScript's
        profiling executor (IPEX's too) optimises the graph on its second and third calls, so those
        get two more runs here."""
        if iterations is None:
            iterations = WARM_UP_ITERATIONS.get(self.backend, 0)
        t0 = time.perf_counter()
        for _ in range(iterations):
            for stage, fn in (("detector", self.detector_fn), ("regressor", self.regressor_fn)):
                fn(*_zero_from_dict(self.manifest, stage))
        ms = (time.perf_counter() - t0) * 1000
        self.init_ms["warm_up"] = round(ms, 1)
        return ms


def _zero_from_dict(manifest: dict[str, Any], stage: str, batch: int = 1) -> tuple[torch.Tensor, ...]:
    return tuple(torch.zeros([batch, *shape[1:]]) for shape in manifest["input_shapes"][stage])


def demo_engine(*, threads: int, fallbacks: list[str]) -> Engine:
    """The last resort: eager fp32 on the committed demo weights (channels-last, no compilation)."""
    src = weights.from_checkpoint(None)
    det = CompiledStage(prepare(src.stages["detector"].module, "fp32"), "detector")
    reg = CompiledStage(prepare(src.stages["regressor"].module, "fp32"), "regressor")
    manifest = {"backend": "eager", "precision": "fp32", "config": src.config_name,
                "model_version": src.model_version, "weights_sha256": src.weights_sha256,
                "torch_version": torch.__version__, "demo": src.demo, "model_config": src.model_config,
                "input_shapes": {k: [list(t.shape) for t in s.inputs] for k, s in src.stages.items()},
                "files": {}, "fallback": True}
    return Engine(assessor=weights.make_assessor(src.model_config, det, reg, src.model_version, src.demo),
                  manifest=manifest, backend="eager", precision="fp32", model_version=src.model_version,
                  detector_fn=det, regressor_fn=reg, artifact=None, threads=threads, fallbacks=fallbacks)


def load_stages(candidate: Candidate, *, torch_version: str | None = None, ipex: str | None = None,
                flags: frozenset[str] | None = None) -> tuple[StageFn, StageFn]:
    """Check one artifact against the host, load both stages and run them once; raise ManifestError if unusable."""
    m = candidate.manifest
    check_compatible(m, candidate.folder, torch_version=torch_version or torch.__version__,
                     ipex_version=ipex or ipex_version(), host_flags=host.effective_flags() if flags is None else flags)
    missing = [s for s in STAGES if s not in m.files]
    if missing:
        raise ManifestError(f"manifest lists no file for {', '.join(missing)}")
    try:
        fns = [CompiledStage(_load_stage(candidate.folder, m, s, m.model_config), s, m.dynamic_batch)
               for s in STAGES]
        for stage, fn in zip(STAGES, fns):
            fn(*zero_inputs(m, stage))
    except ManifestError:
        raise
    except Exception as exc:
        raise ManifestError(f"failed to load or run: {type(exc).__name__}: {exc}") from exc
    return fns[0], fns[1]


def _read_default(artifact_dir: Path) -> dict[str, str] | None:
    try:
        data = json.loads((artifact_dir / DEFAULT_CHOICE).read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def load_engine(artifact_dir: Path | str | None = None, *, backend: str | None = None,
                warm_up: bool = True, threads: int | None = None) -> Engine:
    """Load the best usable artifact under ``artifact_dir``; never raises for a mismatched host.

    ``backend`` may be a backend (``aoti``) or an artifact name (``aoti-bf16``); ``threads`` sizes
    torch's pool (None: from the CPU quota). Callers take both from ``boneage.config.EngineSettings``
    (``BONEAGE_BACKEND``, ``BONEAGE_THREADS``); nothing here reads the environment. With no usable
    artifact, the committed demo weights run eagerly.
    """
    t0 = time.perf_counter()
    n_threads = host.configure_torch(threads)
    preferred = backend or None
    flags = host.effective_flags()
    ipex = ipex_version()
    fallbacks: list[str] = []
    candidates: list[Candidate] = []
    if artifact_dir is None:
        fallbacks.append("no artifact directory given")
    else:
        folder = Path(artifact_dir)
        candidates = discover(folder) if folder.is_dir() else []
        if not candidates:
            fallbacks.append(f"no artifact found in {folder}")
        ordered = fallback_order(candidates, preferred=preferred, default=_read_default(folder),
                                 bf16_native=host.BF16_FLAGS <= flags)
        candidates = ordered
    if preferred and not any(preferred in (c.manifest.backend, c.manifest.name) for c in candidates):
        fallbacks.append(f"requested backend {preferred!r} has no artifact")

    for cand in candidates:
        try:
            det, reg = load_stages(cand, ipex=ipex, flags=flags)
        except ManifestError as exc:
            fallbacks.append(f"{cand.manifest.name}: {exc}")
            log.warning("engine: falling back from %s: %s", cand.manifest.name, exc)
            continue
        m = cand.manifest
        assessor = weights.make_assessor(m.model_config, det, reg, m.model_version, m.demo)
        engine = Engine(assessor=assessor, manifest=json.loads(m.to_json()), backend=m.backend,
                        precision=m.precision, model_version=m.model_version, detector_fn=det,
                        regressor_fn=reg, artifact=cand.folder, threads=n_threads, fallbacks=fallbacks)
        break
    else:
        log.warning("engine: no usable artifact (%s); running the committed demo weights eagerly",
                    "; ".join(fallbacks) or "none")
        engine = demo_engine(threads=n_threads, fallbacks=fallbacks)
    engine.init_ms["load"] = round((time.perf_counter() - t0) * 1000, 1)
    if warm_up:
        engine.warm_up()
    log.info("engine: %s-%s, %d threads, model %s", engine.backend, engine.precision, n_threads, engine.model_version)
    return engine
