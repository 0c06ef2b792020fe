"""`presso bench impl`: the generic model path's cost, its tokens/s vs the native path on the same model.

Both engines (model_impl native and transformers) are loaded in one process and measured in alternating
reps (native, generic, native, ...), so drift on a shared machine hits both alike. Per batch size B each rep
decodes --tokens greedy tokens for B random prompts of --prompt-len tokens (engine_bench.bench_presso):
decode tokens/s counts from the first generated token, aggregate tokens/s is the wall time with prefill.
Reported: the median of the reps per engine and the generic/native ratio of the medians.
"""

from __future__ import annotations

import statistics

import torch

from presso.compression.checkpoint import PressoInputError
from presso.server.bench.engine_bench import bench_presso, emit
from presso.server.engine.args import engine_kwargs
from presso.server.engine.config import EngineConfig
from presso.server.engine.core import EngineCore

IMPLS = ("native", "transformers")


def run(args) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    batches = [int(b) for b in args.batches.split(",")]
    cores = {}
    for impl in IMPLS:
        cfg = EngineConfig(model=args.model, **engine_kwargs(args), model_impl=impl, max_num_seqs=max(batches),
                           enable_prefix_caching=False)
        try:
            cores[impl] = EngineCore(cfg)
        except ValueError as exc:  # no native class for this family, bad settings: one user-facing line
            raise PressoInputError(f"--model {args.model} ({impl}): {exc}") from None
        bench_presso(cores[impl], 2, 8, 4, seed=99)  # warm-up
    reps: dict[str, dict[int, list[dict]]] = {impl: {b: [] for b in batches} for impl in IMPLS}
    for _ in range(args.repeats):
        for b in batches:
            for impl in IMPLS:  # alternating: native then generic, every rep and batch size
                reps[impl][b].append(bench_presso(cores[impl], b, args.prompt_len, args.tokens, seed=b))
    rows = []
    for b in batches:
        row = {"batch": b}
        for impl in IMPLS:
            for key in ("decode_tokens_per_s", "tokens_per_s"):
                row[f"{impl}_{key}"] = statistics.median(r[key] for r in reps[impl][b])
        row["ratio_decode"] = row["transformers_decode_tokens_per_s"] / row["native_decode_tokens_per_s"]
        row["ratio_aggregate"] = row["transformers_tokens_per_s"] / row["native_tokens_per_s"]
        rows.append(row)
    return {"model": args.model, "dtype": str(cores["native"].dtype).replace("torch.", ""),
            "threads": torch.get_num_threads(), "prompt_len": args.prompt_len, "tokens": args.tokens,
            "repeats": args.repeats, "rows": rows}


def print_table(r: dict) -> None:
    print(f"model {r['model']} ({r['dtype']}); {r['threads']} threads, prompt {r['prompt_len']}, {r['tokens']} new "
          f"tokens, median of {r['repeats']} alternating reps; generic = --model-impl transformers")
    print(f"{'batch':>5} {'native dec tok/s':>16} {'generic dec tok/s':>17} {'ratio':>6} "
          f"{'native agg tok/s':>16} {'generic agg tok/s':>17} {'ratio':>6}")
    for row in r["rows"]:
        print(f"{row['batch']:>5} {row['native_decode_tokens_per_s']:>16.1f} "
              f"{row['transformers_decode_tokens_per_s']:>17.1f} {row['ratio_decode']:>6.2f} "
              f"{row['native_tokens_per_s']:>16.1f} {row['transformers_tokens_per_s']:>17.1f} "
              f"{row['ratio_aggregate']:>6.2f}")


def command(args) -> int:
    return emit(run(args), args.json, print_table)
