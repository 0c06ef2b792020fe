"""Compressed KV codecs in the engine: int8 and RVQ pages, code-space decode attention, and
teacher-forced perplexity through the paged cache (`presso eval --kv-cache`)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from presso.compression.checkpoint.errors import PressoInputError
from presso.compression.checkpoint.kv_codebooks import KV_FILE, load_kv_codebooks, save_kv_codebooks
from presso.compression.kv_rvq.calibrate import calibrate_rvq, parse_kv_spec
from presso.kernels.attention.reference import attend_one
from presso.server.kv.codecs import KV_CODECS
from presso.server.kv.quant_codecs import Int8Codec, RVQCodec


@pytest.fixture(scope="module")
def rvq_model_dir(tiny_llama_dir, sample_text_file, tmp_path_factory):
    """The tiny model plus RVQ codebooks calibrated on the sample text."""
    out = tmp_path_factory.mktemp("rvq") / "model"
    shutil.copytree(tiny_llama_dir, out)
    model = AutoModelForCausalLM.from_pretrained(out).eval()
    tok = AutoTokenizer.from_pretrained(out)
    ids = torch.tensor(tok(sample_text_file.read_text(), add_special_tokens=False)["input_ids"][:1024]).view(8, 128)
    spec = parse_kv_spec("rvq:stages=4,codebook=64,group=8")
    spec, layers, report = calibrate_rvq(model, ids, spec, progress=False)
    save_kv_codebooks(out, spec, layers, report)
    return out


def test_registry_has_compressed_codecs():
    assert {"int8", "rvq", "bf16", "fp16", "fp32"} <= set(KV_CODECS)


def _slots_round_trip(codec, n=20):
    pages = codec.allocate(num_blocks=4, block_size=8)
    k, v = torch.randn(n, codec.num_kv_heads, codec.head_dim), torch.randn(n, codec.num_kv_heads, codec.head_dim)
    table = torch.tensor([2, 0, 3])
    slots = torch.cat([b * 8 + torch.arange(8) for b in table.tolist()])[:n]
    codec.write(pages, slots, k, v)
    kk, vv = codec.read(pages, table, n)
    return pages, table, k, v, kk, vv


def test_int8_codec_round_trip_and_size():
    codec = Int8Codec(2, 16)
    _, _, k, v, kk, vv = _slots_round_trip(codec)
    assert (kk - k).abs().max() < k.abs().max() / 100 and (vv - v).abs().max() < v.abs().max() / 100
    assert codec.bytes_per_token() == 2 * 2 * (16 + 2)


def test_rvq_codec_decode_attention_matches_code_space(rvq_model_dir):
    codec = RVQCodec(2, 16, rvq_model_dir, layer=0)
    assert codec.bytes_per_token() == 2 * 2 * (2 * 4 * 1 + 2)  # 2 groups x 4 stages x 1 byte + fp16 RMS
    pages, table, k, v, kk, vv = _slots_round_trip(codec)
    q = torch.randn(4, 16)
    ref = attend_one(q[None], kk, vv, 0.25)[0]
    fast = codec.attend_decode(q, pages, table, 20, 0.25)
    torch.testing.assert_close(fast, ref, rtol=1e-4, atol=1e-5)


def test_codebook_file_is_versioned(rvq_model_dir, tmp_path):
    spec, layers = load_kv_codebooks(rvq_model_dir)
    assert spec.stages == 4 and len(layers) == 2
    (tmp_path / KV_FILE).write_bytes((rvq_model_dir / KV_FILE).read_bytes()[:200])
    with pytest.raises(PressoInputError, match=KV_FILE):
        load_kv_codebooks(tmp_path)
    with pytest.raises(PressoInputError, match="stages"):
        parse_kv_spec("rvq:stages=0")
    with pytest.raises(PressoInputError, match="codec"):
        parse_kv_spec("pq:stages=2")


def test_eval_through_compressed_caches(cli, rvq_model_dir, sample_text_file):
    def run(*extra):
        r = cli("eval", "--model", str(rvq_model_dir), "--text", str(sample_text_file), "--ctx", "128",
                "--max-tokens", "512", "--json", *extra)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout.strip().splitlines()[-1])

    plain = run()
    fp32 = run("--kv-cache", "fp32")
    int8 = run("--kv-cache", "int8")
    rvq = run("--kv-cache", "rvq")
    assert fp32["kv_cache"] == "fp32" and plain["kv_cache"] is None
    assert fp32["perplexity"] == pytest.approx(plain["perplexity"], rel=1e-4)  # same math, paged
    assert int8["perplexity"] == pytest.approx(plain["perplexity"], rel=5e-3)
    assert rvq["perplexity"] != fp32["perplexity"]  # the codes really are in the attention path
    assert rvq["perplexity"] == pytest.approx(plain["perplexity"], rel=0.2)
