"""`presso bench engine`: presso's engine vs plain transformers generate(), measured in the same run.

For each batch size B (default 1, 16, 64) both run B random prompts of --prompt-len tokens and generate
exactly --tokens greedy tokens each. Reported: batch-1 decode tokens/s (prefill excluded: presso times
from the first token, transformers as (N-1) / (t(N) - t(1))), aggregate generated tokens/s at each B
(wall time including prefill), their ratios, and peak RSS. The baseline may be another checkpoint
(`--baseline-model`, e.g. the fp32 original of an int4 checkpoint).
"""

from __future__ import annotations

import json
import resource
import time

import torch

from presso.compression.checkpoint import PressoInputError, resolve_model_dir
from presso.server.engine.args import engine_kwargs
from presso.server.engine.config import EngineConfig
from presso.server.engine.core import EngineCore
from presso.server.engine.types import SamplingParams


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _prompts(batch: int, length: int, vocab: int, seed: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(100, vocab - 1, (batch, length), generator=g).tolist()


def bench_presso(core: EngineCore, batch: int, prompt_len: int, tokens: int, seed: int) -> dict:
    params = SamplingParams(max_tokens=tokens, temperature=0.0, ignore_eos=True)
    for i, p in enumerate(_prompts(batch, prompt_len, core.vocab_size, seed)):
        core.add_request(f"bench-{seed}-{i}", p, params)
    start = time.perf_counter()
    first = None
    generated = 0
    while core.has_work():
        for d in core.step():
            generated += len(d.new_token_ids)
        if first is None and generated >= batch:
            first, first_tokens = time.perf_counter(), generated
    end = time.perf_counter()
    decode = (generated - first_tokens) / (end - first) if end > first else float("nan")
    return {"generated": generated, "seconds": end - start, "tokens_per_s": generated / (end - start),
            "decode_tokens_per_s": decode}


def bench_transformers(model, batch: int, prompt_len: int, tokens: int, seed: int, vocab: int) -> dict:
    ids = torch.tensor(_prompts(batch, prompt_len, vocab, seed))
    mask = torch.ones_like(ids)

    def gen(n: int) -> float:
        t = time.perf_counter()
        with torch.inference_mode():
            model.generate(ids, attention_mask=mask, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                           pad_token_id=0)
        return time.perf_counter() - t

    t_all = gen(tokens)
    out = {"generated": batch * tokens, "seconds": t_all, "tokens_per_s": batch * tokens / t_all}
    if batch == 1:
        t_one = gen(1)
        out["decode_tokens_per_s"] = (tokens - 1) / max(t_all - t_one, 1e-9)
    return out


def run(args) -> dict:
    from transformers import AutoModelForCausalLM

    batches = [int(b) for b in args.batches.split(",")]
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = EngineConfig(model=args.model, **engine_kwargs(args), max_num_seqs=max(batches), enable_prefix_caching=False)
    try:
        core = EngineCore(cfg)
    except ValueError as exc:  # a bad device, dtype or budget: one user-facing line
        raise PressoInputError(str(exc)) from None
    bench_presso(core, 2, 8, 4, seed=99)  # warm-up
    presso = {b: bench_presso(core, b, args.prompt_len, args.tokens, seed=b) for b in batches}
    presso_rss = peak_rss_mib()
    stats = core.stats()
    base_dir = args.baseline_model or str(core.model_dir)
    dtype = str(core.dtype).replace("torch.", "")
    base_dtype = args.baseline_dtype or dtype
    del core
    model = AutoModelForCausalLM.from_pretrained(
        resolve_model_dir(base_dir), dtype=getattr(torch, base_dtype)).eval()
    vocab = model.config.vocab_size
    bench_transformers(model, 1, 8, 2, seed=99, vocab=vocab)  # warm-up
    hf = {b: bench_transformers(model, b, args.prompt_len, args.tokens, seed=b, vocab=vocab) for b in batches}
    result = {
        "model": str(args.model), "dtype": dtype, "baseline_model": base_dir,
        "baseline_dtype": base_dtype, "threads": torch.get_num_threads(), "prompt_len": args.prompt_len,
        "tokens": args.tokens, "bits_per_weight": round(stats.bits_per_weight, 2),
        "presso": presso, "transformers": hf, "presso_peak_rss_mib": round(presso_rss),
        "peak_rss_mib": round(peak_rss_mib()),
    }
    ratios = {}
    if 1 in batches:
        ratios["decode_b1"] = presso[1]["decode_tokens_per_s"] / hf[1]["decode_tokens_per_s"]
    for b in batches:
        ratios[f"aggregate_b{b}"] = presso[b]["tokens_per_s"] / hf[b]["tokens_per_s"]
        if 1 in batches:
            ratios[f"aggregate_b{b}_vs_transformers_b1"] = presso[b]["tokens_per_s"] / hf[1]["tokens_per_s"]
    result["ratios"] = ratios
    return result


def print_table(r: dict) -> None:
    print(f"model {r['model']} ({r['dtype']}, {r['bits_per_weight']} bits/weight) vs transformers "
          f"{r['baseline_model']} ({r['baseline_dtype']}); {r['threads']} threads, prompt {r['prompt_len']}, "
          f"{r['tokens']} new tokens")
    print(f"{'batch':>6} {'presso tok/s':>13} {'transformers tok/s':>19} {'ratio':>7}")
    for b, p in r["presso"].items():
        h = r["transformers"][b]
        print(f"{b:>6} {p['tokens_per_s']:>13.1f} {h['tokens_per_s']:>19.1f} {p['tokens_per_s'] / h['tokens_per_s']:>7.2f}")
    if 1 in r["presso"]:
        p1, h1 = r["presso"][1]["decode_tokens_per_s"], r["transformers"][1]["decode_tokens_per_s"]
        print(f"decode batch 1: presso {p1:.1f} tok/s, transformers {h1:.1f} tok/s, ratio {p1 / h1:.2f}")
    for k, v in r["ratios"].items():
        if k.endswith("_vs_transformers_b1"):
            print(f"{k}: {v:.2f}")
    print(f"peak RSS: presso phase {r['presso_peak_rss_mib']} MiB, whole run {r['peak_rss_mib']} MiB")


def emit(result: dict, as_json: bool, table) -> int:
    """Print a bench's result as JSON or through its table printer; the command's exit status."""
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        table(result)
    return 0


def command(args) -> int:
    try:
        result = run(args)
    except ValueError as exc:  # bad engine settings or checkpoint: one user-facing line
        raise PressoInputError(str(exc)) from None
    return emit(result, args.json, print_table)
