"""Measured peak GFLOP/s of this host, per precision, through the libraries the model runs on.

One probe alone misleads: MKL's fp32 GEMM is slow on AMD while oneDNN's 3x3 convolution is not
(``domain.md``: ~200 vs ~430 GFLOP/s on 2 vCPUs), so the peak is the best of a large GEMM, a large
1x1 convolution and a large 3x3 convolution, all channels-last, at the thread count in use.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F


def _best_rate(fn, flop: float, repeats: int, min_seconds: float) -> float:
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


def probe(precision: str = "fp32", *, repeats: int = 5, min_seconds: float = 1.0) -> dict[str, float]:
    """GFLOP/s of each probe and ``peak`` (their maximum) for ``precision`` ('fp32' or 'bf16')."""
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[precision]
    g = torch.Generator().manual_seed(0)
    n = 1024
    a, b = torch.rand(n, n, generator=g).to(dtype), torch.rand(n, n, generator=g).to(dtype)
    x1 = torch.rand(1, 512, 32, 32, generator=g).to(dtype).contiguous(memory_format=torch.channels_last)
    w1 = torch.rand(512, 512, 1, 1, generator=g).to(dtype).contiguous(memory_format=torch.channels_last)
    x3 = torch.rand(1, 256, 32, 32, generator=g).to(dtype).contiguous(memory_format=torch.channels_last)
    w3 = torch.rand(256, 256, 3, 3, generator=g).to(dtype).contiguous(memory_format=torch.channels_last)
    out: dict[str, float] = {}
    with torch.inference_mode():
        out["gemm_1024"] = _best_rate(lambda: torch.mm(a, b), 2 * n ** 3, repeats, min_seconds)
        out["conv1x1_512"] = _best_rate(lambda: F.conv2d(x1, w1), 2 * 512 * 512 * 32 * 32, repeats, min_seconds)
        out["conv3x3_256"] = _best_rate(lambda: F.conv2d(x3, w3, padding=1), 2 * 256 * 256 * 9 * 32 * 32,
                                        repeats, min_seconds)
    out = {k: round(v, 1) for k, v in out.items()}
    out["peak"] = max(out.values())
    return out
