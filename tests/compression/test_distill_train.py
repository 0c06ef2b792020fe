"""Distillation training on a tiny 4-bit Llama: the loss falls, seeds reproduce, resume continues exactly,
and the CLI refuses to evaluate on its training text."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

from presso.compression.checkpoint.errors import PressoInputError
from presso.compression.distill import DistillOptions, TrainConfig, distill
from presso.compression.distill.state import partial_dir
from presso.compression.distill.student import load_student
from presso.compression.distill.train import make_optimizer, train_step
from presso.compression.eval import loader
from presso.compression.quantize import CompressOptions, compress

CFG = TrainConfig(steps=4, batch_size=2, seq_len=32, lr=1e-2, temperature=1.0, seed=7)


@pytest.fixture(scope="module")
def w3(tiny_llama_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("kd") / "w3g32"
    recipe = out.parent / "w3.yaml"
    recipe.write_text("steps:\n  - {method: rtn, bits: 3, group_size: 32, symmetric: true}\n")
    compress(CompressOptions(model_dir=tiny_llama_dir, recipe=str(recipe), out=out, progress=False))
    return out


def _opts(src, teacher, out, text, **kw) -> DistillOptions:
    return DistillOptions(src, teacher, out, str(text), kw.pop("train", CFG), progress=False, **kw)


@pytest.mark.parametrize("bf16", [False, True])
def test_loss_decreases_on_a_fixed_batch(w3, tiny_llama_dir, bf16):
    student = load_student(w3)
    teacher = loader.load_model(tiny_llama_dir).requires_grad_(False)
    params = student.trainable()
    opt = make_optimizer(params, 2e-2, {})
    batch = torch.randint(0, 300, (2, 32), generator=torch.Generator().manual_seed(0))
    cfg = TrainConfig(steps=12, batch_size=2, seq_len=32, lr=2e-2, temperature=1.0, bf16=bf16)
    losses = [train_step(student.model, teacher, batch, opt, cfg)[0] for _ in range(12)]
    assert losses[-1] < 0.7 * losses[0], losses
    kinds = {n.rsplit(".", 1)[-1] for n in params}
    assert kinds == {"scale", "weight"}  # group scales + RMSNorm weights; no codes, no embeddings


def test_hidden_state_term_adds_to_the_loss(w3, tiny_llama_dir):
    student = load_student(w3)
    teacher = loader.load_model(tiny_llama_dir).requires_grad_(False)
    batch = torch.randint(0, 300, (1, 16), generator=torch.Generator().manual_seed(1))
    opt = make_optimizer(student.trainable(), 1e-9, {})
    cfg = TrainConfig(steps=1, batch_size=1, seq_len=16, lr=1e-9, temperature=2.0, hidden_weight=1.0)
    loss, parts = train_step(student.model, teacher, batch, opt, cfg)
    assert parts["hidden"] > 0 and loss == pytest.approx(parts["kl"] + parts["hidden"], rel=1e-5)


def test_same_seed_gives_identical_checkpoints(w3, tiny_llama_dir, sample_text_file, tmp_path):
    for name in ("a", "b"):
        distill(_opts(w3, tiny_llama_dir, tmp_path / name, sample_text_file))
    a, b = load_file(tmp_path / "a" / "model.safetensors"), load_file(tmp_path / "b" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    other = replace(CFG, seed=8)
    distill(_opts(w3, tiny_llama_dir, tmp_path / "c", sample_text_file, train=other))
    c = load_file(tmp_path / "c" / "model.safetensors")
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_interrupted_run_resumes_to_the_same_result(w3, tiny_llama_dir, sample_text_file, tmp_path):
    distill(_opts(w3, tiny_llama_dir, tmp_path / "straight", sample_text_file))
    out = tmp_path / "resumed"
    assert distill(_opts(w3, tiny_llama_dir, out, sample_text_file, save_every=1), stop_after=2) is None
    assert not out.exists() and (partial_dir(out) / "state.safetensors").is_file()
    with pytest.raises(PressoInputError, match="--resume"):
        distill(_opts(w3, tiny_llama_dir, out, sample_text_file))
    changed = replace(CFG, lr=5e-3)
    with pytest.raises(PressoInputError, match="cannot resume: lr"):
        distill(_opts(w3, tiny_llama_dir, out, sample_text_file, train=changed, resume=True))
    block = distill(_opts(w3, tiny_llama_dir, out, sample_text_file, resume=True, save_every=1))
    assert block["steps"] == 4 and len(block["loss"]["curve"]) == 4 and not partial_dir(out).exists()
    a, b = load_file(tmp_path / "straight" / "model.safetensors"), load_file(out / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    straight = json.loads((tmp_path / "straight" / "report.json").read_text())["distill"]["loss"]["curve"]
    assert block["loss"]["curve"] == straight


def test_cli_refuses_to_evaluate_on_the_training_text(w3, tiny_llama_dir, sample_text_file, tmp_path, cli):
    res = cli("distill", "--model", str(w3), "--teacher", str(tiny_llama_dir), "--out", str(tmp_path / "x"),
              "--text", str(sample_text_file), "--eval", str(sample_text_file), "--steps", "1")
    assert res.returncode == 2 and "KD must not be evaluated" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and not (tmp_path / "x").exists()


def test_cli_distills_and_reports_perplexity_before_and_after(w3, tiny_llama_dir, sample_text_file, tmp_path, cli):
    eval_text = tmp_path / "eval.txt"
    eval_text.write_text(sample_text_file.read_text()[::-1])
    out = tmp_path / "kd"
    res = cli("distill", "--model", str(w3), "--teacher", str(tiny_llama_dir), "--out", str(out), "--text",
              str(sample_text_file), "--steps", "6", "--seq-len", "32", "--batch-size", "2", "--lr", "2e-2",
              "--eval", str(eval_text), "--eval-tokens", "256", "--eval-ctx", "64", "--json")
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["steps"] == 6 and summary["perplexity_before"] > 0 and summary["perplexity_after"] > 0
    report = json.loads((out / "report.json").read_text())["distill"]
    assert report["perplexity"]["text"] == str(eval_text) and report["text"] == str(sample_text_file)
    assert report["perplexity"]["after_kd"] == pytest.approx(summary["perplexity_after"])
    with pytest.raises(PressoInputError, match="already exists"):
        distill(_opts(w3, tiny_llama_dir, out, sample_text_file))
