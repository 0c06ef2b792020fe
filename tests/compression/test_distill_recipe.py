"""A recipe's `distill:` block: `presso compress` fine-tunes the written checkpoint against the dense source.

Covers a quantized model with a quantized (frozen) embedding, structured pruning followed by KD (a dense,
smaller student whose Linear weights train), and the refusal to train on the eval text.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from presso.compression.checkpoint.errors import PressoInputError
from presso.compression.eval import loader
from presso.compression.quantize import CompressOptions, compress

KD = "distill: {steps: 3, seq_len: 32, batch_size: 2, lr: 0.02, autocast: 'off'}\n"


def _compress(tiny, text, tmp_path, name, body, **kw):
    recipe = tmp_path / f"{name}.yaml"
    recipe.write_text(body)
    out = tmp_path / name
    report = compress(CompressOptions(model_dir=tiny, recipe=str(recipe), out=out, calib=str(text), calib_samples=4,
                                      calib_len=32, progress=False, **kw))
    return out, report


@pytest.mark.parametrize("body", [
    "steps:\n  - {method: rtn, bits: 4, group_size: 32}\nembeddings: {bits: 8}\n",
    "structured: {ratio: 0.25, channel_multiple: 16}\n",
], ids=["w4-embed8", "structured"])
def test_recipe_distill_changes_values_not_layout(tiny_llama_dir, sample_text_file, tmp_path, body):
    plain, _ = _compress(tiny_llama_dir, sample_text_file, tmp_path, "plain", body)
    kd, report = _compress(tiny_llama_dir, sample_text_file, tmp_path, "kd", body + KD)
    a, b = load_file(plain / "model.safetensors"), load_file(kd / "model.safetensors")
    assert {k: (v.shape, v.dtype) for k, v in a.items()} == {k: (v.shape, v.dtype) for k, v in b.items()}
    changed = {k for k in a if not torch.equal(a[k], b[k])}
    assert changed and not any("embed_tokens" in k or k.endswith("weight_packed") for k in changed)
    block = report["distill"]
    assert block["steps"] == 3 and block["text"] == str(sample_text_file) and len(block["loss"]["curve"]) == 3
    assert json.loads((kd / "presso.json").read_text())["recipe"]["distill"]["steps"] == 3
    assert json.loads((kd / "report.json").read_text())["distill"]["format"] in ("pack-quantized", "dense")
    with torch.no_grad():
        logits = loader.load_model(kd)(torch.tensor([[5, 6, 7, 8]])).logits
    assert torch.isfinite(logits).all()


def test_recipe_distill_refuses_the_eval_text_before_any_work(tiny_llama_dir, sample_text_file, tmp_path):
    with pytest.raises(PressoInputError, match="KD must not be evaluated"):
        _compress(tiny_llama_dir, sample_text_file, tmp_path, "bad", "steps:\n  - {method: rtn, bits: 4}\n" + KD,
                  eval_text=str(sample_text_file), eval_ctx=64)
    assert not (tmp_path / "bad").exists()
