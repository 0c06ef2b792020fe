"""CLI registration for AQLM: `presso aqlm ...` and `presso bench kernels`.

Mounted by presso.compression.cli.register (one line there). `presso aqlm` runs compression/aqlm/run.py;
`presso bench kernels` runs presso.kernels.bench (the bottom layer, which needs nothing from here).
If a `bench` subcommand already exists (e.g. registered by the server with `bench engine`), `kernels`
is added beside the existing ones instead of registering `bench` twice.
"""

from __future__ import annotations

import argparse
import json
import sys

from presso.compression.checkpoint.model_dir import resolve_model_dir


def _cmd_aqlm(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    from presso.compression.aqlm.config import parse_scheme
    from presso.compression.aqlm.run import AQLMJob, run_aqlm
    from presso.kernels import envs

    if envs.num_threads():
        torch.set_num_threads(envs.num_threads())
    cfg = parse_scheme(args.config, rounds=args.rounds, beam_width=args.beam, cg_iters=args.cg_iters,
                       kmeans_iters=args.kmeans_iters)
    job = AQLMJob(
        model_dir=resolve_model_dir(args.model), out=Path(args.out).expanduser(), cfg=cfg, calib=args.calib,
        calib_samples=args.calib_samples, calib_len=args.calib_len, eval_text=args.eval, eval_ctx=args.ctx,
        eval_tokens=args.eval_tokens, layers=_parse_layers(args.layers),
    )
    report = run_aqlm(job, progress=sys.stderr.isatty() or args.progress)
    summary = {k: v for k, v in report.items() if k != "layers"}
    print(json.dumps(summary, indent=None if args.json else 2))
    return 0


def _parse_layers(text: str | None) -> frozenset[int] | None:
    """'3' | '0,5,7' | '0-3' -> decoder layer indices; None = all layers."""
    if text is None:
        return None
    from presso.compression.checkpoint.errors import PressoInputError

    out: set[int] = set()
    try:
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            out.update(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise PressoInputError(f"--layers must look like 3 or 0-3 or 0,5,7, got {text!r}") from None
    if not out or min(out) < 0:
        raise PressoInputError(f"--layers must name decoder layers >= 0, got {text!r}")
    return frozenset(out)


def register(sub: argparse._SubParsersAction) -> None:
    a = sub.add_parser("aqlm", help="additive quantization (AQLM) of a dense model into AQLM's HF layout")
    a.add_argument("--model", required=True, help="dense model dir, embedded model name or hub id")
    a.add_argument("--out", required=True, help="output checkpoint directory (must not exist or be empty)")
    a.add_argument("--config", default="2x8", help="codebooks x bits: 1x16 (~2 bit), 2x8 (~2 bit), 1x8 (~1 bit)")
    a.add_argument("--calib", default="austen:emma", help="calibration text spec")
    a.add_argument("--calib-samples", type=int, default=32, help="calibration windows")
    a.add_argument("--calib-len", type=int, default=512, help="tokens per calibration window")
    a.add_argument("--rounds", type=int, default=None, help="codebook/scale/code alternations (default 2)")
    a.add_argument("--beam", type=int, default=None, help="beam width of the code search (default 1)")
    a.add_argument("--cg-iters", type=int, default=None, help="CG iterations per codebook update (default 15)")
    a.add_argument("--kmeans-iters", type=int, default=None, help="k-means iterations at init (default 8)")
    a.add_argument("--layers", default=None, help="only these decoder layers (e.g. 3 or 0-2); others stay dense")
    a.add_argument("--eval", default=None, help="text spec for perplexity before/after (e.g. austen:pride-and-prejudice)")
    a.add_argument("--eval-tokens", type=int, default=8192, help="score the first N tokens of --eval")
    a.add_argument("--ctx", type=int, default=1024, help="perplexity window length")
    a.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    a.add_argument("--progress", action="store_true", help="force progress bars on")
    a.set_defaults(func=_cmd_aqlm)
