"""The package's import graph, read from the code: no cycles, no upward imports, the layering pinned.

Every ``import`` in ``shared/boneage`` counts, including those inside functions and under
``TYPE_CHECKING`` (a lazy import is still a dependency; it only hides a cycle). The rules are data
at the top of this file so they can be moved with the code:

- ``LAYERS``, top to bottom: a module imports its own layer and the layers below, never one above.
  Siblings written ``a | b`` never import each other; ``a : b`` may. A new top-level module or
  package must be placed in a layer before this test passes.
- ``FORBIDDEN``: pairs that never import each other in either direction, whatever their layers.
- ``NEVER_IMPORT``: third-party packages a part of the package never imports (no boto3 in the
  domain, no torch in the AWS adapters).
- ``DOMAIN`` never reads the environment: no ``os.environ`` / ``os.getenv``, no argument-less
  ``X.from_env()``. Configuration is read at the edges (``config``, ``adapters``, ``commands``,
  ``cli``, ``devstack``) and passed down.
- A private name of a third-party library (``torch._C``, ``highdicom._standard_utils``, a
  ``_function`` imported from a public module) is used only in ``boneage.compat.<library>``.

Run ``pytest tests/unit/test_architecture.py -q`` after moving code; the failure names each import
and its line.
"""

from __future__ import annotations

import ast
import sys
import textwrap
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import boneage

PACKAGE = "boneage"
ROOT = Path(boneage.__file__).parent

# Top to bottom. Names are the top-level modules and packages of ``boneage``. processor, ports,
# upload and fakes (the upload use case, its Protocols, its typed record, in-memory stand-ins for
# the adapters), bench and devstack are placed ahead of the branches that add them; a name with no
# module is simply not checked.
LAYERS: tuple[str, ...] = (
    "cli : commands : bench : devstack",     # entry points and tools
    "gateway",                               # the on-premises DICOM gateway (boto3, pynetdicom; no Lambda code)
    "adapters | onboarding",                 # AWS: S3, DynamoDB, SNS, the Lambda runtime wiring; hospital stacks
    "service : processor : fakes",           # use cases (and the fakes their tests run on)
    "ports",                                 # what the upload use case needs from the adapters
    "engine | report | notification | upload",
    "model",
    "imaging | clinical | phantom",
    "errors | result | config | compat | safetext",
)

FORBIDDEN: tuple[tuple[str, str], ...] = (
    ("adapters", "model"),
)

# The README's architecture table, "knows nothing of" column.
AWS = ("boto3", "botocore", "aws_lambda_powertools")
TORCH = ("torch", "torchao", "intel_extension_for_pytorch")
NEVER_IMPORT: dict[str, tuple[str, ...]] = {
    "imaging": AWS + TORCH, "phantom": AWS, "model": AWS, "engine": AWS, "clinical": AWS + TORCH,
    "report": AWS + TORCH, "notification": AWS + TORCH, "service": AWS, "processor": AWS + TORCH,
    "ports": AWS + TORCH, "upload": AWS + TORCH, "fakes": AWS + TORCH, "errors": AWS, "result": AWS,
    "safetext": AWS + TORCH + ("numpy", "PIL", "pydicom"),
    "adapters": TORCH + ("numpy", "PIL", "pydicom", "highdicom"),
    # The gateway's container has no torch: it moves DICOM files; it reads pixels only through pydicom's
    # decoders (numpy, pyjpegls), to decompress the SC losslessly for a PACS that takes it only uncompressed.
    "gateway": TORCH + ("numpy", "PIL", "highdicom", "aws_lambda_powertools"),
    "onboarding": TORCH + ("numpy", "PIL", "pydicom", "highdicom"),
}

DOMAIN: tuple[str, ...] = ("imaging", "phantom", "model", "engine", "clinical", "report", "notification",
                           "service", "processor", "ports", "upload", "fakes", "errors", "result", "compat",
                           "safetext")

# Known offenders (none since one Settings is read once at init and passed down). The test fails on
# an entry that no longer offends, so the list can only shrink.
ENV_READS_BEING_REMOVED: frozenset[str] = frozenset()

COMPAT = "compat"
# The compat module of a library whose import name is not its distribution's name.
COMPAT_MODULE: dict[str, str] = {"_CharLS": "pyjpegls"}


@dataclass(frozen=True)
class Import:
    importer: str       # dotted module name
    target: str         # dotted name of what it imports, resolved to a module where it is one
    line: int

    def __str__(self) -> str:
        return f"{self.importer} -> {self.target} (line {self.line})"


@dataclass
class Package:
    """The modules of one package, each with its syntax tree."""

    name: str
    trees: dict[str, ast.Module] = field(default_factory=dict)
    packages: set[str] = field(default_factory=set)      # modules that are packages (__init__)

    @classmethod
    def read(cls, root: Path, name: str) -> "Package":
        pkg = cls(name)
        for path in sorted(root.rglob("*.py")):
            parts = [name, *path.relative_to(root).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
                pkg.packages.add(".".join(parts))
            pkg.trees[".".join(parts)] = ast.parse(path.read_text(encoding="utf-8"), str(path))
        return pkg

    def imports(self) -> Iterator[Import]:
        """Every import of a module of this package (implicit parent-package imports are not counted)."""
        for module, tree in self.trees.items():
            for node in ast.walk(tree):
                for target in self._targets(module, node):
                    if target == self.name or target.startswith(self.name + "."):
                        yield Import(module, target, node.lineno)

    def external_imports(self) -> Iterator[Import]:
        """Imports of other top-level packages, as the top-level name."""
        for module, tree in self.trees.items():
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    for alias in node.names:
                        yield Import(module, alias.name.split(".")[0], node.lineno)
                elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                    yield Import(module, node.module.split(".")[0], node.lineno)

    def _targets(self, module: str, node: ast.AST) -> list[str]:
        if isinstance(node, ast.Import):
            return [alias.name for alias in node.names]
        if not isinstance(node, ast.ImportFrom):
            return []
        base = node.module or ""
        if node.level:
            here = module.split(".") if module in self.packages else module.split(".")[:-1]
            anchor = here[: len(here) - node.level + 1]
            base = ".".join(anchor + ([node.module] if node.module else []))
        # ``from a import b`` imports the module a.b where there is one, else a name of a.
        return [f"{base}.{a.name}" if f"{base}.{a.name}" in self.trees else base for a in node.names]

    def top(self, module: str) -> str:
        """``boneage.engine.loader`` -> ``engine``; the package itself -> ``""``."""
        parts = module.split(".")
        return parts[1] if len(parts) > 1 else ""


def find_cycles(edges: Iterable[tuple[str, str]]) -> list[list[str]]:
    """Strongly connected components with more than one module, or a module importing itself."""
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph[node]:
                    found.append(sorted(component))
    return found


def parse_layers(layers: tuple[str, ...]) -> tuple[dict[str, int], set[frozenset[str]]]:
    """Layer index of each name (0 = top) and the pairs of siblings that must stay independent."""
    rank: dict[str, int] = {}
    independent: set[frozenset[str]] = set()
    for i, layer in enumerate(layers):
        sep = "|" if "|" in layer else ":"
        assert not ("|" in layer and ":" in layer), f"mixed separators in layer {layer!r}"
        names = [n.strip() for n in layer.split(sep)]
        for name in names:
            assert name not in rank, f"{name} is in two layers"
            rank[name] = i
        if sep == "|":
            independent |= {frozenset((a, b)) for a in names for b in names if a != b}
    return rank, independent


def cycles(pkg: Package) -> list[list[str]]:
    return find_cycles((i.importer, i.target) for i in pkg.imports() if i.importer != i.target)


def unplaced(pkg: Package, layers: tuple[str, ...]) -> list[str]:
    rank, _ = parse_layers(layers)
    return sorted({pkg.top(m) for m in pkg.trees} - set(rank) - {""})


def layer_violations(pkg: Package, layers: tuple[str, ...]) -> list[str]:
    rank, independent = parse_layers(layers)
    bad = []
    for imp in pkg.imports():
        a, b = pkg.top(imp.importer), pkg.top(imp.target)
        if a == b or a not in rank or b not in rank:
            continue                  # inside one part, the package root, or unplaced (reported apart)
        if rank[b] < rank[a]:
            bad.append(f"upward: {imp}")
        elif frozenset((a, b)) in independent:
            bad.append(f"between independent siblings {a} and {b}: {imp}")
    return bad


def forbidden_imports(pkg: Package, pairs: tuple[tuple[str, str], ...]) -> list[str]:
    banned = {p for a, b in pairs for p in ((a, b), (b, a))}
    return [str(i) for i in pkg.imports() if (pkg.top(i.importer), pkg.top(i.target)) in banned]


def banned_third_party(pkg: Package, never: dict[str, tuple[str, ...]]) -> list[str]:
    return [str(i) for i in pkg.external_imports() if i.target in never.get(pkg.top(i.importer), ())]


def env_reads(pkg: Package, domain: tuple[str, ...]) -> dict[str, list[str]]:
    """Domain modules that read the environment, with what they read and where."""
    found: dict[str, list[str]] = {}
    for module, tree in pkg.trees.items():
        if pkg.top(module) not in domain:
            continue
        os_names = {"os"}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                os_names |= {a.asname or a.name for a in node.names if a.name == "os"}
        for node in ast.walk(tree):
            what = None
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in os_names \
                    and node.attr in ("environ", "environb", "getenv", "getenvb"):
                what = f"os.{node.attr}"
            elif isinstance(node, ast.ImportFrom) and node.module == "os" \
                    and any(a.name in ("environ", "environb", "getenv", "getenvb") for a in node.names):
                what = "from os import environ/getenv"
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr == "from_env" and not node.args and not node.keywords:
                what = f"{ast.unparse(node.func)}() (reads the environment)"
            if what:
                found.setdefault(module, []).append(f"{what} at line {node.lineno}")
    return found


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_uses(pkg: Package) -> list[tuple[str, str, str]]:
    """(module, library, use) for each private name of a third-party library the package uses."""
    stdlib = set(sys.stdlib_module_names)
    found = []
    for module, tree in pkg.trees.items():
        bound: dict[str, str] = {}          # local name -> the library's dotted module it stands for
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    bound[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                for a in node.names:
                    bound[a.asname or a.name] = f"{node.module}.{a.name}"
        for node in ast.walk(tree):
            uses: list[str] = []
            if isinstance(node, ast.Import):
                uses = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                uses = [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Attribute):
                chain = []
                inner: ast.AST = node
                while isinstance(inner, ast.Attribute):
                    chain.append(inner.attr)
                    inner = inner.value
                if isinstance(inner, ast.Name) and inner.id in bound:
                    uses = [".".join([bound[inner.id], *reversed(chain)])]
            for use in uses:
                library = use.split(".")[0]
                if library in stdlib or library == pkg.name:
                    continue
                if any(_is_private(part) for part in use.split(".")):
                    found.append((module, library, f"{use} (line {node.lineno})"))
    return found


def misplaced_private_uses(pkg: Package) -> list[str]:
    return sorted({f"{module}: {use}" for module, library, use in private_uses(pkg)
                   if module != f"{pkg.name}.{COMPAT}.{COMPAT_MODULE.get(library, library)}"})


@pytest.fixture(scope="module")
def package() -> Package:
    return Package.read(ROOT, PACKAGE)


def test_the_whole_package_is_read(package: Package) -> None:
    assert len(package.trees) > 60
    imports = {(i.importer, i.target) for i in package.imports()}
    assert ("boneage.service", "boneage.report") in imports
    assert ("boneage.engine.loader", "boneage.engine.weights") in imports


def test_no_import_cycles(package: Package) -> None:
    assert cycles(package) == []


def test_every_part_of_the_package_has_a_layer(package: Package) -> None:
    assert unplaced(package, LAYERS) == []


def test_no_upward_imports_and_independent_siblings_stay_apart(package: Package) -> None:
    assert layer_violations(package, LAYERS) == []


def test_adapters_and_model_never_import_each_other(package: Package) -> None:
    assert forbidden_imports(package, FORBIDDEN) == []


def test_no_aws_in_the_domain_and_no_torch_in_the_adapters(package: Package) -> None:
    assert banned_third_party(package, NEVER_IMPORT) == []


def test_domain_modules_never_read_the_environment(package: Package) -> None:
    reads = env_reads(package, DOMAIN)
    assert {m: r for m, r in reads.items() if m not in ENV_READS_BEING_REMOVED} == {}
    assert sorted(ENV_READS_BEING_REMOVED - set(reads)) == [], "fixed: delete these from the list"


def test_private_third_party_apis_are_used_only_in_their_compat_module(package: Package) -> None:
    assert misplaced_private_uses(package) == []
    used = {library for _, library, _ in private_uses(package)}
    assert {"torch", "pydicom", "highdicom", "_CharLS"} <= used     # the reader still sees them (in compat)


# The checks themselves, on a small package written for them: each rule catches what it is for.

def _write(root: Path, files: dict[str, str]) -> Package:
    for rel, text in files.items():
        path = root / "pkg" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return Package.read(root / "pkg", "pkg")


def test_a_lazy_import_that_closes_a_cycle_is_found(tmp_path: Path) -> None:
    pkg = _write(tmp_path, {
        "__init__.py": "",
        "low/__init__.py": "",
        "low/a.py": "from pkg.low import b\n",
        "low/b.py": "def f():\n    from . import a\n    return a\n",
        "low/c.py": "from .b import f\n",
    })
    assert cycles(pkg) == [["pkg.low.a", "pkg.low.b"]]


def test_an_upward_import_and_a_sibling_import_are_found(tmp_path: Path) -> None:
    pkg = _write(tmp_path, {
        "__init__.py": "",
        "top.py": "import pkg.mid\n",
        "mid.py": "from pkg import low\n",
        "other.py": "def f():\n    import pkg.mid\n",
        "low.py": "def f():\n    from pkg.top import x\n",
        "new.py": "",
    })
    layers = ("top", "mid | other", "low")
    assert layer_violations(pkg, layers) == [
        "upward: pkg.low -> pkg.top (line 2)",
        "between independent siblings other and mid: pkg.other -> pkg.mid (line 2)",
    ]
    assert unplaced(pkg, layers) == ["new"]


def test_forbidden_pairs_and_banned_libraries_are_found_in_both_directions(tmp_path: Path) -> None:
    pkg = _write(tmp_path, {
        "__init__.py": "",
        "adapters/__init__.py": "import torch\n",
        "adapters/s3.py": "from pkg.model import net\n",
        "model/__init__.py": "",
        "model/net.py": "def f():\n    from pkg.adapters import s3\n",
    })
    assert forbidden_imports(pkg, (("adapters", "model"),)) == [
        "pkg.adapters.s3 -> pkg.model.net (line 1)", "pkg.model.net -> pkg.adapters.s3 (line 2)"]
    assert banned_third_party(pkg, {"adapters": ("torch",)}) == ["pkg.adapters -> torch (line 1)"]


def test_environment_reads_are_found_in_every_spelling(tmp_path: Path) -> None:
    pkg = _write(tmp_path, {
        "__init__.py": "",
        "config.py": "import os\nX = os.environ['X']\n",
        "domain/__init__.py": "",
        "domain/a.py": "import os as o\ndef f():\n    return o.getenv('X')\n",
        "domain/b.py": "from os import environ\n",
        "domain/c.py": "def f(Limits):\n    return Limits.from_env()\n",
        "domain/d.py": "def f(Limits, env):\n    return Limits.from_env(env)\n",
    })
    assert env_reads(pkg, ("domain",)) == {
        "pkg.domain.a": ["os.getenv at line 3"],
        "pkg.domain.b": ["from os import environ/getenv at line 1"],
        "pkg.domain.c": ["Limits.from_env() (reads the environment) at line 2"],
    }


def test_private_library_names_are_found_outside_compat_only(tmp_path: Path) -> None:
    pkg = _write(tmp_path, {
        "__init__.py": "",
        "compat/__init__.py": "",
        "compat/torch.py": "import torch\nL = torch._C._aoti\n",
        "engine.py": ("import torch\nimport highdicom as hd\nfrom pydicom.filereader import _read\n"
                      "import torch.utils._pytree as pt\nv = torch.__version__\nx = hd.sr._content\n"
                      "import os\ny = os._exit\n"),
    })
    assert misplaced_private_uses(pkg) == [
        "pkg.engine: highdicom.sr._content (line 6)",
        "pkg.engine: pydicom.filereader._read (line 3)",
        "pkg.engine: torch.utils._pytree (line 4)",
    ]
