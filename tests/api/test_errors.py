"""Errors are OpenAI error objects with the right status, and the client raises the matching class."""

from __future__ import annotations

import httpx
import openai
import pytest

ROUTES = [("GET", "/v1/models"), ("POST", "/v1/completions"), ("POST", "/v1/chat/completions"),
          ("POST", "/tokenize"), ("POST", "/detokenize"), ("GET", "/metrics"), ("GET", "/v1/models/tiny")]


@pytest.mark.parametrize("method,path", ROUTES)
def test_every_route_but_health_needs_the_key(server, method, path):
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        r = httpx.request(method, server.base_url + path, json={}, headers=headers, timeout=10)
        assert r.status_code == 401, (path, r.text)
        assert r.json()["error"]["code"] == "invalid_api_key"
    assert httpx.get(server.base_url + "/health", timeout=10).status_code == 200


def test_client_exception_classes(client, server):
    from openai import OpenAI

    with pytest.raises(openai.AuthenticationError):
        OpenAI(base_url=server.v1, api_key="nope", max_retries=0).models.list()
    with pytest.raises(openai.NotFoundError) as exc:
        client.completions.create(model="gpt-17", prompt="x", max_tokens=1)
    assert exc.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as exc:
        client.completions.create(model=server.model, prompt="x", max_tokens=1, temperature=9)
    assert exc.value.body["param"] == "temperature"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=server.model, messages=[], max_tokens=1)
    with pytest.raises(openai.BadRequestError) as exc:
        client.completions.create(model=server.model, prompt="x", max_tokens=100_000)
    assert exc.value.body["param"] == "max_tokens"
    with pytest.raises(openai.APIStatusError) as exc:
        client.completions.create(model=server.model, prompt=[5] * 600, max_tokens=1)
    assert exc.value.status_code == 413


def test_bad_json_and_big_body(server):
    r = httpx.post(server.v1 + "/completions", content=b"{not json", headers={**server.headers(),
                   "Content-Type": "application/json"})
    assert r.status_code == 400 and "error" in r.json()
    big = b'{"model": "tiny", "prompt": "' + b"a" * (9 * 1024 * 1024) + b'"}'
    r = httpx.post(server.v1 + "/completions", content=big, headers={**server.headers(),
                   "Content-Type": "application/json"}, timeout=60)
    assert r.status_code == 413


def _rapl_readable() -> bool:
    from pathlib import Path

    try:
        return any(int((z / "energy_uj").read_text()) >= 0 for z in Path("/sys/class/powercap").glob("intel-rapl:*"))
    except OSError:
        return False


def test_energy_series_only_with_a_real_counter(server):
    names = server.metrics()
    has_energy = any(k.startswith("presso_energy_joules_total") for k in names)
    # No GPU in these tests; RAPL only where the powercap counter is readable. Otherwise absent, not zero.
    assert has_energy == _rapl_readable()
    assert server.metric("presso_process_resident_memory_bytes") > 10e6
    assert server.metric("presso_model_weight_bytes") > 0
