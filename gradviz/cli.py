"""The ``gradviz`` command: one sub-command per module in ``gradviz/commands``.

Each command module defines ``register(subparsers)``, which adds its parser and sets
``func`` to a function ``(args) -> int``. A :class:`~gradviz.errors.GradvizError` (or a
``FileNotFoundError``) ends the program with one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from gradviz.errors import GradvizError

# Sub-commands in the order ``gradviz --help`` lists them; each is gradviz/commands/<name>.py.
COMMANDS = ["report", "layers", "dream", "compare", "overlap", "generators", "discriminator"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gradviz", description="See, measure and remove grid artifacts in CNN gradients."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"gradviz.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"gradviz.commands.{name}":
                continue  # command not built yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (GradvizError, FileNotFoundError) as exc:
        print(f"gradviz {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
