"""`presso kv-calibrate`: KV-cache RVQ codebooks beside a model's unchanged weights (beside.py).

`presso kv-calibrate --model M --out DIR [--kv rvq:stages=S,...] [--calib mix]` calibrates on the first
KV_CALIB_WINDOWS windows of --calib; `--from DIR0 --kv rvq:stages=S'` instead keeps the first S' stages of
DIR0's codebooks (a residual k-means prefix), so a stage sweep needs one calibration.
"""

from __future__ import annotations

import argparse
import json

RECOMMENDED_KV = "rvq:stages=8,codebook=256,group=32"  # served with --kv-window 60: docs/results/kv_cache.md


def _cmd_kv_calibrate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from presso.compression.checkpoint.errors import PressoInputError
    from presso.compression.checkpoint.kv_codebooks import load_kv_codebooks
    from presso.compression.checkpoint.model_dir import resolve_model_dir
    from presso.compression.kv_rvq.beside import calibrate_beside, truncate_stages
    from presso.compression.kv_rvq.calibrate import parse_kv_spec

    model, out, spec = resolve_model_dir(args.model), Path(args.out).expanduser(), parse_kv_spec(args.kv)
    if args.source is None:
        report = calibrate_beside(model, out, spec, args.calib, args.calib_len, args.calib_seed, args.progress)
        summary = {key: value for key, value in report.items() if key != "layers"}
    else:
        src = Path(args.source).expanduser()
        have, _ = load_kv_codebooks(src)
        if (have.entries, have.group) != (spec.entries, spec.group):
            raise PressoInputError(f"--from {src} has codebook={have.entries},group={have.group}; "
                                   f"--kv asks for codebook={spec.entries},group={spec.group}")
        summary = {"truncated_from": str(src), "stages": truncate_stages(src, model, out, spec.stages).stages}
    print(json.dumps({"out": str(out), **summary}))
    return 0


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    k = sub.add_parser("kv-calibrate", help="RVQ KV-cache codebooks beside a model's unchanged weights "
                                            "(symlinks + presso_kv.safetensors)")
    k.add_argument("--model", required=True, help="model dir or embedded model name")
    k.add_argument("--out", required=True, help="new directory (must not exist)")
    k.add_argument("--kv", default=RECOMMENDED_KV, metavar="rvq[:stages=S,codebook=C,group=G,keys=...]",
                   help=f"codec spec (default {RECOMMENDED_KV}, keys=auto)")
    k.add_argument("--calib", default="mix", help="calibration text spec (default: mix)")
    k.add_argument("--calib-len", type=int, default=512, help="tokens per calibration window")
    k.add_argument("--calib-seed", type=int, default=0, help="where the mix's windows are drawn")
    k.add_argument("--from", dest="source", default=None,
                   help="keep the first --kv stages of this directory's codebooks instead of calibrating")
    k.add_argument("--progress", action="store_true", help="progress bars")
    k.set_defaults(func=_cmd_kv_calibrate)
    return k
