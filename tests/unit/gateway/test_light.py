"""The gateway's container has no numpy, torch, Pillow or highdicom: the gateway must run without them."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import boneage

BLOCKED = ("numpy", "torch", "PIL", "highdicom", "aws_lambda_powertools")


def test_the_gateway_imports_and_reads_a_header_with_the_heavy_libraries_absent(tmp_path):
    from .conftest import instance

    (tmp_path / "x.dcm").write_bytes(instance("1.2.3.4"))
    code = textwrap.dedent(f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {BLOCKED!r}:
                    raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        sys.meta_path.insert(0, Block())
        import boneage.gateway.runner, boneage.commands.gateway, boneage.cli
        from boneage.gateway.uploader import source_uids
        boneage.cli.build_parser()
        assert source_uids({str(tmp_path / "x.dcm")!r})["SOPInstanceUID"] == "1.2.3.4"
        print("ok", sorted(m for m in sys.modules if m.split(".")[0] in {BLOCKED!r}))
    """)
    env_path = str(Path(boneage.__file__).parents[1])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok []"
