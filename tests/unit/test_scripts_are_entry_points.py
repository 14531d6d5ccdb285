"""Scripts are short entry points into the package, and nothing reaches code through ``sys.path`` edits:
what scripts and tests share is a module of the package (``boneage.bench``, ``boneage.devstack``)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_SCRIPT_LINES = 150
RUNTIME = ("adapters", "clinical", "engine", "imaging", "model", "phantom", "report")
DEV_ONLY = re.compile(r"^(boneage\.|\.\.)(devstack|bench)\b")      # absolute, or from a sibling package


def test_no_script_is_longer_than_an_entry_point():
    long = {p.name: n for p in (ROOT / "scripts").glob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_SCRIPT_LINES}
    assert not long


def test_no_script_or_test_edits_sys_path():
    edits = re.compile(r"sys\.path\s*(\[|\.(insert|append|extend)|\+?=)")
    found = [str(p.relative_to(ROOT)) for folder in ("scripts", "tests") for p in (ROOT / folder).rglob("*.py")
             if edits.search(p.read_text(encoding="utf-8"))]
    assert not found


def _imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(("." * node.level) + node.module)
    return names


def test_runtime_code_never_imports_the_dev_stack_or_the_benchmark():
    """``boneage.devstack`` needs the dev extra and a checkout; the function's image has neither."""
    package = ROOT / "shared" / "boneage"
    files = [package / "service.py", ROOT / "functions" / "assess" / "app.py"]
    files += [p for sub in RUNTIME for p in (package / sub).rglob("*.py")]
    offenders = {str(p.relative_to(ROOT)): sorted(n for n in _imported(p) if DEV_ONLY.match(n))
                 for p in files if p.is_file()}
    assert not {k: v for k, v in offenders.items() if v}
