"""Errors are OpenAI error objects with the right status, and the client raises the matching class."""

from __future__ import annotations

import json

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
    with pytest.raises(openai.BadRequestError) as exc:
        client.completions.create(model=server.model, prompt=[5] * 600, max_tokens=1)
    assert exc.value.body["param"] == "prompt" and exc.value.body["code"] == "context_length_exceeded"


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


def test_lowercase_bearer_scheme_and_wrong_key(server):
    url = f"{server.v1}/models"
    assert httpx.get(url, headers={"Authorization": f"bearer {server.api_key}"}).status_code == 200
    assert httpx.get(url, headers={"Authorization": f"BEARER {server.api_key}"}).status_code == 200
    assert httpx.get(url, headers={"Authorization": f"Basic {server.api_key}"}).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer nope"}).status_code == 401


def test_models_do_not_reveal_the_filesystem(server):
    data = httpx.get(f"{server.v1}/models", headers=server.headers()).json()["data"][0]
    assert "/" not in json.dumps(data) and data["root"] == server.model


def test_chunked_body_over_the_limit_is_413(server):
    def chunks():
        yield b'{"model": "tiny", "prompt": "'
        for _ in range(9):
            yield b"a" * (1024 * 1024)
        yield b'"}'

    r = httpx.post(server.v1 + "/completions", content=chunks(), timeout=60,
                   headers={**server.headers(), "Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
    small = httpx.post(server.v1 + "/completions", content=iter([b'{"model": "tiny", ', b'"prompt": "Hi", ',
                                                                 b'"max_tokens": 2}']),
                       headers={**server.headers(), "Content-Type": "application/json"}, timeout=60)
    assert small.status_code == 200, small.text


def test_more_sequences_than_the_queue_holds_is_400_not_429(launch):
    live = launch("--max-queued-requests", "2")
    r = httpx.post(f"{live.v1}/completions", json={"model": live.model, "prompt": "Hi", "max_tokens": 1, "n": 3},
                   timeout=60)
    assert r.status_code == 400 and r.json()["error"]["param"] == "n"
    r = httpx.post(f"{live.v1}/completions", json={"model": live.model, "prompt": ["a", "b"], "max_tokens": 1,
                                                   "n": 2}, timeout=60)
    assert r.status_code == 400
