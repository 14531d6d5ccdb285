"""The ``boneage`` console script: one sub-command per module in ``boneage.commands``.

Each command module exposes ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``.
Modules are imported only when their command runs, so ``boneage inspect`` never pays for torch.
With ``--json`` every command prints one JSON object per line on stdout; diagnostics go to stderr.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = ("inspect", "assess", "phantom", "train", "evaluate", "bench", "local", "gateway", "onboard")


def _load(name: str):
    return importlib.import_module(f"boneage.commands.{name}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="boneage", description="Paediatric bone age assessment")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = _load(name)
        except ModuleNotFoundError as exc:
            if exc.name != f"boneage.commands.{name}":
                raise
            continue
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._module.run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
