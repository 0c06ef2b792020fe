"""`presso compress --kv rvq:...`: KV codebooks calibrated into the checkpoint (presso_kv.safetensors,
presso.json, report.json) and found by the engine (`presso eval --kv-cache rvq`, `LLM(kv_cache_dtype=)`)."""

from __future__ import annotations

import json

import pytest

from presso.compression.checkpoint.kv_codebooks import KV_FILE, load_kv_codebooks
from presso.server.engine import LLM, SamplingParams

CALIB = ("--calib-samples", "4", "--calib-len", "64")


def test_compress_with_kv_writes_codebooks_the_engine_serves(tiny_llama_dir, sample_text_file, tmp_path, cli):
    out = tmp_path / "ck"
    r = cli("compress", "--model", str(tiny_llama_dir), "--recipe", "w8", "--out", str(out),
            "--calib", str(sample_text_file), *CALIB, "--kv", "rvq:stages=3,codebook=32,group=8", "--json")
    assert r.returncode == 0, r.stderr
    spec, layers = load_kv_codebooks(out)
    assert (spec.stages, spec.entries, spec.group) == (3, 32, 8) and len(layers) == 2
    assert spec.keys == "pre_rope"  # keys=auto on a RoPE model: coded before RoPE
    assert layers[0].k_books.shape == (3, 32, 8)
    report = json.loads((out / "report.json").read_text())["kv_cache"]
    presso = json.loads((out / "presso.json").read_text())["kv_cache"]
    # head_dim 16, 2 KV heads: (2 groups x 3 stages x 1 byte + fp16 RMS) per head vector, K and V
    assert report["bytes_per_token_per_layer"] == presso["bytes_per_token_per_layer"] == 2 * 2 * (2 * 3 + 2)
    assert report["compression_vs_bf16"] == pytest.approx(128 / 32)
    assert len(report["layers"]) == 2 and all(row["k_sqnr_db"] > 3 and row["v_sqnr_db"] > 3
                                              for row in report["layers"])
    assert report["bytes"] == (out / KV_FILE).stat().st_size and presso["file"] == KV_FILE
    # the weight-size report counts weights only, not the KV codebooks
    w8 = json.loads((out / "report.json").read_text())["bits_per_weight"]["quantized_linears"]
    assert 8 <= w8 < 9.5

    ev = cli("eval", "--model", str(out), "--text", str(sample_text_file), "--ctx", "64", "--max-tokens", "256",
             "--json", "--kv-cache", "rvq")
    assert ev.returncode == 0, ev.stderr
    assert json.loads(ev.stdout.strip().splitlines()[-1])["kv_cache"] == "rvq"
    llm = LLM(out, kv_cache_dtype="rvq", kv_cache_memory="1MiB", dtype="float32")
    assert llm.engine.kv.bytes_per_token == 2 * report["bytes_per_token_per_layer"]
    assert len(llm.generate([[5, 6, 7, 8]], SamplingParams(max_tokens=3, temperature=0.0))[0].token_ids) == 3


@pytest.mark.parametrize("args,message", [
    (("--kv", "rvq:stages=2", "--calib", "mix:kjv=-1"), "positive weight"),
    (("--kv", "pq:stages=2", "--calib", "x"), "unknown KV codec"),
    (("--kv", "rvq:stages=two", "--calib", "x"), "integer"),
])
def test_compress_kv_input_errors(tiny_llama_dir, tmp_path, cli, args, message):
    r = cli("compress", "--model", str(tiny_llama_dir), "--recipe", "w8", "--out", str(tmp_path / "o"), *args)
    assert r.returncode == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "o").exists()

