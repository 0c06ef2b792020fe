"""AQLM through the recipe pipeline on a tiny random Llama: `compress` with an `aqlm` recipe -> a checkpoint
in AQLM's HF layout -> presso's eval loader and the serving engine.

The written tensors must decode (kernel spec) to weights whose model the loader reproduces and whose greedy
output the engine reproduces; the report must count AQLM's bytes; `presso compress --recipe` must write the
same kind of checkpoint from the command line and refuse bad input with exit status 2.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from transformers import AutoModelForCausalLM

from presso.compression.aqlm.module import AQLMLinear
from presso.compression.checkpoint.errors import PressoInputError
from presso.compression.eval.loader import load_model
from presso.compression.quantize import CompressOptions, compress
from presso.kernels.aqlm.reference import dequantize

RECIPE = "steps:\n  - method: aqlm\n    params: {scheme: %s, rounds: 1, kmeans_iters: 2, cg_iters: 4}\n"
LINEARS = 2 * 7  # q k v o gate up down in each of the 2 decoder layers


@pytest.fixture(scope="module")
def checkpoint(tiny_llama_dir, sample_text_file, tmp_path_factory):
    root = tmp_path_factory.mktemp("aqlm")
    (root / "aqlm.yaml").write_text(RECIPE % "2x8")
    out = root / "ckpt"
    report = compress(CompressOptions(
        model_dir=tiny_llama_dir, recipe=str(root / "aqlm.yaml"), out=out, calib=str(sample_text_file),
        calib_samples=4, calib_len=32, batch_size=2, eval_text=str(sample_text_file), eval_tokens=512, eval_ctx=128,
        progress=False))
    return out, report


def dequantized_reference(checkpoint_dir, dense_dir) -> torch.nn.Module:
    """The dense model with every quantized linear's weight decoded from the files by the kernel spec."""
    model = AutoModelForCausalLM.from_pretrained(dense_dir, dtype=torch.float32).eval()
    with safe_open(str(checkpoint_dir / "model.safetensors"), "pt") as f:
        for key in [k for k in f.keys() if k.endswith(".codes")]:
            name = key.removesuffix(".codes")
            weight = dequantize(f.get_tensor(key), f.get_tensor(f"{name}.codebooks"), f.get_tensor(f"{name}.scales"))
            model.get_submodule(name).weight.data = weight
    return model


def test_every_decoder_linear_is_quantized_and_reported(checkpoint):
    _, report = checkpoint
    layers = report["layers"]
    assert len(layers) == LINEARS and {x["method"] for x in layers} == {"aqlm"}
    assert all(x["output_sqnr_db"] > 5 for x in layers), [x["output_sqnr_db"] for x in layers]
    params = 2 * (4 * 64 * 64 + 3 * 64 * 128 - 2 * 64 * 32)  # q, o 64x64; k, v 32x64 (GQA); gate, up, down
    assert report["parameters"]["quantized"] == params
    # int8 codes: 2 per 8 weights; fp16 codebooks (2, 256, 1, 8) per linear; one fp16 scale per output row
    rows = 2 * (64 + 32 + 32 + 64 + 128 + 128 + 64)
    stored = params * 2 // 8 + LINEARS * 2 * 256 * 8 * 2 + rows * 2
    assert report["bytes"]["quantized_linears"] == stored
    assert report["bits_per_weight"]["quantized_linears"] == pytest.approx(8 * stored / params)
    assert report["format"] == "aqlm" and report["perplexity"]["after"] > 0


def test_checkpoint_uses_aqlm_hf_layout(checkpoint):
    out, _ = checkpoint
    qc = json.loads((out / "config.json").read_text())["quantization_config"]
    assert qc == {"quant_method": "aqlm", "in_group_size": 8, "out_group_size": 1, "num_codebooks": 2,
                  "nbits_per_codebook": 8, "linear_weights_not_to_quantize": ["lm_head.weight"]}
    presso = json.loads((out / "presso.json").read_text())
    assert presso["format_version"] == 1 and presso["format"] == "aqlm"
    assert presso["recipe"]["steps"][0]["params"]["scheme"] == "2x8"
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
        codes = f.get_tensor("model.layers.0.mlp.gate_proj.codes")
        books = f.get_tensor("model.layers.0.mlp.gate_proj.codebooks")
        scales = f.get_tensor("model.layers.0.mlp.gate_proj.scales")
    assert codes.shape == (128, 8, 2) and codes.dtype == torch.int8
    assert books.shape == (2, 256, 1, 8) and books.dtype == torch.float16
    assert scales.shape == (128, 1, 1, 1) and scales.dtype == torch.float16
    assert sum(k.endswith(".codes") for k in keys) == LINEARS
    assert "model.layers.0.mlp.gate_proj.weight" not in keys and "lm_head.weight" not in keys
    assert (out / "tokenizer.json").exists() and not list(out.parent.glob(".ckpt.tmp-*"))


def test_eval_loader_reproduces_the_dequantized_model(checkpoint, tiny_llama_dir):
    out, _ = checkpoint
    loaded = load_model(out)
    assert isinstance(loaded.model.layers[1].self_attn.q_proj, AQLMLinear)
    ids = torch.randint(0, 300, (2, 32), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = dequantized_reference(out, tiny_llama_dir)(ids).logits
        torch.testing.assert_close(loaded(ids).logits, want, rtol=1e-4, atol=1e-4)


def test_engine_serves_it_with_the_dequantized_models_greedy_output(checkpoint, tiny_llama_dir):
    from presso.server.engine import LLM, SamplingParams

    out, _ = checkpoint
    prompts = [list(range(3, 3 + n)) for n in (5, 40)]
    outs = LLM(out, dtype="float32", lm_head_quant="none", kv_cache_memory="8MiB").generate(
        prompts, SamplingParams(max_tokens=16, temperature=0))
    ref = dequantized_reference(out, tiny_llama_dir)
    for prompt, got in zip(prompts, outs, strict=True):
        want = ref.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                            max_new_tokens=16, do_sample=False, pad_token_id=0)[0, len(prompt):].tolist()
        assert list(got.token_ids) == want


def test_loader_refuses_unknown_format_version(checkpoint, tmp_path):
    import shutil

    out, _ = checkpoint
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "presso.json").write_text(json.dumps({"format_version": 99}))
    with pytest.raises(PressoInputError, match="format_version"):
        load_model(copy)


def test_cli_compress_writes_checkpoint_and_eval_reads_it(cli, tiny_llama_dir, sample_text_file, tmp_path):
    (tmp_path / "aqlm.yaml").write_text(RECIPE % "1x8")
    out = tmp_path / "q"
    args = ["--model", str(tiny_llama_dir), "--calib", str(sample_text_file), "--calib-samples", "2",
            "--calib-len", "32"]
    result = cli("compress", *args, "--recipe", str(tmp_path / "aqlm.yaml"), "--out", str(out),
                 "--eval", str(sample_text_file), "--eval-tokens", "512", "--eval-ctx", "128", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert len(report["layers"]) == LINEARS and report["format"] == "aqlm"
    assert json.loads((out / "config.json").read_text())["quantization_config"]["num_codebooks"] == 1
    evaluated = cli("eval", "--model", str(out), "--text", str(sample_text_file), "--ctx", "128",
                    "--max-tokens", "512", "--json")
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert json.loads(evaluated.stdout)["perplexity"] == pytest.approx(report["perplexity"]["after"], rel=1e-6)
    again = cli("compress", *args, "--recipe", "aqlm-1x8", "--out", str(out))  # existing output dir
    assert again.returncode == 2 and "already exists" in again.stderr
    (tmp_path / "bad.yaml").write_text(RECIPE % "2y8")
    bad = cli("compress", *args, "--recipe", str(tmp_path / "bad.yaml"), "--out", str(tmp_path / "z"))
    assert bad.returncode == 2 and "steps.0.params.scheme" in bad.stderr and not (tmp_path / "z").exists()
