"""presso eval on tiny models: the perplexity equals an independent transformers computation."""

from __future__ import annotations

import json
import math

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from presso.compression.eval.perplexity import token_windows


def transformers_perplexity(model_dir, text: str, ctx: int, max_tokens: int | None) -> float:
    """Independent twin: HF's own shifted cross-entropy loss on the same non-overlapping windows."""
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    ids = tok(text, add_special_tokens=False)["input_ids"][:max_tokens]
    n = len(ids) // ctx
    losses = []
    with torch.inference_mode():
        for i in range(n):
            window = torch.tensor([ids[i * ctx : (i + 1) * ctx]])
            losses.append(float(model(input_ids=window, labels=window).loss))
    return math.exp(sum(losses) / len(losses))


@pytest.mark.parametrize("fixture", ["tiny_llama_dir", "tiny_gpt2_dir"])
def test_eval_matches_transformers(request, cli, fixture, sample_text_file):
    model_dir = request.getfixturevalue(fixture)
    result = cli("eval", "--model", str(model_dir), "--text", str(sample_text_file), "--ctx", "64",
                 "--max-tokens", "512", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    expected = transformers_perplexity(model_dir, sample_text_file.read_text(), 64, 512)
    assert report["perplexity"] == pytest.approx(expected, rel=1e-4)
    assert report["windows"] == 8 and report["tokens_scored"] == 8 * 63
    assert report["parameters"] > 0 and report["weight_bytes_on_disk"] > 4 * report["parameters"] * 0.99
    assert report["bits_per_weight"] == pytest.approx(32, rel=0.01)


def test_random_model_is_near_uniform(tiny_llama_dir, cli, sample_text_file):
    """An untrained model's perplexity sits near the vocabulary size: a sanity bound that can fail."""
    result = cli("eval", "--model", str(tiny_llama_dir), "--text", str(sample_text_file), "--ctx", "32",
                 "--max-tokens", "256", "--json")
    report = json.loads(result.stdout.strip().splitlines()[-1])
    vocab = json.loads((tiny_llama_dir / "config.json").read_text())["vocab_size"]
    assert 0.5 * vocab < report["perplexity"] < 2 * vocab


def test_token_windows_drop_the_ragged_tail():
    ids = torch.arange(10)
    windows = token_windows(ids, ctx=3)
    assert windows.tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert token_windows(ids, ctx=3, max_tokens=7).tolist() == [[0, 1, 2], [3, 4, 5]]
