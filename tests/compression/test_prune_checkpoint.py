"""Pruned checkpoints on a tiny Llama: every format written, its mask persisted and honoured after reload by
presso eval's loader, transformers (where it can) and the presso engine (first-step logits equal the dense
model's with the same masked weights); report keys; a failed run leaves no output directory."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from presso.compression.calibration import calibration_windows, quantize_model
from presso.compression.checkpoint.errors import PressoInputError
from presso.compression.eval import loader
from presso.compression.quantize import CompressOptions, compress
from presso.compression.quantize.export import export_compressed
from presso.compression.recipes import load_recipe, resolve_plan

PROMPT = list(range(3, 40))
CASES = [  # recipe, --sparse-format, expected sparsity_config.format, expected presso.json format
    ("magnitude-50", "bitmask", "sparse-bitmask", "compressed-tensors/sparse-bitmask"),
    ("sparsegpt-2of4", "bitmask", "sparse-24-bitmask", "compressed-tensors/sparse-24-bitmask"),
    ("wanda-2of4", "dense", "dense", "compressed-tensors/dense"),
    ("sparsegpt-2of4-w4g64", "bitmask", "dense", "compressed-tensors/pack-quantized"),
]


def engine_logits(model_dir) -> torch.Tensor:
    from presso.server.engine.config import EngineConfig
    from presso.server.engine.core import EngineCore

    core = EngineCore(EngineConfig(model=model_dir, dtype="float32", kv_cache_memory="8MiB", lm_head_quant="none"))
    return core.prompt_logits(PROMPT)


def hf_logits(model) -> torch.Tensor:
    with torch.inference_mode():
        return model(torch.tensor([PROMPT])).logits[0].float()


@pytest.mark.parametrize("recipe,sparse_format,config_format,written", CASES)
def test_mask_persisted_and_honoured(tiny_llama_dir, sample_text_file, tmp_path, recipe, sparse_format,
                                     config_format, written):
    model = loader.load_model(tiny_llama_dir)
    windows = calibration_windows(loader.load_tokenizer(tiny_llama_dir), str(sample_text_file), 8, 64)
    result = quantize_model(model, resolve_plan(load_recipe(recipe), model), windows, progress=False)
    masks = {q.plan.name: q.mask for q in result.layers}
    assert len(masks) == 14 and all(m is not None for m in masks.values())
    reference = hf_logits(model)  # the dense model holding the masked (and dequantized) weights
    dense = {n: m.weight.detach().clone() for n, m in model.named_modules() if n in masks}
    out = tmp_path / "ck"
    assert export_compressed(model, result.layers, out, sparse_format) == written
    loader.load_tokenizer(tiny_llama_dir).save_pretrained(out)
    sparsity = json.loads((out / "config.json").read_text())["quantization_config"]["sparsity_config"]
    assert sparsity["format"] == config_format and sparsity["global_sparsity"] == pytest.approx(0.5)
    assert sorted(sparsity["targets"]) == sorted(masks)
    assert sparsity["sparsity_structure"] == ("unstructured" if recipe.endswith("-50") else "2:4")

    reloaded = loader.load_model(out)  # presso eval's loader (bitmask decoded by presso itself)
    hf_logits(reloaded)  # compressed-tensors decompresses pack-quantized on the first forward
    modules = dict(reloaded.named_modules())
    for name, keep in masks.items():
        w = modules[name].weight.detach()
        assert torch.all(w[~keep] == 0), name  # the mask survived
        assert torch.equal(w, dense[name]), name
    assert torch.allclose(engine_logits(out), reference, atol=1e-4, rtol=1e-4)


def test_transformers_cannot_read_bitmask_but_reads_dense(tiny_llama_dir, sample_text_file, tmp_path):
    """The documented split: transformers 5.24 + compressed-tensors 0.20.1 ignore the bitmask tensors
    (random weights, no error), so the `dense` sparse format exists for transformers users."""
    outs = {}
    for fmt in ("bitmask", "dense"):
        outs[fmt] = tmp_path / fmt
        compress(CompressOptions(model_dir=tiny_llama_dir, recipe="magnitude-50", out=outs[fmt], progress=False,
                                 sparse_format=fmt))
    ours = loader.load_model(outs["bitmask"])
    name = "model.layers.0.mlp.up_proj.weight"
    expected = dict(ours.named_parameters())[name]
    dense = AutoModelForCausalLM.from_pretrained(outs["dense"], dtype=torch.float32)
    assert torch.equal(dict(dense.named_parameters())[name], expected)
    naive = AutoModelForCausalLM.from_pretrained(outs["bitmask"], dtype=torch.float32)
    assert not torch.equal(dict(naive.named_parameters())[name], expected)


def test_cli_report_keys(tiny_llama_dir, sample_text_file, tmp_path, cli):
    out = tmp_path / "ck"
    result = cli("compress", "--model", str(tiny_llama_dir), "--recipe", "sparsegpt-2of4-w4g64", "--out", str(out),
                 "--calib", str(sample_text_file), "--calib-samples", "8", "--calib-len", "64",
                 "--eval", str(sample_text_file), "--eval-tokens", "256", "--eval-ctx", "64", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["sparsity"] == pytest.approx(0.5)
    assert all(x["sparsity"] == pytest.approx(0.5) and x["sparsity_pattern"] == "2:4" for x in report["layers"])
    # 2:4 at 4 bits: 4 * 2/4 + 1 mask bit + fp32 scales per 64 weights = 3.5 bits in the Linears (+ shape)
    assert all(x["effective_bits_per_weight"] == pytest.approx(3.5, abs=0.07) for x in report["layers"])
    assert report["effective_bits_per_weight"] < report["bits_per_weight"]["checkpoint"]
    assert report["perplexity"]["after"] > 0 and json.loads((out / "presso.json").read_text())["kind"] == "quantized"


def test_failed_compression_leaves_no_output(tiny_llama_dir, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("steps:\n  - {method: wanda, sparsity: 0.5}\n")  # wanda needs calibration data
    with pytest.raises(PressoInputError, match="needs calibration data"):
        compress(CompressOptions(model_dir=tiny_llama_dir, recipe=str(path), out=tmp_path / "out", calib=None,
                                 progress=False))
    path.write_text("steps:\n  - {method: magnitude, sparsity: 0.5, targets: [nothing]}\n")
    with pytest.raises(PressoInputError, match="steps.0.targets"):
        compress(CompressOptions(model_dir=tiny_llama_dir, recipe=str(path), out=tmp_path / "out", progress=False))
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.tmp-*"))
