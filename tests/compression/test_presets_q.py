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


def _grid_bits(spec) -> float:
    """Bits per weight a grid stores: the code, plus its group's scale (and packed zero point)."""
    scale_bits = 16 if spec.scale_dtype == "float16" else 32
    zero_bits = 0 if spec.symmetric else spec.bits
    return spec.bits + (scale_bits + zero_bits) / spec.group_size


def _smollm2_shapes() -> torch.nn.Module:
    """SmolLM2-135M's Linear shapes (hidden 576, MLP 1536, 9 heads / 3 KV heads; 2 of its 30 identical
    layers) on the meta device: the presets mix grids per tensor kind, so the bound is a weighted mean."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(hidden_size=576, intermediate_size=1536, num_hidden_layers=2, num_attention_heads=9,
                         num_key_value_heads=3, vocab_size=64)
    with torch.device("meta"):
        return LlamaForCausalLM(config)


@pytest.mark.parametrize("name", sorted(RECOMMENDED))
def test_recommended_presets_stay_within_their_bits(name):
    recipe = load_recipe(name)
    assert recipe.steps and all(isinstance(s.group_size, int) for s in recipe.steps)
    model = _smollm2_shapes()
    modules = dict(model.named_modules())
    plans = resolve_plan(recipe, model)
    assert len(plans) == 2 * 7  # every decoder Linear, once
    numel = {p.name: modules[p.name].weight.numel() for p in plans}
    mean = sum(_grid_bits(p.spec) * numel[p.name] for p in plans) / sum(numel.values())
    assert mean <= BOUNDS[name]
    assert (recipe.distill is not None) == (name == "q2")  # only q2 spends a KD stage


@pytest.mark.parametrize("name", ["q4", "q3"])
def test_preset_checkpoint_loads_in_transformers_with_fp16_scales(name, tiny_llama_dir, sample_text_file, tmp_path):
    model = loader.load_model(tiny_llama_dir)
    windows = calibration_windows(loader.load_tokenizer(tiny_llama_dir), str(sample_text_file), 8, 64)
    result = quantize_model(model, resolve_plan(load_recipe(name), model), windows, progress=False)
    assert {q.plan.spec.bits for q in result.layers} == {load_recipe(name).steps[0].bits}
    out = tmp_path / name
    export_compressed(model, result.layers, out)
    config = json.loads((out / "config.json").read_text())["quantization_config"]
    assert config["quant_method"] == "compressed-tensors" and config["format"] == "pack-quantized"
    stored_bits, numel, grid_bits = 0, 0, 0.0
    with safe_open(out / "model.safetensors", "pt") as f:
        for q in result.layers:
            scale = f.get_tensor(f"{q.plan.name}.weight_scale")
            assert scale.dtype == torch.float16
            stored = sum(f.get_tensor(f"{q.plan.name}.{t}").nbytes for t in ("weight_packed", "weight_scale",
                         "weight_zero_point") if f"{q.plan.name}.{t}" in f.keys())
            stored_bits, numel = stored_bits + 8 * stored, numel + q.weight.codes.numel()
            grid_bits += _grid_bits(q.plan.spec) * q.weight.codes.numel()
    assert stored_bits == pytest.approx(grid_bits)  # what the bound above counts is what the file stores
    loaded = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    with torch.no_grad():
        loaded(input_ids=torch.tensor([[1, 2, 3]]))  # compressed-tensors decompresses on the first forward
    modules = dict(loaded.named_modules())
    for q in result.layers:
        assert torch.equal(modules[q.plan.name].weight.data, q.weight.dequantize()), q.plan.name
