"""Mixed precision end to end on a tiny Llama: the chosen bits are in the checkpoint and the reports, the
byte accounting equals what is written, and the checkpoint loads in presso eval and in transformers."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from presso.compression.checkpoint.errors import PressoInputError
from presso.compression.eval.run import evaluate
from presso.compression.eval.stats import weight_bytes_on_disk
from presso.compression.quantize import CompressOptions, compress


def _opts(model_dir, text, recipe, out, **kw):
    return CompressOptions(model_dir=model_dir, recipe=recipe, out=out, calib=str(text), calib_samples=8,
                           calib_len=64, progress=False, **kw)


@pytest.fixture(scope="module")
def mixed_ckpt(tiny_llama_dir, sample_text_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("mixed") / "ckpt"
    report = compress(_opts(tiny_llama_dir, sample_text_file, "mixed-gptq-3.5", out, target_bits=3.2,
                            eval_text=str(sample_text_file), eval_tokens=512, eval_ctx=128))
    return out, report


def test_target_bits_met_and_bits_recorded(mixed_ckpt):
    out, report = mixed_ckpt
    mixed = report["mixed"]
    assert mixed["spec"]["target_bits"] == 3.2  # the CLI override replaced the preset's 3.5
    # exact accounting: the allocator's bytes are the bytes report.json measures in the written files
    assert mixed["predicted"]["linears_bytes"] == report["bytes"]["quantized_linears"]
    achieved = report["bits_per_weight"]["quantized_linears"]
    smallest_step = min(8 * (b - a) for a, b in [(2.5, 3.0)])  # bits; tiny layers: 64x64 = 4096 weights
    assert 3.2 - smallest_step * 64 * 64 / report["parameters"]["quantized"] <= achieved <= 3.2
    chosen = {x["name"]: x for x in mixed["layers"]}
    assert len(chosen) == 14 and len({x["choice"] for x in chosen.values()}) >= 2  # really mixed
    for layer in report["layers"]:
        assert layer["bits"] == chosen[layer["name"]]["bits"]
        sens = chosen[layer["name"]]["sensitivity"]
        assert set(sens) == {"w2g64", "w3", "w3g64", "w4", "w4g64", "w8"}
        assert sens["w8"] < sens["w4g64"] < sens["w2g64"]  # measured losses fall with more bits
    presso = json.loads((out / "presso.json").read_text())
    assert presso["mixed"]["layers"] == mixed["layers"]
    steps = presso["recipe"]["steps"]  # the generated recipe: exact names, one step per chosen grid
    assert sorted(n for s in steps for n in s["targets"]) == sorted(chosen)


def test_checkpoint_bits_per_layer_load_in_transformers_and_eval(mixed_ckpt, sample_text_file):
    out, report = mixed_ckpt
    groups = json.loads((out / "config.json").read_text())["quantization_config"]["config_groups"]
    bits_of = {name: g["weights"]["num_bits"] for g in groups.values() for name in g["targets"]}
    assert bits_of == {x["name"]: x["bits"] for x in report["mixed"]["layers"]}
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([[1, 2, 3, 4]])).logits
    assert torch.isfinite(logits).all()
    ppl = evaluate(out, str(sample_text_file), ctx=128, max_tokens=512, progress=False).perplexity
    assert ppl == pytest.approx(report["perplexity"]["after"], rel=1e-5)


def test_target_size_bounds_the_whole_checkpoint(tiny_llama_dir, sample_text_file, tmp_path):
    recipe = tmp_path / "r.yaml"  # rtn keeps this fast; the accounting is the same for every method
    recipe.write_text("mixed: {target_size: 1, method: rtn, candidates: [2, 4, 8], group_size: 32}\n")
    out = tmp_path / "ckpt"
    dense = compress(_opts(tiny_llama_dir, sample_text_file, str(recipe), tmp_path / "probe", target_size="10MB"))
    fixed = dense["mixed"]["budget"]["fixed_bytes"] + dense["mixed"]["budget"]["header_bytes_max"]
    target = fixed + 40_000  # ~4.3 bits/weight over the 73,728 Linear weights: between 3 (w2g32) and 5 (w4g32)
    report = compress(_opts(tiny_llama_dir, sample_text_file, str(recipe), out, target_size=str(target)))
    on_disk = weight_bytes_on_disk(out)
    assert on_disk <= target
    step = 64 * 64 * 2 // 8  # smallest upgrade: a 64x64 Linear from 2 to 4 bits (scales aside)
    header_slack = report["mixed"]["budget"]["header_bytes_max"] - 8
    assert target - on_disk < step + header_slack
    assert report["mixed"]["counts"].keys() - {"w2g32", "w4g32", "w8g32"} == set()


def test_target_without_mixed_recipe_is_an_input_error(tiny_llama_dir, sample_text_file, tmp_path):
    with pytest.raises(PressoInputError, match="mixed"):
        compress(_opts(tiny_llama_dir, sample_text_file, "w4g64", tmp_path / "x", target_bits=3.0))
