"""`presso bench kv`: decode tokens/s of the engine per KV-cache codec, measured in one run.

Each entry of --kv-caches is `CODEC[+wN][=MODEL_DIR]` (an RVQ setting lives in a checkpoint's
presso_kv.safetensors, so two RVQ settings are two directories; +wN keeps each sequence's last N tokens
exact too, server/kv/window.py). For every entry and batch size B the
engine decodes --tokens greedy tokens for B random prompts; decode tokens/s counts from the first
generated token (prefill excluded). The first entry (bf16 by default) is the baseline of the ratios.
"""

from __future__ import annotations

import torch

from presso.compression.checkpoint import PressoInputError
from presso.server.bench.engine_bench import bench_presso, emit
from presso.server.engine.args import engine_kwargs
from presso.server.engine.config import EngineConfig
from presso.server.engine.core import EngineCore


def parse_entries(text: str, model: str) -> list[tuple[str, str, int, str]]:
    """'bf16,rvq+w64=DIR' -> [(label, codec, recent window, model dir)]; labels are unique."""
    out = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        spec, _, path = item.partition("=")
        codec, _, win = spec.partition("+w")
        if win and not win.isdigit():
            raise PressoInputError(f"--kv-caches {item}: a window is written +wN, e.g. rvq+w64")
        out.append((item if path else spec, codec, int(win or 0), path or model))
    if not out:
        raise PressoInputError("--kv-caches: give at least one codec, e.g. bf16,int8,kivi2,rvq")
    return out


def run(args) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    batches = [int(b) for b in args.batches.split(",")]
    rows = []
    for label, codec, window, model in parse_entries(args.kv_caches, args.model):
        cfg = EngineConfig(model=model, **engine_kwargs(args), kv_cache_dtype=codec, max_num_seqs=max(batches),
                           enable_prefix_caching=False, kv_window=window)
        try:
            core = EngineCore(cfg)
        except ValueError as exc:  # unknown codec, missing codebooks: one user-facing line
            raise PressoInputError(f"--kv-caches {label}: {exc}") from None
        bench_presso(core, 2, 8, 4, seed=99)  # warm-up
        row = {"kv_cache": label, "bytes_per_token": core.kv.bytes_per_token,
               "bytes_per_token_per_layer": core.kv.bytes_per_token / core.model.num_layers}
        for b in batches:
            row[f"decode_tok_s_b{b}"] = bench_presso(core, b, args.prompt_len, args.tokens, seed=b)["decode_tokens_per_s"]
        rows.append(row)
        del core
    base = rows[0]
    for row in rows:
        row["compression_vs_baseline"] = base["bytes_per_token"] / row["bytes_per_token"]
        for b in batches:
            row[f"speed_vs_baseline_b{b}"] = row[f"decode_tok_s_b{b}"] / base[f"decode_tok_s_b{b}"]
    return {"model": args.model, "threads": torch.get_num_threads(), "prompt_len": args.prompt_len,
            "tokens": args.tokens, "batches": batches, "baseline": base["kv_cache"], "rows": rows}


def print_table(r: dict) -> None:
    print(f"model {r['model']}; {r['threads']} threads, prompt {r['prompt_len']}, {r['tokens']} new tokens; "
          f"ratios vs {r['baseline']}")
    head = f"{'kv cache':<28} {'B/token/layer':>13} {'smaller':>8}"
    head += "".join(f" {'tok/s b' + str(b):>11} {'ratio':>6}" for b in r["batches"])
    print(head)
    for row in r["rows"]:
        line = f"{row['kv_cache']:<28} {row['bytes_per_token_per_layer']:>13.1f} {row['compression_vs_baseline']:>7.2f}x"
        line += "".join(f" {row[f'decode_tok_s_b{b}']:>11.1f} {row[f'speed_vs_baseline_b{b}']:>6.2f}"
                        for b in r["batches"])
        print(line)


def command(args) -> int:
    return emit(run(args), args.json, print_table)
