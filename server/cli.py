"""The `presso` console script: one argparse tree for offline and online subcommands.

Offline commands (pull, data, eval, ...) come from presso.compression.cli; serving commands register
here. User-input errors print one line `presso: error: ...` and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys

from presso.compression import cli as offline_cli
from presso.compression.checkpoint.errors import PressoInputError
from presso.server import serve


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="presso", description="compress Hugging Face LLMs and serve them")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    offline_cli.register(sub)
    serve.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except PressoInputError as exc:
        print(f"presso: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("presso: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
