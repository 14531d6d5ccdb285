"""What the running host offers the engine: CPU features, the CPU quota, and torch's runtime knobs.

Lambda documents AVX2 only on x86 and sizes CPU by memory (1,769 MB = 1 vCPU), while
``os.cpu_count()`` and torch's default thread pool report the physical host. So the ISA comes from
``/proc/cpuinfo`` (capped to the level torch's kernels dispatch on, which ``ATEN_CPU_CAPABILITY``
lowers) and the thread count from the cgroup CPU quota and the affinity mask, never from the host's
core count. Nothing here reads the environment: a thread count override comes from the caller
(``boneage.config``), and the capability cap from torch itself.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

# The flags torch's and oneDNN's CPU kernels dispatch on, from the lowest ISA level up. An artifact
# compiled for a level needs every flag listed for it (x86-64-v3 = AVX2 + FMA + F16C + BMI2).
ISA_LEVELS: dict[str, frozenset[str]] = {
    "default": frozenset(),
    "avx2": frozenset({"avx", "avx2", "fma", "f16c"}),
    "avx512": frozenset({"avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512dq"}),
}
# Flags that make bf16 fast natively (without them bf16 is emulated in fp32 and usually slower).
BF16_FLAGS = frozenset({"avx512_bf16"})
AMX_FLAGS = frozenset({"amx_tile", "amx_bf16"})

# torch CPU capabilities (``torch.backends.cpu.get_cpu_capability()``, lower-cased; the values
# ATEN_CPU_CAPABILITY takes) and the ISA level they cap the host to.
_CAPABILITY_CAP = {"default": "default", "avx2": "avx2", "avx512": "avx512", "zen": "avx2"}
_LEVEL_RANK = {level: rank for rank, level in enumerate(ISA_LEVELS)}


def cpu_flags(cpuinfo: str | os.PathLike[str] = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU flags of the first processor in ``cpuinfo``; empty when the file cannot be read."""
    try:
        text = Path(cpuinfo).read_text(encoding="ascii", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def isa_level(flags: frozenset[str]) -> str:
    """The highest level in ``ISA_LEVELS`` whose flags are all present."""
    best = "default"
    for level, needed in ISA_LEVELS.items():
        if needed <= flags:
            best = level
    return best


def torch_capability() -> str:
    """The CPU capability torch's kernels dispatch on (``ATEN_CPU_CAPABILITY`` lowers it; torch
    reads that variable itself), lower-cased: ``default``, ``avx2``, ``avx512``, ..."""
    import torch

    return str(torch.backends.cpu.get_cpu_capability()).strip().lower()


def effective_flags(flags: frozenset[str] | None = None, capability: str | None = None) -> frozenset[str]:
    """Host flags as the kernels will see them: a capability below the host's ISA level removes the
    higher-ISA flags. ``capability`` defaults to torch's own (``torch_capability``); ``""`` is no cap.

    The cap is how the benchmark stands in for Lambda (AVX2 only) on a bigger machine
    (``ATEN_CPU_CAPABILITY=avx2``), so an artifact that needs AVX-512 must be refused under it
    exactly as on Lambda. A capability at or above the host's level caps nothing (torch reports its
    best level when uncapped, and that must not hide AVX512-BF16 or AMX).
    """
    flags = cpu_flags() if flags is None else flags
    cap = (torch_capability() if capability is None else capability).strip().lower()
    if cap not in _CAPABILITY_CAP or _LEVEL_RANK[_CAPABILITY_CAP[cap]] >= _LEVEL_RANK[isa_level(flags)]:
        return flags
    allowed = ISA_LEVELS[_CAPABILITY_CAP[cap]]
    isa_flags = frozenset().union(*ISA_LEVELS.values())

    def above_cap(flag: str) -> bool:
        return flag not in allowed and (flag in isa_flags or flag.startswith(("avx512", "amx")))

    return frozenset(f for f in flags if not above_cap(f))


def cpu_quota(cgroup_root: str | os.PathLike[str] = "/sys/fs/cgroup") -> float | None:
    """CPUs granted by the cgroup quota (v2 ``cpu.max``, else v1 CFS quota/period); None if unlimited."""
    root = Path(cgroup_root)
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        if quota == "max":
            return None
        return int(quota) / int(period)
    except (OSError, ValueError):
        pass
    for base in (root / "cpu", root / "cpu,cpuacct", root):
        try:
            quota_us = int((base / "cpu.cfs_quota_us").read_text())
            period_us = int((base / "cpu.cfs_period_us").read_text())
        except (OSError, ValueError):
            continue
        return None if quota_us <= 0 or period_us <= 0 else quota_us / period_us
    return None


def available_cpus() -> int:
    """CPUs this process may run on (affinity mask), which containers restrict below the host count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def thread_count(cgroup_root: str | os.PathLike[str] = "/sys/fs/cgroup") -> int:
    """Intra-op threads for this host: min(affinity, ceil(quota)). (``BONEAGE_THREADS``, read in
    ``boneage.config``, reaches ``configure_torch`` as ``threads`` instead.)

    Rounding the quota up keeps a 1.5-vCPU Lambda on 2 threads: the fraction still runs.
    """
    cpus = available_cpus()
    quota = cpu_quota(cgroup_root)
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota - 1e-9)))
    return cpus


def configure_torch(threads: int | None = None) -> int:
    """Size torch's pools (``threads``, else from the quota) and flush denormals; returns the
    intra-op thread count.

    Random or lightly trained weights produce denormal activations that run several times slower
    on x86 unless flushed (measured 6x in ``domain.md``); flushing does not change results
    that matter at the precision the model reports.
    """
    import torch

    n = thread_count() if threads is None else threads
    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(1)   # one model stream per process; parallel streams use processes
    except RuntimeError:
        pass                               # already set, or the pool has started: harmless
    torch.set_flush_denormal(True)
    return n


def host_summary() -> dict[str, object]:
    """What the benchmark and the manifest check record about this host (no identifiers)."""
    import torch

    flags = effective_flags()
    return {
        "isa": isa_level(flags),
        "bf16_native": BF16_FLAGS <= flags,
        "amx": AMX_FLAGS <= flags,
        "torch": torch.__version__,
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpus_affinity": available_cpus(),
        "cpu_quota": cpu_quota(),
        "threads": thread_count(),
    }
