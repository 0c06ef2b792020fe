"""End to end on the real embedded model: `presso pull` + `presso eval` vs plain transformers."""

from __future__ import annotations

import json
import math

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2_dir(request):
    from presso.compression.models.pull import pull

    return pull("smollm2-135m")


def test_pull_is_idempotent_and_complete(smollm2_dir, cli):
    again = cli("pull")
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == str(smollm2_dir)
    config = json.loads((smollm2_dir / "config.json").read_text())
    assert config["model_type"] == "llama" and config["hidden_size"] == 576
    assert "quantization_config" not in config
    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    prompt = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                     add_generation_prompt=True)
    assert "<|im_start|>assistant" in prompt
    assert not list(smollm2_dir.parent.glob(f".{smollm2_dir.name}.*")), "temp dirs left behind"


def test_eval_matches_transformers_on_pride_and_prejudice(smollm2_dir, cli):
    result = cli("eval", "--model", str(smollm2_dir), "--text", "austen:pride-and-prejudice",
                 "--max-tokens", "8192", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["windows"] == 8 and report["ctx"] == 1024

    from presso.compression.data.texts import load_text

    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32).eval()
    ids = tok(load_text("austen:pride-and-prejudice"), add_special_tokens=False)["input_ids"][:8192]
    losses = []
    with torch.inference_mode():
        for i in range(8):
            window = torch.tensor([ids[i * 1024 : (i + 1) * 1024]])
            losses.append(float(model(input_ids=window, labels=window).loss))
    direct = math.exp(sum(losses) / len(losses))
    assert report["perplexity"] == pytest.approx(direct, rel=0.005)
    assert 5 < direct < 60  # a trained model on English prose, not noise
