"""The deployed function's handler module (``functions/assess/app.py``) and its environment files.

The handler is not part of the package: the container image copies it next to the installed package
(``functions/assess/Dockerfile``) and Lambda imports it as the top-level module ``app``. Here it is
loaded from its file under that same name, once, so every caller (scripts, tests, the benchmark)
shares one module and the state ``app.init`` keeps in it, as one Lambda container does.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

from .stack import ROOT

HANDLER_FILE = ROOT / "functions" / "assess" / "app.py"
MODULE_NAME = "app"
# The finalizer runs in the same image under its own module name (ImageConfig.Command in template.yaml).
FINALIZER_FILE = ROOT / "functions" / "finalize" / "app.py"
FINALIZER_MODULE = "finalize_app"


def load_finalizer() -> ModuleType:
    """The finalizer's handler module ``finalize_app``, loaded as the image names it."""
    return load_handler(FINALIZER_FILE, FINALIZER_MODULE)


def load_handler(path: Path = HANDLER_FILE, name: str = MODULE_NAME) -> ModuleType:
    """The handler module ``app`` (or ``name``), imported from ``path`` on first use and shared afterwards."""
    module = sys.modules.get(name)
    if module is not None and Path(module.__file__ or "").resolve() == path.resolve():
        return module
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"no handler module at {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module       # registered first, as the import system does
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def load_env_vars(path: Path, function: str = "AssessFunction") -> dict[str, str]:
    """A function environment file: SAM's env-vars format (``{"AssessFunction": {...}}``) or a flat
    object such as the one ``python scripts/local_stack.py`` writes."""
    data = json.loads(path.read_text())
    if isinstance(data.get(function), dict):
        data = {**data.get("Parameters", {}), **data[function]}
    return {k: str(v) for k, v in data.items() if not isinstance(v, dict)}
