"""One end-to-end run of `presso serve` with the real SmolLM2: chat works, and echo scoring of a
1024-token window of Pride and Prejudice gives `presso eval`'s perplexity within 0.5 %."""

from __future__ import annotations

import json
import math

import pytest
from openai import OpenAI

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2_server(tmp_path_factory, request):
    from presso.compression.models.pull import pull

    start_server = request.getfixturevalue("start_server_fn")
    live = start_server(pull("smollm2-135m"), tmp_path_factory.mktemp("smol"), "--kv-cache-memory", "256MiB",
                        "--max-model-len", "2048")
    yield live
    live.stop()


def test_chat_answers_in_english(smollm2_server):
    client = OpenAI(base_url=smollm2_server.v1, api_key="none", max_retries=0, timeout=300)
    out = client.chat.completions.create(model=smollm2_server.model, temperature=0, max_tokens=24,
                                         messages=[{"role": "user", "content": "What is the capital of France?"}])
    assert "Paris" in out.choices[0].message.content
    assert out.choices[0].finish_reason in ("stop", "length")


def test_echo_scoring_matches_presso_eval(smollm2_server, cli):
    from transformers import AutoTokenizer

    from presso.compression.data.texts import load_text
    from presso.compression.models.pull import pull

    tok = AutoTokenizer.from_pretrained(pull("smollm2-135m"))
    ids = tok(load_text("austen:pride-and-prejudice"), add_special_tokens=False)["input_ids"][:1024]
    client = OpenAI(base_url=smollm2_server.v1, api_key="none", max_retries=0, timeout=600)
    out = client.completions.create(model=smollm2_server.model, prompt=ids, max_tokens=0, echo=True, logprobs=0)
    scored = out.choices[0].logprobs.token_logprobs
    assert scored[0] is None and len(scored) == 1024
    api_ppl = math.exp(-sum(scored[1:]) / 1023)
    result = cli("eval", "--model", "smollm2-135m", "--text", "austen:pride-and-prejudice", "--ctx", "1024",
                 "--max-tokens", "1024", "--json")
    assert result.returncode == 0, result.stderr
    eval_ppl = json.loads(result.stdout.strip().splitlines()[-1])["perplexity"]
    assert api_ppl == pytest.approx(eval_ppl, rel=0.005)
