"""Measured peak GFLOP/s (GOP/s for int8) of this host, per precision, through the libraries the model runs on.

One probe alone misleads: MKL's fp32 GEMM is slow on AMD while oneDNN's 3x3 convolution is not
(``domain.md``: ~200 vs ~430 GFLOP/s on 2 vCPUs), so the peak is the best of a large GEMM, a 1x1
convolution and two 3x3 convolutions, all channels-last, at the thread count in use. Each probe is
the best of several runs: on a shared host one run can lose half its core to a neighbour, and a
peak that is too low makes every efficiency above it look impossible (values over 1).

int8 is probed the way the int8 artifacts run: a 3x3 convolution quantised by PT2E (torchao's
X86InductorQuantizer) and compiled by Inductor, which calls oneDNN's u8s8 kernels.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from boneage.compat.torch import inductor_config

# name -> (channels, spatial side, kernel) for the convolution probes
CONV_PROBES: dict[str, tuple[int, int, int]] = {
    "conv1x1_512": (512, 32, 1),
    "conv3x3_256": (256, 64, 3),
    "conv3x3_128": (128, 128, 3),
}
# GEMM side per precision: bf16 GEMM is emulated at ~1 GFLOP/s on AVX2-only hosts, where 2048 would cost 20 s.
GEMM_N = {"fp32": 2048, "bf16": 1024}
INT8_PROBE = "conv3x3_256"


def _best_rate(fn: Callable[[], object], flop: float, repeats: int, min_seconds: float) -> float:
    t0 = time.perf_counter()
    fn()                                            # first call builds the oneDNN primitive
    first = time.perf_counter() - t0
    if first > min_seconds:
        # A slow path (bf16 emulated on AVX2: ~0.3 GFLOP/s GEMM here): it cannot be the peak, and
        # repeating it would cost minutes.
        return flop / first / 1e9
    best = float("inf")
    t_end = time.perf_counter() + min_seconds
    for i in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
        if i >= 1 and time.perf_counter() > t_end:
            break
    return flop / best / 1e9


def _conv_flop(channels: int, side: int, kernel: int) -> float:
    return 2.0 * channels * channels * kernel * kernel * side * side


def _int8_conv(channels: int, side: int, kernel: int) -> Callable[[], object]:
    """A compiled int8 convolution + ReLU (quantise in, oneDNN qconv, dequantise out)."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as xiq

    g = torch.Generator().manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(channels, channels, kernel, padding=kernel // 2), torch.nn.ReLU()).eval()
    x = torch.rand(1, channels, side, side, generator=g).contiguous(memory_format=torch.channels_last)
    quantizer = xiq.X86InductorQuantizer()
    quantizer.set_global(xiq.get_default_x86_inductor_quantization_config())
    with torch.no_grad():
        observed = prepare_pt2e(torch.export.export(net, (x,)).module(), quantizer)
        observed(x)
        compiled = torch.compile(convert_pt2e(observed))
        with inductor_config(freezing=True):     # compiles here: weights folded and prepacked
            compiled(x)

    def run() -> object:
        with torch.no_grad():
            return compiled(x)
    return run


def probe(precision: str = "fp32", *, repeats: int = 10, min_seconds: float = 1.5) -> dict[str, float]:
    """Rate of each probe and ``peak`` (their maximum) for ``precision`` ('fp32', 'bf16' or 'int8')."""
    out: dict[str, float] = {}
    if precision == "int8":
        try:
            fn = _int8_conv(*CONV_PROBES[INT8_PROBE])
        except ImportError:
            return {}                               # no torchao: int8 is not built on this host either
        out[f"int8_{INT8_PROBE}"] = _best_rate(fn, _conv_flop(*CONV_PROBES[INT8_PROBE]), repeats, min_seconds)
    else:
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[precision]
        g = torch.Generator().manual_seed(0)
        n = GEMM_N[precision]
        a, b = torch.rand(n, n, generator=g).to(dtype), torch.rand(n, n, generator=g).to(dtype)
        with torch.inference_mode():
            out[f"gemm_{n}"] = _best_rate(lambda: torch.mm(a, b), 2.0 * n ** 3, repeats, min_seconds)
            for name, (c, side, k) in CONV_PROBES.items():
                x = torch.rand(1, c, side, side, generator=g).to(dtype).contiguous(memory_format=torch.channels_last)
                w = torch.rand(c, c, k, k, generator=g).to(dtype).contiguous(memory_format=torch.channels_last)
                out[name] = _best_rate(lambda: F.conv2d(x, w, padding=k // 2), _conv_flop(c, side, k),
                                       repeats, min_seconds)
    out = {k: round(v, 1) for k, v in out.items()}
    out["peak"] = max(out.values())
    return out
