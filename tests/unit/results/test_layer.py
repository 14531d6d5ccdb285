"""The boneage-core layer: built with its own Makefile (what ``sam build`` runs), then every module it
ships, and the results function on top of it, imported where torch, numpy, pydicom and Pillow cannot
be imported, and with no other copy of ``boneage`` in reach. A module added to the layer that pulls
one of them in, or a function import the layer lacks, fails here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
HEAVY = ("torch", "numpy", "pydicom", "PIL")

PROBE = r"""
import importlib, importlib.abc, json, sys
HEAVY = set(sys.argv[1].split(","))

class Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HEAVY:
            raise ImportError(f"{name} is not available in the layer's runtime")
        return None

sys.meta_path.insert(0, Blocked())
loaded = []
for name in sys.argv[2].split(","):
    module = importlib.import_module(name)
    loaded.append([name, module.__file__])
print(json.dumps({"loaded": loaded, "heavy": sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)}))
"""


def _build(tmp_path: Path) -> Path:
    out = tmp_path / "artifacts"
    subprocess.run(["make", "-s", "-f", str(ROOT / "layers" / "boneage-core" / "Makefile"), "build-BoneageCoreLayer",
                    f"ARTIFACTS_DIR={out}"], cwd=ROOT / "shared", check=True, capture_output=True, timeout=60)
    return out / "python"


def _probe(paths: list[Path], modules: list[str]) -> dict[str, list]:
    # -S -s: no site-packages processing and no user site (so no editable install of the whole
    # package); the path is exactly the layer, the function and the third-party packages of the runtime.
    path = [str(p) for p in paths] + [sysconfig.get_paths()["purelib"]]
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": os.pathsep.join(path),
           "POWERTOOLS_TRACE_DISABLED": "true", "AWS_DEFAULT_REGION": "us-east-1"}
    run = subprocess.run([sys.executable, "-S", "-s", "-c", PROBE, ",".join(HEAVY), ",".join(modules)],
                         capture_output=True, text=True, env=env, timeout=120, cwd=path[0])
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_every_module_the_layer_ships_imports_without_torch_numpy_pydicom_or_pillow(tmp_path: Path) -> None:
    layer = _build(tmp_path)
    files = sorted(layer.rglob("*.py"))
    modules = [".".join(f.relative_to(layer).with_suffix("").parts).removesuffix(".__init__") for f in files]
    assert "boneage.adapters.store" in modules and "boneage.result" in modules
    result = _probe([layer], modules)
    assert result["heavy"] == []
    assert all(Path(f).is_relative_to(layer) for _, f in result["loaded"])


def test_the_results_function_runs_on_the_layer_alone(tmp_path: Path) -> None:
    layer = _build(tmp_path)
    result = _probe([layer, ROOT / "functions" / "results"], ["app"])
    assert result["heavy"] == []
    assert any(name == "app" for name, _ in result["loaded"])


def test_the_layer_ships_no_more_than_its_modules(tmp_path: Path) -> None:
    layer = _build(tmp_path)
    shipped = {p.relative_to(layer).as_posix() for p in layer.rglob("*") if p.is_file()}
    assert shipped and all(p.startswith("boneage/") for p in shipped)
    assert not any(part in p for p in shipped for part in ("/model/", "/engine/", "/imaging/", "/report/", "weights"))
