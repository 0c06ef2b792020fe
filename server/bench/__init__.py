"""Benchmarks of the serving engine: vs plain transformers (`presso bench engine`), per KV codec (`bench kv`).

Only the argparse registration lives here, so the console script does not import torch to build its parser.
"""

from __future__ import annotations

from presso.server.engine.args import add_engine_args


def _engine(args) -> int:
    from presso.server.bench import engine_bench

    return engine_bench.command(args)


def _kv(args) -> int:
    from presso.server.bench import kv_bench

    return kv_bench.command(args)


def _bench_subparsers(sub):
    """The `bench` command's subparsers, shared with other packages' `presso bench ...` commands."""
    import argparse

    bench = sub.choices.get("bench") or sub.add_parser("bench", help="micro and engine benchmarks")
    for action in bench._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return bench.add_subparsers(dest="bench_cmd", required=True, metavar="WHAT")


def register(sub) -> None:
    """Adds `presso bench engine` and `presso bench kv` to the console script."""
    bench = _bench_subparsers(sub)
    p = bench.add_parser("engine", help="presso engine vs transformers generate(): decode and aggregate tok/s")
    p.add_argument("--model", required=True, help="model dir or pulled name")
    p.add_argument("--baseline-model", default=None, help="transformers baseline (default: --model)")
    p.add_argument("--baseline-dtype", default=None, help="baseline dtype (default: presso's)")
    p.add_argument("--batches", default="1,16,64")
    p.add_argument("--prompt-len", type=int, default=32)
    p.add_argument("--tokens", type=int, default=64)
    add_engine_args(p, ["dtype", "device", "kernel_backend", "kv_cache_memory", "lm_head_quant",
                        "max_num_batched_tokens"])
    p.add_argument("--threads", type=int, default=None, help="torch threads for both engines (default: torch's)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_engine)

    k = bench.add_parser("kv", help="engine decode tok/s per KV-cache codec (ratios vs the first)")
    k.add_argument("--model", required=True, help="model dir or pulled name")
    k.add_argument("--kv-caches", default="bf16,int8,kivi2",
                   help="comma list of CODEC[+wN][=MODEL_DIR] (an RVQ setting is a checkpoint with codebooks; "
                        "+wN: last N tokens exact)")
    k.add_argument("--batches", default="1,32")
    k.add_argument("--prompt-len", type=int, default=64)
    k.add_argument("--tokens", type=int, default=32)
    add_engine_args(k, ["dtype", "device", "kernel_backend", "kv_cache_memory", "max_num_batched_tokens"],
                    max_num_batched_tokens=2048)
    k.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    k.add_argument("--json", action="store_true")
    k.set_defaults(func=_kv)
