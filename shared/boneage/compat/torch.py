"""PyTorch internals the engine relies on (torch is pinned to the release its artifacts are built for).

- pytree (``torch.utils._pytree``): flattening the nested outputs of a stage, and the output
  TreeSpec an AOTInductor package stores. torch 2.13 has no public pytree module.
- ``AotiPackage``: an AOTInductor package run through torch's C++ loader
  (``torch._C._aoti.AOTIModelPackageLoader``). ``torch._inductor.aoti_load_package`` does the same
  but first imports torch._inductor and torch._dynamo, ~1.5 s of a cold start on 2 vCPUs spent on
  compiler code a pre-compiled package never calls (measured: 10 ms to load this way).
- ``BatchNormBase``: the base class of every batch norm layer (``torch.nn.modules.batchnorm``),
  which the deploy form checks it has folded away; torch exports only the concrete classes.
- Inductor at build time only: ``aoti_compile_and_package`` and ``inductor_config`` (documented,
  but under the private ``torch._inductor``), and ``vec_isa_name``, the vector ISA Inductor
  compiles for (``torch._inductor.cpu_vec_isa``), which manifests record. ``torch._inductor`` is
  imported inside these functions only: a service that loads artifacts never pays for it.

``tests/unit/compat/test_compat_torch.py`` pins the shapes used here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ContextManager

import torch
from torch.nn.modules.batchnorm import _BatchNorm as BatchNormBase
from torch.utils._pytree import tree_flatten, tree_map, tree_unflatten, treespec_loads


class AotiPackage:
    """Runs an AOTInductor package (``model`` in it, on CPU) through torch's C++ loader."""

    def __init__(self, path: Path) -> None:
        # (package path, model name, run single-threaded, number of runners, device index: -1 CPU)
        self._loader = torch._C._aoti.AOTIModelPackageLoader(str(path), "model", False, 1, -1)
        self._out_spec = treespec_loads(self._loader.get_call_spec()[1])

    def __call__(self, *inputs: torch.Tensor) -> Any:
        return tree_unflatten(self._loader.boxed_run(list(inputs)), self._out_spec)


def aoti_compile_and_package(program: Any, package_path: str, inductor_configs: dict[str, Any]) -> str:
    """Compile an exported program into an AOTInductor package at ``package_path``; its path."""
    import torch._inductor

    return str(torch._inductor.aoti_compile_and_package(program, package_path=package_path,
                                                         inductor_configs=inductor_configs))


def inductor_config(**options: Any) -> ContextManager[None]:
    """Inductor's configuration patched with ``options`` while the context is open."""
    import torch._inductor.config

    return torch._inductor.config.patch(**options)


def vec_isa_name() -> str:
    """The vector ISA Inductor generates code for on this host ("avx512", "avx2", "" for none...)."""
    from torch._inductor import cpu_vec_isa

    return str(cpu_vec_isa.pick_vec_isa())


__all__ = ["AotiPackage", "BatchNormBase", "aoti_compile_and_package", "inductor_config", "tree_flatten", "tree_map",
           "tree_unflatten", "vec_isa_name"]
