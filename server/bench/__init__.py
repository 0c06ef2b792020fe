"""`presso bench ...`: the engine vs plain transformers (`engine`), per KV codec (`kv`), structured
outputs' grammar cost (`guided`), presso serve vs llama.cpp's llama-server (`peers`), and each weight codec's CPU matmul vs bf16 dense (`kernels`).

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


def _guided(args) -> int:
    from presso.server.bench import guided_bench

    return guided_bench.command(args)


def _peers(args) -> int:
    from presso.server.bench import peers

    return peers.command(args)


def _kernels(args) -> int:
    import json

    from presso.kernels.bench import format_table, run_bench

    rows = run_bench(batches=tuple(args.batch), repeats=args.repeats, threads=args.threads)
    print(json.dumps([r.to_dict() for r in rows]) if args.json else format_table(rows))
    return 0


def register(sub) -> None:
    """Adds `presso bench engine|kv|kernels` to the console script."""
    bench = sub.add_parser("bench", help="micro and engine benchmarks").add_subparsers(
        dest="bench_cmd", required=True, metavar="WHAT")
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

    g = bench.add_parser("guided", help="structured outputs: grammar time per token vs the decode step")
    g.add_argument("--model", required=True, help="model dir or pulled name")
    g.add_argument("--batches", default="1,16")
    g.add_argument("--prompt-len", type=int, default=32)
    g.add_argument("--tokens", type=int, default=64)
    g.add_argument("--repeats", type=int, default=3, help="alternating plain/guided runs (best of)")
    g.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    g.add_argument("--json", action="store_true")
    add_engine_args(g, ["dtype", "device", "kernel_backend", "kv_cache_memory", "lm_head_quant"])
    g.set_defaults(func=_guided)

    from presso.server.bench.peers_args import add_peers_parser

    add_peers_parser(bench, _peers)

    c = bench.add_parser("kernels", help="CPU weight-codec matmul times vs bf16 dense, SmolLM2 shapes")
    c.add_argument("--batch", type=int, nargs="+", default=[1, 16], help="activation rows")
    c.add_argument("--repeats", type=int, default=20, help="timed calls per measurement (median reported)")
    c.add_argument("--threads", type=int, default=1, help="torch threads during the benchmark")
    c.add_argument("--json", action="store_true", help="print one JSON list")
    c.set_defaults(func=_kernels)
