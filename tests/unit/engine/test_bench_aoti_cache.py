"""The bench's AOTInductor cache (``boneage.bench.aoti_cache``) and the planner's bf16 decision,
without compiling anything: a cache entry is a manifest and a file with its recorded hash."""

from __future__ import annotations

import json

import pytest

from boneage.bench import aoti_cache, planner
from boneage.bench.aoti_cache import Budget, decide
from boneage.bench.report import markdown
from boneage.engine.manifest import Manifest, sha256_file

VERSIONS = {"torch": "2.13.0+cpu", "torchao": "0.18.0", "python": "3.11.9", "vec_isa": "avx2"}


@pytest.fixture
def host(monkeypatch):
    """The building interpreter's versions and compiler, without spawning it."""
    versions = dict(VERSIONS)
    monkeypatch.setattr(aoti_cache, "_versions", lambda python: dict(versions))
    monkeypatch.setattr(aoti_cache, "_compiler", lambda: "g++ (Debian 12.2.0-14) 12.2.0")
    return versions


def inputs(precision="int8", sha="a" * 64, config=None):
    return aoti_cache.key_inputs("seed_equivalent", precision, weights=(sha, config or {"detector": {"image_size": 512}}))


def cache_entry(root, key_in, precision="int8"):
    """A finished build as ``ensure`` leaves it: the package files, then the manifest."""
    folder = root / aoti_cache.cache_key(key_in) / f"aoti-{precision}"
    folder.mkdir(parents=True)
    (folder / "detector.pt2").write_bytes(b"compiled")
    Manifest(backend="aoti", precision=precision, config="seed_equivalent", model_version="v",
             weights_sha256=key_in["weights_sha256"], torch_version=key_in["torch"],
             files={"detector": {"path": "detector.pt2", "sha256": sha256_file(folder / "detector.pt2")}}).write(folder)
    (folder.parent / "build.json").write_text(json.dumps({"build_s": 97.0}))
    return folder


def test_same_inputs_same_key_and_each_invalidating_input_changes_it(host):
    base = aoti_cache.cache_key(inputs())
    assert aoti_cache.cache_key(inputs()) == base
    assert aoti_cache.cache_key(inputs(sha="b" * 64)) != base                              # weights
    assert aoti_cache.cache_key(inputs(config={"detector": {"image_size": 640}})) != base  # configuration
    assert aoti_cache.cache_key(inputs(precision="fp32")) != base
    host["torch"] = "2.14.0+cpu"
    assert aoti_cache.cache_key(inputs()) != base                                          # torch
    host.update(VERSIONS, vec_isa="avx512")
    assert aoti_cache.cache_key(inputs()) != base                                          # ISA class
    host.update(VERSIONS, torchao="0.19.0")
    assert aoti_cache.cache_key(inputs()) != base                                          # int8's quantiser
    host.update(VERSIONS)
    assert aoti_cache.cache_key(inputs()) == base


def test_the_build_code_is_part_of_the_key(tmp_path):
    (tmp_path / "engine").mkdir()
    (tmp_path / "engine" / "build.py").write_text("x = 1\n")
    before = aoti_cache.code_sha256(tmp_path)
    (tmp_path / "engine" / "build.py").write_text("x = 2\n")
    assert aoti_cache.code_sha256(tmp_path) != before


def test_a_second_run_reuses_the_cached_package_and_a_changed_input_misses(host, tmp_path):
    root, out = tmp_path / "cache", tmp_path / "bench" / "model" / "seed_equivalent"
    cached = cache_entry(root, inputs())
    budget = Budget(0.0)     # nothing may be compiled: a miss can only be skipped

    hit = aoti_cache.ensure("seed_equivalent", "int8", out, budget, root=root, inputs=inputs())
    assert hit["cache_hit"] is True and hit["build_s"] == 97.0 and "skipped" not in hit
    assert (out / "aoti-int8" / "detector.pt2").read_bytes() == b"compiled"
    assert (out / "aoti-int8" / "detector.pt2").stat().st_ino == (cached / "detector.pt2").stat().st_ino

    host["torch"] = "2.14.0+cpu"
    miss = aoti_cache.ensure("seed_equivalent", "int8", out, budget, root=root, inputs=inputs())
    assert miss["cache_hit"] is False and miss["skipped"] == "budget" and miss["key"] != hit["key"]
    assert not (out / "aoti-int8").exists()       # never measure a package of another key


def test_an_incomplete_or_corrupt_entry_is_a_miss(host, tmp_path):
    folder = cache_entry(tmp_path, inputs())
    assert aoti_cache.is_complete(folder)
    (folder / "detector.pt2").write_bytes(b"truncated")
    assert not aoti_cache.is_complete(folder)
    (folder / "manifest.json").unlink()
    assert not aoti_cache.is_complete(folder)


def test_decide_builds_within_the_budget_and_skips_honestly():
    assert decide(True, Budget(0.0), None).action == "hit"
    unlimited = decide(False, Budget(None), 5000.0)
    assert unlimited.action == "build" and unlimited.timeout_s is None
    build = decide(False, Budget(900.0, spent_s=100.0), 300.0)
    assert build.action == "build" and build.timeout_s == 800.0
    assert decide(False, Budget(900.0), None).action == "build"           # never built here: try, with a timeout
    too_long = decide(False, Budget(900.0, spent_s=700.0), 300.0)
    assert too_long.action == "skip" and too_long.details["estimate_s"] == 300.0
    assert decide(False, Budget(900.0, spent_s=900.0), None).action == "skip"


def test_planner_compiles_bf16_only_where_it_is_native():
    peaks = {"fp32": {"peak": 190.0}, "bf16": {"peak": 20.0}, "int8": {"peak": 300.0}}
    todo, skipped = planner.plan("seed_equivalent", peaks, False, native_bf16=False)
    names = {f"{b}-{q}" for _, b, q in todo}
    assert {"torchscript-fp32", "aoti-fp32", "aoti-int8"} <= names and "aoti-bf16" not in names
    rows = planner.bf16_skipped_rows("seed_equivalent", todo, skipped)
    assert rows["aoti-bf16"]["skipped"] == "bf16 not native" and "AVX512-BF16" in rows["aoti-bf16"]["reason"]
    # Native, and faster than fp32: compiled bf16 is planned.
    fast = {**peaks, "bf16": {"peak": 400.0}}
    todo, skipped = planner.plan("seed_equivalent", fast, False, native_bf16=True)
    assert {"aoti-bf16", "torchscript-bf16"} <= {f"{b}-{q}" for _, b, q in todo}
    assert planner.bf16_skipped_rows("seed_equivalent", todo, skipped) == {}
    # bf16 peak above fp32 on an emulating host (a noisy probe) still does not plan it.
    todo, _ = planner.plan("seed_equivalent", fast, False, native_bf16=False)
    assert "aoti-bf16" not in {f"{b}-{q}" for _, b, q in todo}


def test_report_shows_aoti_beside_torchscript_with_cache_and_skips():
    seed = {"gflop_per_image": 128.1, "best_backend": "aoti-int8", "best_p50_ms": 540.0, "eager_fp32_p50_ms": 1100.0,
            "artifacts": {
                "torchscript-fp32": {"p50_ms": 700.0, "p90_ms": 720.0},
                "aoti-fp32": {"p50_ms": 690.0, "p90_ms": 700.0,
                              "aoti_cache": {"key": "k1", "cache_hit": True, "build_s": 97.0}},
                "aoti-int8": {"p50_ms": 540.0, "p90_ms": 560.0,
                              "aoti_cache": {"key": "k2", "cache_hit": False, "build_s": 310.0}},
                "aoti-bf16": {"skipped": "bf16 not native", "reason": "no AVX512-BF16"}}}
    text = markdown({"host": {"isa": "avx2"}, "peaks": {}, "configs": ["seed_equivalent"], "seed_equivalent": seed,
                     "skipped": [], "bench_seconds": 1, "aoti_budget_s": 900.0})
    assert "aoti-fp32 cache hit (key k1, built in 97.0 s)" in text
    assert "aoti-int8 built in this run in **310.0 s**" in text
    assert "| aoti-bf16 | skipped, bf16 not native: no AVX512-BF16 |" in text
    readme = text.split("## README tables", 1)[1]
    assert "ISA class **avx2**" in readme and "best **aoti-int8**, p50 540.0 ms" in readme
    assert "| aoti-fp32 | 690.0 ms | 700.0 ms |" in readme and "cache hit (built in 97.0 s)" in readme


def test_a_build_stopped_at_the_budget_is_skipped_at_once_next_time(host, tmp_path, monkeypatch):
    stopped = []
    monkeypatch.setattr(aoti_cache, "_run", lambda cmd, timeout: (stopped.append(timeout), (None, timeout, ""))[1])
    out = tmp_path / "out"
    first = aoti_cache.ensure("seed_equivalent", "int8", out, Budget(600.0), root=tmp_path, inputs=inputs())
    assert first["skipped"] == "budget" and first["build_s"] == 600.0 and stopped == [600.0]
    assert not (tmp_path / first["key"]).exists()           # no partial package left to be taken for a build
    again = aoti_cache.ensure("seed_equivalent", "int8", out, Budget(600.0), root=tmp_path, inputs=inputs())
    assert again["skipped"] == "budget" and again["estimate_s"] == 600.0 and stopped == [600.0]


def test_a_package_built_from_other_weights_is_not_cached_under_the_key(host, tmp_path, monkeypatch):
    key_in = inputs()

    def build(cmd, timeout):                # the build writes a package, but of other weights
        cache_entry(tmp_path / "elsewhere", {**key_in, "weights_sha256": "f" * 64})
        src = tmp_path / "elsewhere" / aoti_cache.cache_key({**key_in, "weights_sha256": "f" * 64}) / "aoti-int8"
        aoti_cache.link_into(src, tmp_path / aoti_cache.cache_key(key_in) / "aoti-int8")
        return 0, 12.0, ""

    monkeypatch.setattr(aoti_cache, "_run", build)
    info = aoti_cache.ensure("seed_equivalent", "int8", tmp_path / "out", Budget(None), root=tmp_path, inputs=key_in)
    assert "error" in info and not (tmp_path / info["key"]).exists() and not (tmp_path / "out" / "aoti-int8").exists()
