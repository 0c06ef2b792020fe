"""Exact recent window for compressed KV codecs (server/kv/window.py) inside the engine.

A window covering the whole context makes every compressed codec read exact (bf16) K/V, so outputs match
the bf16 cache; a short window gives the same scores however the prompt is chunked and decoded (the
ring carries the last W tokens across steps); it lowers the error against bf16; its rings come out of
the memory budget; requests beyond max_num_seqs reuse ring rows; bad settings are refused."""

from __future__ import annotations

import json

import pytest

from presso.server.engine import LLM, SamplingParams
from presso.server.engine.config import EngineConfig
from presso.server.engine.core import EngineCore

PROMPT = [5 + (7 * i) % 90 for i in range(40)]
SCORE = SamplingParams(max_tokens=0, temperature=0.0, prompt_logprobs=0)


def _scores(model_dir, codec, window=0, chunk=512, **kw) -> list[float]:
    llm = LLM(model_dir, dtype="float32", kv_cache_dtype=codec, kv_window=window, block_size=4,
              kv_cache_memory="2MiB", max_num_batched_tokens=chunk, enable_prefix_caching=False, max_num_seqs=4,
              **kw)
    (out,) = llm.generate([PROMPT], SCORE)
    return [e.logprob for e in out.prompt_logprobs[1:]]


def _err(a, b) -> float:
    return max(abs(x - y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("codec", ["int8", "kivi2", "rvq"])
def test_window_over_the_whole_context_reads_exact_values(kv_model_dir, codec):
    exact = _scores(kv_model_dir, "bf16")
    assert _err(_scores(kv_model_dir, codec, window=64, chunk=9), exact) < 1e-3
    params = SamplingParams(max_tokens=12, temperature=0.0)
    kw = dict(dtype="float32", block_size=4, kv_cache_memory="2MiB", max_num_batched_tokens=9, max_num_seqs=4)
    want = LLM(kv_model_dir, kv_cache_dtype="bf16", **kw).generate([PROMPT[:20]], params)[0].token_ids
    got = LLM(kv_model_dir, kv_cache_dtype=codec, kv_window=64, **kw).generate([PROMPT[:20]], params)[0].token_ids
    assert got == want


@pytest.mark.parametrize("codec", ["int8", "rvq"])
def test_short_window_is_independent_of_chunking_and_closer_to_bf16(kv_model_dir, codec):
    one = _scores(kv_model_dir, codec, window=6, chunk=512)
    for chunk in (1, 5, 13):  # token by token (decode path), and chunks that straddle the window
        # K/V computed in another batch shape differ by float noise, which can flip a bf16 rounding or a
        # code at a few positions (~1e-3); a ring holding wrong positions shifts every score by ~1e-1
        assert _err(_scores(kv_model_dir, codec, window=6, chunk=chunk), one) < 1e-2, chunk
    exact, plain = _scores(kv_model_dir, "bf16"), _scores(kv_model_dir, codec)
    mean = lambda a: sum(abs(x - y) for x, y in zip(a, exact, strict=True)) / len(a)  # noqa: E731
    assert mean(one) < mean(plain), (mean(one), mean(plain))


def test_rings_come_out_of_the_budget_and_rows_are_reused(kv_model_dir):
    def core(window):
        return EngineCore(EngineConfig(model=kv_model_dir, dtype="float32", kv_cache_dtype="rvq", kv_window=window,
                                       kv_cache_memory=64 * 1024, block_size=4, max_num_seqs=2))
    plain, windowed = core(0), core(8)
    ring = 2 * 2 * 8 * 2 * 16 * 2 * 2  # layers * rows * W * Hkv * D * (K, V) * bf16 bytes
    assert windowed.kv.window_bytes == ring
    per_block = 4 * plain.kv.bytes_per_token
    assert windowed.kv.num_blocks == (64 * 1024 - ring) // per_block < plain.kv.num_blocks
    assert not windowed.block_manager.enable_prefix_caching  # cached prefixes hold codes only
    params = SamplingParams(max_tokens=5, temperature=0.0)
    llm = LLM(kv_model_dir, dtype="float32", kv_cache_dtype="rvq", kv_window=8, block_size=4, max_num_seqs=2,
              kv_cache_memory="2MiB")
    outs = llm.generate([PROMPT[i:i + 10] for i in range(6)], params)  # 6 requests through 2 ring rows
    alone = [llm.generate([PROMPT[i:i + 10]], params)[0].token_ids for i in range(6)]
    assert [o.token_ids for o in outs] == alone
    assert sorted(llm.engine.scheduler._window_slots) == [0, 1]


def test_bad_window_settings_are_refused(kv_model_dir):
    with pytest.raises(ValueError, match="kv_window"):
        EngineCore(EngineConfig(model=kv_model_dir, kv_cache_dtype="bf16", kv_window=16))
    with pytest.raises(ValueError, match="kv_window"):
        EngineConfig(model=kv_model_dir, kv_cache_dtype="rvq", kv_window=-1).validate()


def test_cli_window_flags(kv_model_dir, cli):
    r = cli("bench", "kv", "--model", str(kv_model_dir), "--kv-caches", "rvq,rvq+w8", "--batches", "2",
            "--prompt-len", "8", "--tokens", "12", "--kv-cache-memory", "4MiB", "--threads", "1", "--json")
    assert r.returncode == 0, r.stderr
    assert [row["kv_cache"] for row in json.loads(r.stdout)["rows"]] == ["rvq", "rvq+w8"]
    bad = cli("bench", "kv", "--model", str(kv_model_dir), "--kv-caches", "rvq+wide")
    assert bad.returncode == 2 and "+wN" in bad.stderr
    bad = cli("eval", "--model", str(kv_model_dir), "--text", "x", "--kv-window", "8")
    assert bad.returncode == 2 and "--kv-cache" in bad.stderr
