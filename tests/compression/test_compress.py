"""`presso compress` on a tiny Llama: checkpoint layout, transformers round trip, reports, atomicity."""

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

CALIB = ("--calib-samples", "8", "--calib-len", "64")


def _quantized(model_dir, recipe, text, tmp_path, name):
    """In-process: quantize + export; returns (QuantizeResult, checkpoint dir)."""
    model = loader.load_model(model_dir)
    windows = calibration_windows(loader.load_tokenizer(model_dir), str(text), 8, 64)
    result = quantize_model(model, resolve_plan(load_recipe(recipe), model), windows, progress=False)
    out = tmp_path / name
    export_compressed(model, result.layers, out)
    return result, out


def _yaml(tmp_path, body):
    path = tmp_path / "recipe.yaml"
    path.write_text(body)
    return str(path)


@pytest.mark.parametrize("recipe", ["gptq-w4g64", "asym-rtn-g32", "awq-w3-asym"])
def test_transformers_loads_and_dequantizes_to_our_weights(tiny_llama_dir, sample_text_file, tmp_path, recipe):
    if recipe == "asym-rtn-g32":
        recipe = _yaml(tmp_path, "steps:\n  - {method: rtn, bits: 4, group_size: 32, symmetric: false}\n")
    elif recipe == "awq-w3-asym":
        recipe = _yaml(tmp_path, "steps:\n  - {method: awq, bits: 3, group_size: 32, symmetric: false}\n")
    result, out = _quantized(tiny_llama_dir, recipe, sample_text_file, tmp_path, "ckpt")
    config = json.loads((out / "config.json").read_text())["quantization_config"]
    assert config["quant_method"] == "compressed-tensors" and config["format"] == "pack-quantized"
    loaded = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    with torch.no_grad():
        loaded(input_ids=torch.tensor([[1, 2, 3]]))  # compressed-tensors decompresses on the first forward
    modules = dict(loaded.named_modules())
    assert len(result.layers) == 14  # 2 layers x (q, k, v, o, gate, up, down); lm_head ignored
    for q in result.layers:
        assert torch.equal(modules[q.plan.name].weight.data, q.weight.dequantize()), q.plan.name


def test_sequential_gptq_output_error_below_rtn(tiny_llama_dir, sample_text_file):
    tokenizer = loader.load_tokenizer(tiny_llama_dir)
    windows = calibration_windows(tokenizer, str(sample_text_file), 8, 64)
    sqnr = {}
    for method in ("rtn", "gptq"):
        model = loader.load_model(tiny_llama_dir)
        recipe = load_recipe("w4g64" if method == "rtn" else "gptq-w4g64")
        result = quantize_model(model, resolve_plan(recipe, model), windows, progress=False)
        sqnr[method] = {q.plan.name: q.output_sqnr_db for q in result.layers}
    first = [n for n in sqnr["rtn"] if ".layers.0." in n]  # identical inputs for both methods
    assert all(sqnr["gptq"][n] > sqnr["rtn"][n] for n in first), sqnr
    mean = {m: sum(v.values()) / len(v) for m, v in sqnr.items()}
    assert mean["gptq"] > mean["rtn"] + 1.0, mean


def test_cli_compress_writes_checkpoint_and_reports(tiny_llama_dir, sample_text_file, tmp_path, cli):
    out = tmp_path / "ck"
    result = cli("compress", "--model", str(tiny_llama_dir), "--recipe", "gptq-w4g64", "--out", str(out),
                 "--calib", str(sample_text_file), *CALIB, "--eval", str(sample_text_file),
                 "--eval-tokens", "512", "--eval-ctx", "64", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    report = json.loads((out / "report.json").read_text())
    presso = json.loads((out / "presso.json").read_text())
    assert report["format_version"] == presso["format_version"] == 1
    assert presso["recipe"]["steps"][0]["params"]["damp"] == 0.01 and presso["versions"]["compressed-tensors"]
    assert 4.5 <= report["bits_per_weight"]["quantized_linears"] < 4.6  # 4-bit codes + fp32 scale per 64
    assert report["bytes"]["checkpoint_weights"] < report["bytes"]["original_fp32"]
    assert len(report["layers"]) == 14 and all(x["output_sqnr_db"] > 5 for x in report["layers"])
    ppl = report["perplexity"]
    assert ppl["before"] > 1 and ppl["after"] > 1 and summary["perplexity"] == ppl
    assert report["wall_time_s"] > 0 and report["peak_rss_bytes"] > 10_000_000
    evaluated = cli("eval", "--model", str(out), "--text", str(sample_text_file), "--ctx", "64",
                    "--max-tokens", "512", "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    measured = json.loads(evaluated.stdout.strip().splitlines()[-1])
    assert measured["perplexity"] == pytest.approx(ppl["after"], rel=1e-4)
    # packed codes and scales are not counted as parameters: the logical count equals the dense model's
    dense = sum(t.numel() for t in AutoModelForCausalLM.from_pretrained(tiny_llama_dir).parameters())
    assert measured["parameters"] == dense
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    table = cli("report", str(out), "--png", str(tmp_path / "plot.png"))
    assert table.returncode == 0, table.stderr
    assert "gptq-w4g64" in table.stdout and f"{ppl['after']:.3f}" in table.stdout
    assert (tmp_path / "plot.png").read_bytes()[:4] == b"\x89PNG"
    again = cli("compress", "--model", str(tiny_llama_dir), "--recipe", "w8", "--out", str(out))
    assert again.returncode == 2 and "already exists" in again.stderr


@pytest.mark.parametrize(
    "args,message",
    [
        (("--recipe", "gptq-w4g64", "--calib", "mix:bible"), "unknown corpus 'bible'"),
        (("--recipe", "w4g128"), "layer model.layers.0.self_attn.q_proj: group_size 128 does not divide"),
        (("--recipe", "gptq-w4g64", "--calib", "austen:nope"), "unknown"),
    ],
)
def test_cli_compress_input_errors(tiny_llama_dir, tmp_path, cli, args, message):
    out = tmp_path / "never"
    result = cli("compress", "--model", str(tiny_llama_dir), "--out", str(out), *args)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert not out.exists()


def test_failed_run_leaves_no_checkpoint(tiny_llama_dir, tmp_path, monkeypatch):
    from presso.compression.quantize import pipeline

    def explode(model, layers, out, *rest):
        (out / "model.safetensors").write_bytes(b"half")
        raise RuntimeError("disk full")

    monkeypatch.setattr(pipeline, "export_compressed", explode)
    out = tmp_path / "ck"
    with pytest.raises(RuntimeError, match="disk full"):
        compress(CompressOptions(model_dir=tiny_llama_dir, recipe="w8", out=out, progress=False))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(PressoInputError, match="already exists"):
        compress(CompressOptions(model_dir=tiny_llama_dir, recipe="w8", out=tmp_path, progress=False))
