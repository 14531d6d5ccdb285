"""Builds deployable artifacts from tensor-only modules: AOTInductor, TorchScript, IPEX, eager.

Each stage (detector, regressor) becomes one file per backend and precision. The module is wrapped
so every artifact has the same interface: fp32 channels-last tensors in, fp32 tensors out, whatever
the precision inside. Batch (dim 0) is dynamic up to ``max_batch`` so one artifact serves single
images and the batched path; every other dimension is fixed (the model letterboxes to a fixed size).
"""

from __future__ import annotations

import copy
import datetime as _dt
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from boneage.compat.torch import aoti_compile_and_package, tree_map, vec_isa_name
from boneage.engine import host
from boneage.engine.manifest import Manifest, sha256_file

log = logging.getLogger(__name__)

Inputs = tuple[torch.Tensor, ...]


class PrecisionWrapper(nn.Module):
    """Casts floating inputs to the artifact's dtype and outputs back to fp32, inside the graph.

    Keeping the casts in the exported graph means callers never know the precision, and a bf16
    artifact is a drop-in replacement for an fp32 one.
    """

    def __init__(self, module: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.module = module.to(dtype) if dtype != torch.float32 else module
        self.dtype = dtype

    def forward(self, *args: torch.Tensor) -> Any:
        cast = [a.to(self.dtype) if a.is_floating_point() else a for a in args]
        out = self.module(*cast)
        return tree_map(
            lambda t: t.float() if isinstance(t, torch.Tensor) and t.is_floating_point() else t, out)


def dtype_of(precision: str) -> torch.dtype:
    """The dtype tensors flow in between layers; int8 quantises inside the graph around fp32 edges."""
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "int8": torch.float32}[precision]


def to_channels_last(inputs: Inputs) -> Inputs:
    return tuple(t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t for t in inputs)


def prepare(module: nn.Module, precision: str, *, channels_last: bool = True) -> nn.Module:
    """eval (+ channels_last) + precision wrapper on a copy (``Module.to`` works in place)."""
    module = copy.deepcopy(module).eval()
    if channels_last:
        module = module.to(memory_format=torch.channels_last)
    return PrecisionWrapper(module, dtype_of(precision)).eval()


def count_gflop(module: nn.Module, inputs: Inputs) -> float:
    """GFLOP (multiply and add counted separately) of one forward at batch 1, by torch's flop counter."""
    from torch.utils.flop_counter import FlopCounterMode

    one = tuple(t[:1] for t in inputs)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        module.eval()(*one)
    return counter.get_total_flops() / 1e9


def batched(inputs: Inputs, batch: int) -> Inputs:
    """Repeat batch-1 example inputs along dim 0."""
    return tuple(t[:1].expand(batch, *t.shape[1:]).contiguous() for t in inputs)


# ---- per-backend builders: (prepared module, example inputs, out path, max_batch, calibration) -> file

def quantize_int8(module: nn.Module, inputs: Inputs, calibration: list[Inputs]) -> nn.Module:
    """Static int8 (PT2E, X86InductorQuantizer: per-channel symmetric weights, per-tensor activations
    calibrated on ``calibration``), returned as a converted graph module for export.

    The quantizer annotates one graph node per convolution, so the module must use each conv once
    (``boneage.model.deploy`` unshares the detector's heads). torchao is needed here only: the
    compiled package calls torch's own oneDNN int8 kernels.
    """
    from torch.export import export
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as xiq

    if not calibration:
        raise ValueError("int8 needs calibration inputs")
    quantizer = xiq.X86InductorQuantizer()
    quantizer.set_global(xiq.get_default_x86_inductor_quantization_config())
    # Kept in fp32, as usual for int8 CNNs: the fully connected heads (the bone age itself comes out
    # of them: quantising them doubled the per-image change on the demo model, 0.41 -> 0.57 months)
    # and the stem convolutions on the one-channel image (few FLOPs, the least quantisation-friendly).
    quantizer.set_module_type_qconfig(nn.Linear, None)
    for name, layer in module.named_modules():
        if isinstance(layer, nn.Conv2d) and layer.in_channels == 1:
            quantizer.set_module_name_qconfig(name, None)
    with torch.no_grad():
        graph = export(module, to_channels_last(tuple(t[:1] for t in inputs))).module()
        observed = prepare_pt2e(graph, quantizer)
        for batch in calibration:
            observed(*to_channels_last(batch))
        return convert_pt2e(observed)


def build_aoti(module: nn.Module, inputs: Inputs, path: Path, max_batch: int,
               calibration: list[Inputs] | None = None) -> Path:
    """torch.export at a fixed batch of 1, then AOTInductor with freezing (weights folded and prepacked).

    Static on purpose: with a dynamic batch dim *and* freezing, torch 2.13's AOTInductor produced
    detector logits 3 % off eager (measured here; static shapes match to 1e-6). The loader feeds
    larger batches through it image by image (``CompiledStage``), which costs little on 2 vCPUs
    where one image already keeps both cores busy.
    """
    from torch.export import export

    if calibration is not None:
        module = quantize_int8(module, inputs, calibration)
    with torch.no_grad():
        program = export(module, to_channels_last(tuple(t[:1] for t in inputs)))
        out = aoti_compile_and_package(program, package_path=str(path), inductor_configs={"freezing": True})
    return Path(out)


def build_torchscript(module: nn.Module, inputs: Inputs, path: Path, max_batch: int,
                      calibration: list[Inputs] | None = None) -> Path:
    """trace + freeze; ``optimize_for_inference`` runs at load (its prepacked weights do not serialise)."""
    with torch.no_grad():
        traced = torch.jit.trace(module, to_channels_last(inputs), strict=False, check_trace=False)
        frozen = torch.jit.freeze(traced.eval())
    torch.jit.save(frozen, str(path))
    return path


def build_ipex(module: nn.Module, inputs: Inputs, path: Path, max_batch: int,
               calibration: list[Inputs] | None = None) -> Path:
    """ipex.optimize (oneDNN-friendly layouts, fused ops) + trace + freeze. Runs only with torch 2.8."""
    import intel_extension_for_pytorch as ipex  # noqa: F401  (imported for its side effects too)

    inner = module.module if isinstance(module, PrecisionWrapper) else module
    dtype = module.dtype if isinstance(module, PrecisionWrapper) else torch.float32
    # IPEX prepacks bf16 weights only with AVX512-BW/VL/DQ or AVX-NE-CONVERT; elsewhere it asserts.
    flags = host.effective_flags()
    prepack = dtype == torch.float32 or {"avx512bw", "avx512vl", "avx512dq"} <= flags or "avx_ne_convert" in flags
    optimized = ipex.optimize(inner.float().eval(), dtype=dtype, inplace=False, weights_prepack=prepack)
    wrapped = PrecisionWrapper(optimized, torch.float32).eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        traced = torch.jit.trace(wrapped, to_channels_last(inputs), strict=False, check_trace=False)
        frozen = torch.jit.freeze(traced.eval())
        frozen(*to_channels_last(inputs))          # IPEX fuses on the first runs; save the fused graph
    torch.jit.save(frozen, str(path))
    return path


def build_eager(module: nn.Module, inputs: Inputs, path: Path, max_batch: int,
                calibration: list[Inputs] | None = None) -> Path:
    """Eager has no compiled file: the state dict of the prepared module, reloaded into the network."""
    torch.save(module.module.state_dict() if isinstance(module, PrecisionWrapper) else module.state_dict(), path)
    return path


BUILDERS: dict[str, tuple[Callable[..., Path], str]] = {
    "aoti": (build_aoti, ".pt2"),
    "torchscript": (build_torchscript, ".ts"),
    "ipex": (build_ipex, ".ipex.ts"),
    "eager": (build_eager, ".pt"),
}


def aoti_cpu_features() -> tuple[str, list[str]]:
    """The ISA Inductor vectorises for on this build host, and the flags that code executes."""
    try:
        isa = vec_isa_name()
    except Exception:                                      # pragma: no cover - private API moved
        isa = host.isa_level(host.effective_flags())
    level = "avx512" if "512" in isa else "avx2" if "avx2" in isa else "default"
    return level, sorted(host.ISA_LEVELS[level])


# int8 goes through PT2E quantisation and AOTInductor only (IPEX's int8 has its own prepare/convert
# flow, and TorchScript's eager-mode quantisation is deprecated upstream).
INT8_BACKENDS = frozenset({"aoti"})


@dataclass
class StageSpec:
    """One network to build. ``module`` is the network as trained: the eager artifact (the stock
    PyTorch baseline) runs it as it is. ``deploy`` is the same function in inference form (branches
    re-parameterised, BatchNorm folded, shared heads unshared) for the compiled backends; None
    means ``module``. ``calibration`` gives representative inputs, for int8."""

    module: nn.Module
    inputs: Inputs
    deploy: nn.Module | None = None
    calibration: Callable[[], list[Inputs]] | None = None

    def compiled_form(self) -> nn.Module:
        return self.module if self.deploy is None else self.deploy


def build_artifact(
    stages: dict[str, StageSpec],
    out_dir: Path,
    *,
    backend: str,
    precision: str,
    config_name: str,
    model_config: dict[str, Any],
    model_version: str,
    weights_sha256: str,
    demo: bool,
    max_batch: int = 8,
) -> Manifest:
    """Build one artifact folder ``out_dir/<backend>-<precision>/`` and write its manifest."""
    builder, suffix = BUILDERS[backend]
    if precision == "int8" and backend not in INT8_BACKENDS:
        raise ValueError(f"int8 is built through PT2E + AOTInductor only, not {backend}")
    folder = Path(out_dir) / f"{backend}-{precision}"
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, dict[str, str]] = {}
    shapes: dict[str, list[list[int]]] = {}
    gflop: dict[str, float] = {}
    ipex_version = None
    if backend == "ipex":
        import intel_extension_for_pytorch as ipex

        ipex_version = ipex.__version__
    if backend == "aoti":
        max_batch = 1   # see build_aoti
    for name, spec in stages.items():
        t0 = time.perf_counter()
        # eager is the stock baseline: the training graph in PyTorch's default (NCHW) layout.
        network = spec.module if backend == "eager" else spec.compiled_form()
        gflop[name] = round(count_gflop(network, spec.inputs), 6)
        prepared = prepare(network, precision, channels_last=backend != "eager")
        calibration = None
        if precision == "int8":
            if spec.calibration is None:
                raise ValueError(f"int8 needs calibration inputs for {name}")
            calibration = spec.calibration()
        path = builder(prepared, spec.inputs, folder / f"{name}{suffix}", max_batch, calibration)
        files[name] = {"path": path.name, "sha256": sha256_file(path)}
        shapes[name] = [list(t[:1].shape) for t in spec.inputs]
        log.info("built %s %s %s in %.1f s", backend, precision, name, time.perf_counter() - t0)
    gflop["total"] = round(sum(gflop.values()), 6)
    if backend == "aoti":
        isa, features = aoti_cpu_features()
        if precision == "int8":
            # oneDNN's int8 convolutions need AVX2 at least (u8s8 dot products); VNNI only speeds them up.
            features = sorted(set(features) | set(host.ISA_LEVELS["avx2"]))
    elif backend == "ipex":
        # IPEX prepacks weights into layouts for the build host's ISA: require that ISA.
        isa = host.isa_level(host.effective_flags())
        features = sorted(host.ISA_LEVELS[isa])
    else:
        # TorchScript, IPEX and eager dispatch kernels at run time: they run on any x86-64.
        isa, features = "default", []
    manifest = Manifest(
        backend=backend, precision=precision, config=config_name, model_version=model_version,
        weights_sha256=weights_sha256, torch_version=torch.__version__, ipex_version=ipex_version,
        cpu_features=features, isa=isa, input_shapes=shapes,
        dynamic_batch=max_batch, gflop_per_image=gflop, files=files, demo=demo,
        model_config=model_config,
        built_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )
    manifest.write(folder)
    return manifest
