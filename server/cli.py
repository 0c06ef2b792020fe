"""The `presso` console script: one argparse tree for offline and online subcommands.

Offline commands (pull, data, eval, ...) come from presso.compression.cli; serving commands register
here. User-input errors print one line `presso: error: ...` and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys

from presso.compression import cli as offline_cli
from presso.compression.checkpoint.errors import PressoInputError
from presso.server import bench, serve
from presso.server.engine.args import add_engine_args


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="presso", description="compress Hugging Face LLMs and serve them")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    offline_cli.register(sub)
    serve.register(sub)
    offline_cli.register_bench(bench.register(sub))  # `presso bench quality` lives with the compression code
    evaluate = sub.choices["eval"]
    evaluate.add_argument("--kv-cache", default=None, metavar="CODEC",
                          help="score teacher-forced through presso's paged KV cache with this codec "
                               "(bf16, fp16, fp32, int8, kivi2, rvq); default: plain forward passes")
    add_engine_args(evaluate, ["kv_window", "device", "kernel_backend"])
    evaluate.set_defaults(make_scorer=_engine_scorer)
    return parser


def _engine_scorer(args: argparse.Namespace):
    """The engine-backed window scorer for `presso eval --kv-cache CODEC` (None without the flag)."""
    if args.kv_cache is None:
        if args.kv_window:
            raise PressoInputError("--kv-window needs --kv-cache CODEC")
        return None
    from presso.compression.checkpoint import resolve_model_dir
    from presso.server.kv.scoring import EngineScorer

    try:
        return EngineScorer(resolve_model_dir(args.model), args.kv_cache, dtype=args.dtype, ctx=args.ctx,
                            kv_window=args.kv_window, device=args.device, kernel_backend=args.kernel_backend)
    except ValueError as exc:
        raise PressoInputError(f"--kv-cache {args.kv_cache}: {exc}") from None


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
