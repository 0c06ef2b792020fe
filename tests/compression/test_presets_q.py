"""The recommended presets q4/q3/q2: bits-per-weight bounds, fp16 scales, a plain-transformers round trip."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from transformers import AutoModelForCausalLM

from presso.compression.calibration import calibration_windows, quantize_model
from presso.compression.eval import loader
from presso.compression.quantize.export import export_compressed
from presso.compression.recipes import load_recipe, resolve_plan
from presso.compression.recipes.presets import RECOMMENDED

BOUNDS = {"q4": 4.5, "q3": 3.5, "q2": 2.5}  # bits per Linear weight: codes + scales + zero points


def _grid_bits(step) -> float:
    """Bits per weight a step's grid stores: the code, plus its group's scale (and packed zero point)."""
    scale_bits = 16 if step.scale_dtype == "float16" else 32
    zero_bits = 0 if step.symmetric else step.bits
    return step.bits + (scale_bits + zero_bits) / step.group_size


@pytest.mark.parametrize("name", sorted(RECOMMENDED))
def test_recommended_presets_stay_within_their_bits(name):
    recipe = load_recipe(name)
    assert recipe.steps and all(isinstance(s.group_size, int) for s in recipe.steps)
    assert max(_grid_bits(s) for s in recipe.steps) <= BOUNDS[name]
    assert (recipe.distill is not None) == (name == "q2")  # only q2 spends a KD stage


def test_q4_checkpoint_loads_in_transformers_with_fp16_scales(tiny_llama_dir, sample_text_file, tmp_path):
    model = loader.load_model(tiny_llama_dir)
    windows = calibration_windows(loader.load_tokenizer(tiny_llama_dir), str(sample_text_file), 8, 64)
    result = quantize_model(model, resolve_plan(load_recipe("q4"), model), windows, progress=False)
    out = tmp_path / "q4"
    export_compressed(model, result.layers, out)
    config = json.loads((out / "config.json").read_text())["quantization_config"]
    assert config["quant_method"] == "compressed-tensors" and config["format"] == "pack-quantized"
    stored_bits, numel = 0, 0
    with safe_open(out / "model.safetensors", "pt") as f:
        for q in result.layers:
            scale = f.get_tensor(f"{q.plan.name}.weight_scale")
            assert scale.dtype == torch.float16
            stored = sum(f.get_tensor(f"{q.plan.name}.{t}").nbytes for t in ("weight_packed", "weight_scale"))
            stored_bits, numel = stored_bits + 8 * stored, numel + q.weight.codes.numel()
    assert stored_bits / numel <= BOUNDS["q4"]
    loaded = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    with torch.no_grad():
        loaded(input_ids=torch.tensor([[1, 2, 3]]))  # compressed-tensors decompresses on the first forward
    modules = dict(loaded.named_modules())
    for q in result.layers:
        assert torch.equal(modules[q.plan.name].weight.data, q.weight.dequantize()), q.plan.name
