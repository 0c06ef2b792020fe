"""End to end on the real SmolLM2-135M: `presso compress` gptq-w4g64, then transformers vs presso eval.

Kept short (16 x 256 calibration tokens, 2048 eval tokens); the full table lives in
docs/results/quantization.md.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

pytestmark = pytest.mark.slow


def test_gptq_w4g64_checkpoint_loads_in_transformers_with_the_same_perplexity(tmp_path, cli):
    from presso.compression.data.texts import load_text
    from presso.compression.models.pull import pull

    source = pull("smollm2-135m")
    out = tmp_path / "gptq-w4g64"
    result = cli("compress", "--model", str(source), "--recipe", "gptq-w4g64", "--out", str(out),
                 "--calib", "austen:emma", "--calib-samples", "16", "--calib-len", "256", "--json",
                 timeout=1800)  # took 10+ minutes on the busy shared 2-core machine
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    assert 4.5 <= report["bits_per_weight"]["quantized_linears"] < 4.6
    assert report["sqnr_db"]["output_mean"] > 20  # ~27 dB measured; RTN w4g64 is lower

    evaluated = cli("eval", "--model", str(out), "--text", "austen:pride-and-prejudice",
                    "--max-tokens", "2048", "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    presso_ppl = json.loads(evaluated.stdout.strip().splitlines()[-1])["perplexity"]

    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()  # no presso code
    ids = tok(load_text("austen:pride-and-prejudice"), add_special_tokens=False)["input_ids"][:2048]
    with torch.inference_mode():
        losses = [float(model(input_ids=torch.tensor([ids[i : i + 1024]]),
                              labels=torch.tensor([ids[i : i + 1024]])).loss) for i in (0, 1024)]
    direct = math.exp(sum(losses) / 2)
    assert presso_ppl == pytest.approx(direct, rel=0.005)
    assert 10 < direct < 30  # dense is 18.8 on these 2048 tokens; 4-bit GPTQ measured ~22
