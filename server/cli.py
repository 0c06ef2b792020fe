"""The `presso` console script: the one module that registers every subcommand, offline and online.

Each subsystem exposes the functions that add its parsers (presso.compression.cli.add_*, the distill,
serve and bench `register`s); `build_parser` calls them all, in `presso --help` order. `eval` gets the
engine flags of `--kv-cache` scoring from presso.server.engine.args here, when it is registered.
User-input errors print one line `presso: error: ...` and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys

from presso.compression import cli as offline_cli
from presso.compression.checkpoint.errors import PressoInputError
from presso.compression.distill import cli as distill_cli
from presso.server import bench, serve
from presso.server.engine.args import add_engine_args


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="presso", description="compress Hugging Face LLMs and serve them")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    offline_cli.add_pull(sub)
    offline_cli.add_data(sub)
    evaluate = offline_cli.add_eval(sub)
    add_engine_args(evaluate, ["kv_cache_dtype", "kv_window", "device", "kernel_backend"], kv_cache_dtype=None)
    evaluate.set_defaults(make_scorer=_engine_scorer)  # --kv-cache CODEC: score through the paged KV cache
    offline_cli.add_compress(sub)
    offline_cli.add_kv_calibrate(sub)
    distill_cli.register(sub)
    offline_cli.add_report(sub)
    offline_cli.add_sweep(sub)
    serve.register(sub)
    offline_cli.register_bench(bench.register(sub))  # `presso bench quality` lives with the compression code
    return parser


def _engine_scorer(args: argparse.Namespace):
    """The engine-backed window scorer for `presso eval --kv-cache CODEC` (None without the flag)."""
    if args.kv_cache_dtype is None:
        if args.kv_window:
            raise PressoInputError("--kv-window needs --kv-cache CODEC")
        return None
    from presso.compression.checkpoint import resolve_model_dir
    from presso.server.kv.scoring import EngineScorer

    try:
        return EngineScorer(resolve_model_dir(args.model), args.kv_cache_dtype, dtype=args.dtype, ctx=args.ctx,
                            kv_window=args.kv_window, device=args.device, kernel_backend=args.kernel_backend)
    except ValueError as exc:
        raise PressoInputError(f"--kv-cache {args.kv_cache_dtype}: {exc}") from None


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
