"""KV cache sizing from a memory budget, codec registry, and the reference attention path for any codec."""

from __future__ import annotations

import pytest

from presso.server.engine import LLM, SamplingParams
from presso.server.kv.cache import KVCache, parse_memory
from presso.server.kv.codecs import KV_CODECS, Fp32Codec, register_codec, resolve_codec_name


def test_parse_memory():
    assert parse_memory("2GiB") == 2 * 1024**3
    assert parse_memory("512MiB") == 512 * 1024**2
    assert parse_memory("0.25") == 0.25 and parse_memory(0.5) == 0.5
    assert parse_memory(4096) == 4096
    for bad in ("lots", "-1GiB", "2XB", 0):
        with pytest.raises(ValueError, match="kv_cache_memory"):
            parse_memory(bad)


def test_smaller_codec_means_more_blocks():
    fp32 = KVCache("fp32", num_layers=2, num_kv_heads=2, head_dim=16, block_size=4, memory="1MiB")
    bf16 = KVCache("bf16", num_layers=2, num_kv_heads=2, head_dim=16, block_size=4, memory="1MiB")
    assert fp32.bytes_per_token == 2 * 2 * 2 * 16 * 4 and bf16.bytes_per_token == fp32.bytes_per_token // 2
    assert fp32.num_blocks == 1024**2 // (4 * fp32.bytes_per_token) and bf16.num_blocks == 2 * fp32.num_blocks
    assert fp32.nbytes <= 1024**2
    with pytest.raises(ValueError, match="too small"):
        KVCache("fp32", 2, 2, 16, 4, memory=100)


def test_codec_names():
    assert {"fp32", "bf16", "fp16"} <= set(KV_CODECS)
    with pytest.raises(ValueError, match="kv_cache_dtype"):
        resolve_codec_name("int3", None)


@register_codec("test-opaque-fp32")
class OpaqueFp32(Fp32Codec):
    """Same storage as fp32 but not `plain`: forces the reference gather + dequant + attention path."""

    plain = False


def test_reference_path_for_non_plain_codecs(parity_llama_dir):
    prompts = [list(range(3, 3 + n)) for n in (5, 40, 70)]
    params = SamplingParams(max_tokens=12, temperature=0)
    kw = dict(dtype="float32", block_size=4, max_num_batched_tokens=32, kv_cache_memory="4MiB")
    fast = LLM(parity_llama_dir, kv_cache_dtype="fp32", **kw).generate(prompts, params)
    ref = LLM(parity_llama_dir, kv_cache_dtype="test-opaque-fp32", **kw).generate(prompts, params)
    assert [o.token_ids for o in fast] == [o.token_ids for o in ref]
