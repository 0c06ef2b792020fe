"""Compressed KV codecs inside the engine: admission at a fixed KV memory budget (RVQ admits >= 4x the
sequences bf16 does) and prefix caching that leaves a sequence's outputs unchanged, for every codec."""

from __future__ import annotations

import json

import pytest

from presso.server.engine import LLM, SamplingParams
from presso.server.engine.config import EngineConfig
from presso.server.engine.core import EngineCore

CODECS = ("bf16", "int8", "kivi2", "rvq")


def _admitted(model_dir, codec: str, budget: int) -> tuple[int, int]:
    """(sequences admitted in the first step, KV bytes per token) for 200 waiting 16-token prompts."""
    core = EngineCore(EngineConfig(model=model_dir, dtype="float32", kv_cache_dtype=codec, kv_cache_memory=budget,
                                   block_size=4, max_num_seqs=256, max_num_batched_tokens=8192,
                                   enable_prefix_caching=False))
    params = SamplingParams(max_tokens=4, temperature=0.0)
    for i in range(200):
        core.add_request(f"r{i}", [3 + (i + j) % 50 for j in range(16)], params)
    out = core.scheduler.schedule()
    return len(out.seqs), core.kv.bytes_per_token


def test_fixed_budget_admits_4x_more_sequences_with_rvq(kv_model_dir):
    budget = 32 * 1024
    n_bf16, b_bf16 = _admitted(kv_model_dir, "bf16", budget)
    n_rvq, b_rvq = _admitted(kv_model_dir, "rvq", budget)
    n_kivi, b_kivi = _admitted(kv_model_dir, "kivi2", budget)
    n_int8, _ = _admitted(kv_model_dir, "int8", budget)
    assert b_bf16 == 2 * 2 * 2 * 16 * 2 and b_rvq == 2 * 2 * 2 * (2 * 2 + 2)  # 2 layers, K and V, 2 heads
    assert 0 < n_bf16 < n_int8 < n_kivi < n_rvq
    assert n_rvq >= 4 * n_bf16, (n_bf16, n_rvq)


@pytest.mark.parametrize("codec", CODECS)
def test_prefix_sharing_leaves_outputs_unchanged(kv_model_dir, codec):
    a = list(range(5, 35))  # 30 tokens: 7 full blocks of 4 and a partial one
    b = a[:20] + [90, 91, 92, 93, 94]
    c = a[:12] + [70, 71, 72]
    params = SamplingParams(max_tokens=10, temperature=0.0)
    kw = dict(dtype="float32", kv_cache_dtype=codec, block_size=4, kv_cache_memory="1MiB")
    alone = LLM(kv_model_dir, enable_prefix_caching=False, **kw).generate([a], params)[0]
    llm = LLM(kv_model_dir, enable_prefix_caching=True, **kw)
    first = llm.generate([b], params)[0]  # computes the blocks a shares with b
    shared = llm.generate([a, c], params)
    assert shared[0].num_cached_prompt_tokens == 20 and shared[1].num_cached_prompt_tokens == 12
    assert shared[0].token_ids == alone.token_ids
    assert first.num_cached_prompt_tokens == 0


def test_bench_kv_reports_every_codec_against_bf16(kv_model_dir, cli):
    r = cli("bench", "kv", "--model", str(kv_model_dir), "--kv-caches", "bf16,int8,kivi2,rvq", "--batches", "1,4",
            "--prompt-len", "8", "--tokens", "6", "--kv-cache-memory", "4MiB", "--threads", "1", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    rows = {row["kv_cache"]: row for row in out["rows"]}
    assert list(rows) == ["bf16", "int8", "kivi2", "rvq"] and out["baseline"] == "bf16"
    assert rows["bf16"]["speed_vs_baseline_b1"] == 1.0 and rows["rvq"]["compression_vs_baseline"] == 64 / 12
    assert all(row[f"decode_tok_s_b{b}"] > 0 for row in rows.values() for b in (1, 4))
    bad = cli("bench", "kv", "--model", str(kv_model_dir), "--kv-caches", "int3")
    assert bad.returncode == 2 and "int3" in bad.stderr
