"""AQLM end to end on a tiny random Llama: quantize -> checkpoint in AQLM's HF layout -> presso's loader.

The checkpoint must reload (through the same loader `presso eval` uses) into a model with exactly the
in-memory quantized model's outputs; per-layer resume must reuse finished layers; the CLI must write
the report and refuse bad input with exit status 2.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from transformers import AutoModelForCausalLM

from presso.compression.aqlm import pipeline
from presso.compression.aqlm.checkpoint import write_checkpoint
from presso.compression.aqlm.config import AQLMConfig
from presso.compression.aqlm.module import AQLMLinear
from presso.compression.aqlm.store import LayerStore
from presso.compression.checkpoint.errors import PressoInputError
from presso.compression.eval.loader import load_model

CFG = AQLMConfig(num_codebooks=2, nbits=8, rounds=1, kmeans_iters=2, cg_iters=4)


@pytest.fixture(scope="module")
def quantized(tiny_llama_dir, tmp_path_factory):
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
    ids = torch.randint(0, 300, (4, 32), generator=torch.Generator().manual_seed(0))
    store = LayerStore(tmp_path_factory.mktemp("work") / "partial", {"test": 1})
    stats = pipeline.quantize_model(model, ids, CFG, store, batch=2, progress=False)
    out = tmp_path_factory.mktemp("ckpt") / "aqlm"
    write_checkpoint(model, tiny_llama_dir, out, CFG, {"method": "aqlm"}, {"layers": stats})
    return model, ids, store, stats, out


def test_every_decoder_linear_is_quantized(quantized):
    model, _, _, stats, _ = quantized
    assert len(stats) == 2 * 7
    assert not any(isinstance(m, torch.nn.Linear) for m in model.model.layers.modules())
    assert sum(isinstance(m, AQLMLinear) for m in model.modules()) == 14
    assert all(s["output_sqnr_db"] > 5 for s in stats)


def test_checkpoint_uses_aqlm_hf_layout(quantized):
    _, _, _, _, out = quantized
    qc = json.loads((out / "config.json").read_text())["quantization_config"]
    assert qc == {"quant_method": "aqlm", "in_group_size": 8, "out_group_size": 1, "num_codebooks": 2,
                  "nbits_per_codebook": 8, "linear_weights_not_to_quantize": ["lm_head.weight"]}
    assert json.loads((out / "presso.json").read_text())["format_version"] == 1
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
        codes = f.get_tensor("model.layers.0.mlp.gate_proj.codes")
        books = f.get_tensor("model.layers.0.mlp.gate_proj.codebooks")
        scales = f.get_tensor("model.layers.0.mlp.gate_proj.scales")
    assert codes.shape == (128, 8, 2) and codes.dtype == torch.int8
    assert books.shape == (2, 256, 1, 8) and books.dtype == torch.float16
    assert scales.shape == (128, 1, 1, 1) and scales.dtype == torch.float16
    assert "model.layers.0.mlp.gate_proj.weight" not in keys and "lm_head.weight" not in keys
    assert (out / "tokenizer.json").exists() and not list(out.parent.glob(".aqlm.tmp-*"))


def test_round_trip_through_the_eval_loader_gives_identical_outputs(quantized):
    model, ids, _, _, out = quantized
    loaded = load_model(out)
    assert isinstance(loaded.model.layers[1].self_attn.q_proj, AQLMLinear)
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, model(ids).logits, rtol=0, atol=0)


def test_resume_reuses_finished_layers(quantized, tiny_llama_dir, monkeypatch):
    first, ids, store, _, _ = quantized
    monkeypatch.setattr(pipeline, "quantize_layer", lambda *a, **k: pytest.fail("a finished layer was redone"))
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
    pipeline.quantize_model(model, ids, CFG, store, batch=2, progress=False)
    a, b = first.model.layers[1].mlp.up_proj, model.model.layers[1].mlp.up_proj
    assert torch.equal(a.codes, b.codes) and torch.equal(a.codebooks, b.codebooks)


def test_store_refuses_other_settings(quantized):
    _, _, store, _, _ = quantized
    with pytest.raises(PressoInputError, match="other settings"):
        LayerStore(store.root, {"test": 2})


def test_loader_refuses_unknown_format_version(quantized, tmp_path):
    import shutil

    _, _, _, _, out = quantized
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "presso.json").write_text(json.dumps({"format_version": 99}))
    with pytest.raises(PressoInputError, match="format_version"):
        load_model(copy)


def test_cli_writes_checkpoint_and_eval_reads_it(cli, tiny_llama_dir, sample_text_file, tmp_path):
    out = tmp_path / "q"
    args = ["--model", str(tiny_llama_dir), "--calib", str(sample_text_file), "--calib-samples", "2",
            "--calib-len", "32", "--rounds", "1", "--kmeans-iters", "1", "--cg-iters", "2"]
    result = cli("aqlm", *args, "--out", str(out), "--config", "1x8", "--eval", str(sample_text_file),
                 "--eval-tokens", "512", "--ctx", "128", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout)
    assert summary["scheme"] == "1x8" and summary["quantized_linear_params"] == 2 * (4 * 64 * 64 + 3 * 64 * 128 - 2 * 64 * 32)
    report = json.loads((out / "report.json").read_text())
    assert len(report["layers"]) == 14 and not (tmp_path / "q.partial").exists()
    evaluated = cli("eval", "--model", str(out), "--text", str(sample_text_file), "--ctx", "128",
                    "--max-tokens", "512", "--json")
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert json.loads(evaluated.stdout)["perplexity"] == pytest.approx(report["eval"]["perplexity_after"], rel=1e-6)
    again = cli("aqlm", *args, "--out", str(out))  # non-empty output dir
    assert again.returncode == 2 and "not empty" in again.stderr
    bad = cli("aqlm", *args, "--out", str(tmp_path / "z"), "--config", "2y8")
    assert bad.returncode == 2 and "--config" in bad.stderr
