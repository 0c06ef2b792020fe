"""Per native family (Qwen3, Phi-3 with longrope, SmolLM3 NoPE): `presso compress --recipe gptq-w4g64` ->
`presso serve` -> the official openai client. The served greedy completion equals the in-process engine's on
the same int4 checkpoint, and chat works through the tokenizer's template."""

from __future__ import annotations

import json

import pytest
from family_models import FAMILIES, build_family_model
from openai import OpenAI

from presso.server.engine import LLM, SamplingParams

pytestmark = pytest.mark.slow
PROMPT = "It is a truth universally acknowledged, that a single man"


@pytest.mark.parametrize("family", FAMILIES)
def test_compress_serve_openai_round_trip(family, tmp_path, cli, sample_text_file, start_server_fn):
    model_dir = build_family_model(tmp_path / family, family)
    out = tmp_path / "gptq"
    result = cli("compress", "--model", str(model_dir), "--recipe", "gptq-w4g64", "--out", str(out),
                 "--calib", str(sample_text_file), "--calib-samples", "8", "--calib-len", "64")
    assert result.returncode == 0, result.stderr
    qcfg = json.loads((out / "config.json").read_text())["quantization_config"]
    assert qcfg["format"] == "pack-quantized" and qcfg["config_groups"]["group_0"]["weights"]["num_bits"] == 4

    expected = LLM(out).generate([PROMPT], SamplingParams(max_tokens=16, temperature=0.0))[0].text
    live = start_server_fn(out, tmp_path, "--kv-cache-memory", "32MiB", name=family)
    try:
        client = OpenAI(base_url=live.v1, api_key="none", max_retries=0, timeout=120)
        assert [m.id for m in client.models.list().data] == [family]
        done = client.completions.create(model=family, prompt=PROMPT, max_tokens=16, temperature=0)
        assert done.choices[0].text == expected and done.usage.completion_tokens > 0
        chat = client.chat.completions.create(model=family, max_tokens=8, temperature=0,
                                              messages=[{"role": "user", "content": "Hello"}])
        assert chat.choices[0].finish_reason in ("stop", "length") and chat.usage.prompt_tokens > 0
    finally:
        live.stop()
