"""Contract of ``boneage.compat.torch``: the private PyTorch APIs the engine uses keep their shape.

A torch upgrade that moves or reshapes one of them fails here, naming it. The AOTInductor loader is
also run end to end by ``tests/unit/engine/test_build.py`` (build a package, load it through
``AotiPackage`` without importing the compiler).
"""

from __future__ import annotations

import inspect
import re

import torch
from torch import nn

from boneage.compat import torch as compat


def test_pytree_flattens_and_rebuilds_nested_stage_outputs() -> None:
    out = (torch.ones(2, 3), {"boxes": torch.zeros(2, 4), "scores": [torch.arange(2.0)]})
    leaves, spec = compat.tree_flatten(out)
    assert len(leaves) == 3 and all(isinstance(t, torch.Tensor) for t in leaves)
    rebuilt = compat.tree_unflatten([t * 2 for t in leaves], spec)
    assert torch.equal(rebuilt[1]["scores"][0], torch.arange(2.0) * 2)
    halved = compat.tree_map(lambda t: t / 2, out)
    assert torch.equal(halved[0], torch.full((2, 3), 0.5))


def test_an_output_spec_serialised_by_aotinductor_is_read_back() -> None:
    import torch.utils._pytree as pytree

    _, spec = pytree.tree_flatten((torch.ones(1), [torch.ones(1), torch.ones(1)]))
    assert compat.treespec_loads(pytree.treespec_dumps(spec)) == spec


def test_the_aoti_package_loader_takes_path_name_single_thread_runners_device() -> None:
    loader = torch._C._aoti.AOTIModelPackageLoader
    signature = re.search(r"__init__\(self: [^,]+, (.*)\) -> None", loader.__init__.__doc__ or "")
    assert signature, loader.__init__.__doc__
    types = [arg.split(": ", 1)[1] for arg in re.split(r", (?=arg\d)", signature.group(1))]
    assert types[:3] == ["str", "str", "bool"] and len(types) == 5
    assert all("SupportsInt" in t or t == "int" for t in types[3:])
    assert callable(loader.boxed_run) and callable(loader.get_call_spec)


def test_batch_norm_base_covers_every_batch_norm_layer_and_nothing_else() -> None:
    for layer in (nn.BatchNorm1d(2), nn.BatchNorm2d(2), nn.BatchNorm3d(2), nn.SyncBatchNorm(2)):
        assert isinstance(layer, compat.BatchNormBase)
    for layer in (nn.LayerNorm(2), nn.GroupNorm(1, 2), nn.InstanceNorm2d(2), nn.Conv2d(1, 1, 1)):
        assert not isinstance(layer, compat.BatchNormBase)


def test_inductor_config_is_patched_only_inside_the_context() -> None:
    import torch._inductor.config as config

    before = config.freezing
    with compat.inductor_config(freezing=not before):
        assert config.freezing is (not before)
    assert config.freezing is before


def test_aoti_compile_and_package_takes_a_path_and_inductor_configs() -> None:
    import torch._inductor

    params = inspect.signature(torch._inductor.aoti_compile_and_package).parameters
    assert {"package_path", "inductor_configs"} <= set(params)
    assert all(params[p].kind is inspect.Parameter.KEYWORD_ONLY for p in ("package_path", "inductor_configs"))


def test_the_vector_isa_is_named_by_str() -> None:
    from torch._inductor import cpu_vec_isa

    assert not inspect.signature(cpu_vec_isa.pick_vec_isa).parameters
    name = compat.vec_isa_name()
    assert isinstance(name, str)
    # One ISA, or on an AMX host the extensions it stacks ("avx512 avx512_vnni amx_tile"), which
    # ``engine.build.aoti_cpu_features`` reads by substring.
    known = {"avx2", "avx512", "avx512_vnni", "amx_tile", "asimd", "neon", "sve256", "vsx", "zvector"}
    assert set(name.split()) <= known, name
