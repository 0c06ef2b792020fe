"""End to end for Gemma: `presso compress --recipe gptq-w4g64` (compression's own layer discovery) on a tiny
random Gemma 2 / Gemma 3, then the real `presso serve` answering the openai client; the served greedy
completion of a prompt longer than the sliding window equals the in-process engine's on the same checkpoint."""

from __future__ import annotations

import json

import pytest
from live_server import start_server
from openai import OpenAI
from sliding_models import build_sliding_model

from presso.server.engine import LLM, SamplingParams

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("family", ["gemma2", "gemma3"])
def test_compress_serve_openai_round_trip(family, tmp_path, cli, sample_text_file):
    base = build_sliding_model(tmp_path / "base", family)
    out = tmp_path / "gptq"
    done = cli("compress", "--model", str(base), "--recipe", "gptq-w4g64", "--out", str(out),
               "--calib", str(sample_text_file), "--calib-samples", "8", "--calib-len", "64")
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "report.json").read_text())
    assert len(report["layers"]) == 28  # q/k/v/o/gate/up/down of 4 layers, all GPTQ int4
    assert json.loads((out / "config.json").read_text())["quantization_config"]["quant_method"] == "compressed-tensors"
    prompt = "It is a truth universally acknowledged, that a single man in possession of a good fortune"
    llm = LLM(out, kv_cache_memory="16MiB")
    assert len(llm.tokenizer(prompt)["input_ids"]) > 24  # longer than the window
    want = llm.generate([prompt], SamplingParams(max_tokens=12, temperature=0.0, ignore_eos=True))[0].text
    live = start_server(out, tmp_path, "--kv-cache-memory", "16MiB", name=family)
    try:
        client = OpenAI(base_url=live.v1, api_key="none", max_retries=0, timeout=120)
        got = client.completions.create(model=family, prompt=prompt, max_tokens=12, temperature=0,
                                        extra_body={"ignore_eos": True})
        assert got.choices[0].text == want
        chat = client.chat.completions.create(model=family, max_tokens=8, temperature=0,
                                              messages=[{"role": "user", "content": "Hello"}])
        assert chat.usage.completion_tokens > 0
    finally:
        live.stop()
