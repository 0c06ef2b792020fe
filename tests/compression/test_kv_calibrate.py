"""`presso kv-calibrate`: RVQ codebooks beside a model's unchanged weights, and stage prefixes of them."""

from __future__ import annotations

import json

import torch

from presso.compression.checkpoint.kv_codebooks import KV_FILE, load_kv_codebooks
from presso.server.engine import LLM, SamplingParams

SPEC = "rvq:stages=3,codebook=32,group=8"


def test_kv_calibrate_beside_unchanged_weights(tiny_llama_dir, sample_text_file, tmp_path, cli):
    out = tmp_path / "kv3"
    r = cli("kv-calibrate", "--model", str(tiny_llama_dir), "--out", str(out), "--kv", SPEC,
            "--calib", str(sample_text_file), "--calib-len", "64")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["keys"] == "pre_rope" and summary["bytes_per_token_per_layer"] == 2 * 2 * (2 * 3 + 2)
    spec, layers = load_kv_codebooks(out)
    assert (spec.stages, spec.entries, spec.group) == (3, 32, 8) and layers[0].k_books.shape == (3, 32, 8)
    for item in tiny_llama_dir.iterdir():  # every model file is the source's, unchanged
        assert (out / item.name).is_symlink() and (out / item.name).resolve() == item.resolve()
    assert not (tiny_llama_dir / KV_FILE).exists()
    llm = LLM(out, kv_cache_dtype="rvq", kv_cache_memory="1MiB", dtype="float32", kv_window=4)
    assert llm.engine.kv.bytes_per_token == 2 * summary["bytes_per_token_per_layer"]
    assert len(llm.generate([[5, 6, 7, 8]], SamplingParams(max_tokens=3, temperature=0.0))[0].token_ids) == 3

    cut = tmp_path / "kv2"
    r = cli("kv-calibrate", "--model", str(tiny_llama_dir), "--out", str(cut), "--from", str(out),
            "--kv", "rvq:stages=2,codebook=32,group=8")
    assert r.returncode == 0, r.stderr
    spec2, layers2 = load_kv_codebooks(cut)
    assert spec2.stages == 2 and spec2.keys == spec.keys
    for full, prefix in zip(layers, layers2, strict=True):
        assert torch.equal(prefix.k_books, full.k_books[:2]) and torch.equal(prefix.v_books, full.v_books[:2])
        assert torch.equal(prefix.k_perm, full.k_perm) and torch.equal(prefix.v_perm, full.v_perm)

    bad = cli("kv-calibrate", "--model", str(tiny_llama_dir), "--out", str(tmp_path / "bad"), "--from", str(out),
              "--kv", "rvq:stages=2,codebook=64,group=8")
    assert bad.returncode == 2 and "codebook=32" in bad.stderr and not (tmp_path / "bad").exists()
    again = cli("kv-calibrate", "--model", str(tiny_llama_dir), "--out", str(out), "--kv", SPEC,
                "--calib", str(sample_text_file), "--calib-len", "64")
    assert again.returncode == 2 and "already exists" in again.stderr
