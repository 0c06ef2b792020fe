"""The flags of `presso bench peers` (no torch, no httpx: building the console script's parser stays cheap)."""

from __future__ import annotations

import argparse


def _csv_ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def add_peers_parser(bench, func) -> None:
    from presso.kernels.envs import presso_home

    home = presso_home()
    p = bench.add_parser("peers", help="presso serve vs llama.cpp's llama-server, same loadtest, one run "
                                       "(needs `make peers`)")
    p.add_argument("--servers", type=lambda t: [s.strip() for s in t.split(",") if s.strip()],
                   default=["llama", "presso"],
                   help="comma list of presso, presso-compile, presso-thread, presso-process, llama; ratios are to the first "
                        "(default: llama,presso)")
    p.add_argument("--model", default=str(home / "checkpoints" / "smollm2-135m-w4g64"),
                   help="presso checkpoint served and benchmarked as int4 (default: %(default)s)")
    p.add_argument("--model-int8", default=str(home / "checkpoints" / "smollm2-135m-w8"),
                   help="presso checkpoint for the int8 batch-1 row (default: %(default)s)")
    p.add_argument("--dense-model", default="smollm2-135m", help="HF model converted to GGUF for llama.cpp")
    p.add_argument("--prompt-file", default=str(home / "data" / "austen" / "pride-and-prejudice.txt"))
    p.add_argument("--streams", type=_csv_ints, default=[1, 8, 32], help="concurrent streams (default: 1,8,32)")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of closed-loop load per point")
    p.add_argument("--rounds", type=int, default=1, help="loads per (server, streams); the best is reported")
    p.add_argument("--output-tokens", type=int, default=64)
    p.add_argument("--threads", type=int, default=2, help="llama.cpp -t and presso bench engine --threads")
    p.add_argument("--llama-parallel", type=int, default=32, help="llama-server -np")
    p.add_argument("--llama-ctx", type=int, default=32768, help="llama-server -c")
    p.add_argument("--batch1", action=argparse.BooleanOptionalAction, default=True,
                   help="also llama-bench tg128 vs presso bench engine at batch 1")
    p.add_argument("--out", default="docs/results/peers.md", help="markdown report (default: %(default)s)")
    p.add_argument("--plots", default=None, help="PNG folder (default: next to --out, <stem>/)")
    p.add_argument("--work-dir", default=str(home / "peers" / "runs"), help="server logs, loadtest JSON")
    p.set_defaults(func=func)
