"""Host detection: CPU flags, the ISA cap that stands in for Lambda, and thread sizing from the CPU quota."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from boneage.engine import host

AVX512_HOST = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma f16c avx512f avx512bw avx512vl avx512dq avx512_bf16\n"
AVX2_HOST = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma f16c\nprocessor\t: 1\nflags\t\t: fpu\n"


def _cpuinfo(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    return path


def test_cpu_flags_reads_the_first_processor(tmp_path: Path) -> None:
    flags = host.cpu_flags(_cpuinfo(tmp_path, AVX2_HOST))
    assert {"avx2", "fma"} <= flags
    assert host.isa_level(flags) == "avx2"


def test_unreadable_cpuinfo_means_no_flags_not_a_crash(tmp_path: Path) -> None:
    assert host.cpu_flags(tmp_path / "absent") == frozenset()
    assert host.isa_level(frozenset()) == "default"


def test_avx512_host_is_detected_with_native_bf16(tmp_path: Path) -> None:
    flags = host.cpu_flags(_cpuinfo(tmp_path, AVX512_HOST))
    assert host.isa_level(flags) == "avx512"
    assert host.BF16_FLAGS <= flags


def test_aten_avx2_cap_hides_avx512_and_bf16_flags(tmp_path: Path) -> None:
    flags = host.cpu_flags(_cpuinfo(tmp_path, AVX512_HOST))
    capped = host.effective_flags(flags, "avx2")
    assert host.isa_level(capped) == "avx2"
    assert not any(f.startswith("avx512") for f in capped)
    assert {"avx2", "fma", "sse2"} <= capped
    assert host.effective_flags(flags, "") == flags
    assert host.effective_flags(flags, "avx512") == flags       # torch's own level when uncapped: no cap


def test_aten_cpu_capability_set_for_torch_caps_the_flags_the_loader_sees() -> None:
    # The benchmark's AVX2 stand-in for Lambda sets ATEN_CPU_CAPABILITY for the process; the engine
    # learns the cap from torch, not by reading the variable itself.
    code = "from boneage.engine import host; print(host.torch_capability(), host.isa_level(host.effective_flags()))"
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "default"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["default", "default"]


def _cgroup_v2(tmp_path: Path, cpu_max: str) -> Path:
    (tmp_path / "cpu.max").write_text(cpu_max + "\n")
    return tmp_path


def test_cgroup_v2_quota_in_cpus(tmp_path: Path) -> None:
    assert host.cpu_quota(_cgroup_v2(tmp_path, "150000 100000")) == pytest.approx(1.5)


def test_cgroup_v2_max_means_no_quota(tmp_path: Path) -> None:
    assert host.cpu_quota(_cgroup_v2(tmp_path, "max 100000")) is None


def test_cgroup_v1_cfs_quota(tmp_path: Path) -> None:
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("200000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert host.cpu_quota(tmp_path) == pytest.approx(2.0)
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert host.cpu_quota(tmp_path) is None


def test_threads_follow_the_quota_not_the_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host, "available_cpus", lambda: 64)
    assert host.thread_count(_cgroup_v2(tmp_path, "150000 100000")) == 2   # 1.5 vCPU rounds up
    assert host.thread_count(_cgroup_v2(tmp_path, "100000 100000")) == 1
    assert host.thread_count(_cgroup_v2(tmp_path, "max 100000")) == 64


def test_affinity_caps_a_generous_quota(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host, "available_cpus", lambda: 2)
    assert host.thread_count(_cgroup_v2(tmp_path, "800000 100000")) == 2


def test_configure_torch_flushes_denormals_and_sets_threads() -> None:
    before = torch.get_num_threads()
    try:
        assert host.configure_torch(1) == 1
        assert torch.get_num_threads() == 1
        tiny = torch.tensor([1e-39], dtype=torch.float32)   # a float32 denormal
        assert float(tiny * 1.0) == 0.0
    finally:
        torch.set_flush_denormal(False)
        torch.set_num_threads(before)
