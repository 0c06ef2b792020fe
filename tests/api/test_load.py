"""Concurrency, disconnects, admission control, SIGTERM drain and a schema fuzz on live servers."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time

import httpx
import openai
import pytest
from conftest import build_tiny_model
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from live_server import start_server


async def _stream(base: str, headers: dict, prompt: str, max_tokens: int, drop_after: int | None):
    body = {"model": "tiny", "prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}
    text, chunks, usage = "", 0, None
    async with httpx.AsyncClient(timeout=300) as http:
        async with http.stream("POST", f"{base}/v1/completions", json=body, headers=headers) as r:
            assert r.status_code == 200
            async for line in r.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                event = json.loads(line[6:])
                if event["choices"]:
                    text += event["choices"][0]["text"]
                    chunks += 1
                usage = event.get("usage") or usage
                if drop_after is not None and chunks >= drop_after:
                    return None  # leaving the context manager closes the connection mid-stream
    return text, usage


def test_64_streams_with_10_disconnects(server):
    prompts = [f"It is a truth universally acknowledged {i % 8}" for i in range(64)]
    expected = {}
    for p in set(prompts):  # reference texts, one request at a time
        r = httpx.post(f"{server.v1}/completions", headers=server.headers(), timeout=120,
                       json={"model": "tiny", "prompt": p, "max_tokens": 32, "temperature": 0})
        expected[p] = r.json()["choices"][0]["text"]
    before = server.metrics()

    drops = {i for i in range(0, 60, 6)}  # 10 clients leave after 3 chunks of a long (400-token) request, so
    # the engine cannot have finished them before it sees the disconnect (a finished one counts as "length")

    async def run_all():
        jobs = [_stream(server.base_url, server.headers(), p, 400 if i in drops else 32, 3 if i in drops else None)
                for i, p in enumerate(prompts)]
        return await asyncio.gather(*jobs)

    results = asyncio.run(run_all())
    assert {i for i, r in enumerate(results) if r is None} == drops
    for i, r in enumerate(results):
        if r is not None:
            assert r[0] == expected[prompts[i]], i
            assert r[1]["completion_tokens"] == 32
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # aborts are processed by the engine loop: wait for the free list
        after = server.metrics()
        if after['presso_kv_cache_blocks_free{model_name="tiny"}'] == after['presso_kv_cache_blocks_total{model_name="tiny"}']:
            break
        time.sleep(0.2)
    assert after['presso_kv_cache_blocks_free{model_name="tiny"}'] == after['presso_kv_cache_blocks_total{model_name="tiny"}']
    assert after['presso_num_requests_running{model_name="tiny"}'] == 0

    def delta(name):
        return sum(v for k, v in after.items() if k.startswith(name)) - sum(
            v for k, v in before.items() if k.startswith(name))

    assert delta("presso_request_success_total") == 64
    assert delta('presso_request_success_total{finished_reason="length"') == 54
    assert delta('presso_request_success_total{finished_reason="abort"') == 10
    assert delta("presso_e2e_request_latency_seconds_count") == 64
    assert delta("presso_time_to_first_token_seconds_count") == 64
    generated = delta("presso_generation_tokens_total")
    assert 54 * 32 + 10 * 3 <= generated < 54 * 32 + 10 * 400
    assert delta("presso_inter_token_latency_seconds_count") == generated - 64


def test_queue_full_gives_429_with_retry_after(launch):
    live = launch("--max-num-seqs", "1", "--max-queued-requests", "1")
    client = openai.OpenAI(base_url=live.v1, api_key="x", max_retries=0, timeout=120)
    statuses, lock = [], threading.Lock()

    def one():
        try:
            client.completions.create(model="tiny", prompt="a truth", max_tokens=150, temperature=0)
            code = 200
        except openai.RateLimitError as exc:
            code = 429
            assert 1 <= int(exc.response.headers.get("retry-after")) <= 60
        with lock:
            statuses.append(code)

    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
        time.sleep(0.05)
    for t in threads:
        t.join()
    assert 429 in statuses and 200 in statuses
    rejected = live.metric("presso_admission_rejections_total")
    assert rejected == statuses.count(429)


def test_sigterm_drains_running_requests(launch):
    live = launch()
    result = {}

    def long_request():
        r = httpx.post(f"{live.v1}/completions", timeout=120,
                       json={"model": "tiny", "prompt": "the neighbourhood", "max_tokens": 200, "temperature": 0})
        result["status"] = r.status_code
        result["body"] = r.json()

    t = threading.Thread(target=long_request)
    t.start()
    time.sleep(1.0)
    live.proc.send_signal(signal.SIGTERM)
    t.join(timeout=120)
    assert result["status"] == 200 and result["body"]["usage"]["completion_tokens"] == 200
    assert live.proc.wait(timeout=60) == 0


_JSON = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False, allow_infinity=False)
                     | st.text(max_size=20), lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                     max_leaves=10)
_FIELDS = ["model", "prompt", "messages", "max_tokens", "temperature", "top_p", "top_k", "n", "stream", "stop",
           "seed", "logprobs", "top_logprobs", "echo", "presence_penalty", "frequency_penalty", "stream_options",
           "logit_bias", "min_tokens", "min_p", "repetition_penalty", "stop_token_ids", "ignore_eos", "response_format",
           "guided_regex", "guided_json", "guided_grammar", "tools", "tool_choice", "parallel_tool_calls", "input",
           "instructions", "text", "max_output_tokens", "max_completion_tokens"]


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(path=st.sampled_from(["/v1/completions", "/v1/chat/completions", "/v1/responses", "/tokenize",
                             "/detokenize"]),
       body=st.fixed_dictionaries({}, optional={f: _JSON for f in _FIELDS}),
       small=st.fixed_dictionaries({"model": st.just("tiny"), "max_tokens": st.integers(0, 3)}))
def test_fuzz_never_5xx(server, path, body, small):
    payload = {**small, **body}
    for key in ("max_tokens", "max_output_tokens", "max_completion_tokens", "min_tokens"):
        if isinstance(payload.get(key), int) and payload[key] > 3:
            payload[key] = 3  # keep generation short; its range checks are tested elsewhere
    r = httpx.post(server.base_url + path, json=payload, headers=server.headers(), timeout=60)
    assert r.status_code < 500, (payload, r.text)
    if r.status_code >= 400:
        assert set(r.json()["error"]) >= {"message", "type", "param", "code"}


@pytest.fixture(scope="module")
def long_model(tmp_path_factory):
    """The tiny model with a 4096-token context, so one request can hold the only slot for seconds."""
    return build_tiny_model(tmp_path_factory.mktemp("long-model"), "llama", max_positions=4096)


@pytest.fixture
def occupied(long_model, tmp_path):
    """A server with one slot, held by a long streaming request A until the test ends (then A leaves)."""
    servers, streams = [], []

    def start(*flags: str):
        live = start_server(long_model, tmp_path, "--max-num-seqs", "1", *flags)
        servers.append(live)
        body = {"model": live.model, "prompt": "It is a truth", "max_tokens": 4000, "temperature": 0,
                "ignore_eos": True, "stream": True}
        client = httpx.Client(timeout=300)
        stream = client.stream("POST", f"{live.v1}/completions", json=body)
        streams.append((client, stream))
        def drain_a():
            try:
                for _ in stream.__enter__().iter_lines():
                    pass
            except httpx.HTTPError:
                pass  # closed at teardown

        threading.Thread(target=drain_a, daemon=True).start()
        deadline = time.monotonic() + 30
        while live.metric("presso_num_requests_running") < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert live.metric("presso_num_requests_running") == 1
        return live

    yield start
    for client, _ in streams:
        client.close()  # A's client leaves: A is aborted
    for live in servers:
        live.stop()


@pytest.mark.slow  # holds the only slot with a 4096-token request: seconds, not the unit tier
def test_admission_counts_requests_not_yet_scheduled(occupied):
    """A holds the only slot; 40 concurrent requests against --max-queued-requests 8: exactly 8 wait and 32
    get 429, because accepted-but-unscheduled requests count as waiting (and are exported as such)."""
    live = occupied("--max-queued-requests", "8")
    codes = asyncio.run(_answered_while_occupied(live, 40, 32))
    assert codes == [429] * 32, codes
    assert live.metric("presso_num_requests_waiting") == 8


async def _answered_while_occupied(live, sent: int, expect: int) -> list[int]:
    """Send `sent` requests at once; the statuses of the first `expect` answered (the admitted ones wait
    behind the long request, so only refusals can come back), then the rest are cancelled."""
    body = {"model": live.model, "prompt": "It is a truth", "max_tokens": 4, "temperature": 0}
    async with httpx.AsyncClient(timeout=120) as http:
        pending = [asyncio.create_task(http.post(f"{live.v1}/completions", json=body)) for _ in range(sent)]
        deadline = time.monotonic() + 30
        while sum(t.done() for t in pending) < expect and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        codes = [t.result().status_code for t in pending if t.done() and not t.exception()]
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        return codes


@pytest.mark.slow  # holds the only slot with a 4096-token request: seconds, not the unit tier
def test_streaming_client_leaving_while_queued_is_dropped_before_its_prefill(occupied):
    """One slot, held by A; B streams but waits; B's client leaves. B must leave the queue while A still
    runs (before, it waited, was prefilled, and only its first write noticed the missing client)."""
    import socket

    live = occupied()
    payload = json.dumps({"model": live.model, "prompt": "It is a truth", "max_tokens": 5, "stream": True}).encode()
    host, port = live.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:  # raw: no waiting for response headers
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     + f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
        deadline = time.monotonic() + 30
        while live.metric("presso_num_requests_waiting") < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert live.metric("presso_num_requests_waiting") == 1
    deadline = time.monotonic() + 10  # the client is gone: B is aborted while A is still running
    while live.metric("presso_num_requests_waiting") > 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert live.metric("presso_num_requests_waiting") == 0
    assert live.metric("presso_num_requests_running") == 1


def test_prompt_certainly_over_the_context_is_refused_without_tokenizing(server):
    r = httpx.post(f"{server.v1}/completions", headers=server.headers(), timeout=60,
                   json={"model": server.model, "prompt": "word " * 200_000, "max_tokens": 1})
    assert r.status_code == 400 and r.json()["error"]["code"] == "context_length_exceeded"
    assert "characters" in r.json()["error"]["message"]  # the cheap check answered, not the tokenizer


def _stream_lines(live, lines: list[str]) -> threading.Thread:
    body = {"model": live.model, "prompt": "the neighbourhood", "max_tokens": 480, "temperature": 0,
            "ignore_eos": True, "stream": True}

    def run():
        with httpx.stream("POST", f"{live.v1}/completions", json=body, timeout=120) as r:
            lines.extend(line for line in r.iter_lines() if line)

    t = threading.Thread(target=run)
    t.start()
    deadline = time.monotonic() + 30
    while live.metric("presso_num_requests_running") < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    return t


def test_draining_keeps_the_port_and_answers_503(launch):
    live = launch("--drain-timeout", "60", "--max-num-seqs", "1")
    lines: list[str] = []
    t = _stream_lines(live, lines)
    live.proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    r = httpx.post(f"{live.v1}/completions", json={"model": live.model, "prompt": "x", "max_tokens": 1}, timeout=30)
    assert r.status_code == 503 and r.headers["retry-after"]  # not connection refused
    t.join(timeout=120)
    assert lines[-1] == "data: [DONE]" and '"finish_reason":"length"' in "".join(lines[-3:])
    assert live.proc.wait(timeout=60) == 0


def test_drain_timeout_ends_streams_with_an_error_event(launch):
    live = launch("--drain-timeout", "0.2", "--max-num-seqs", "1")
    lines: list[str] = []
    t = _stream_lines(live, lines)
    live.proc.send_signal(signal.SIGTERM)
    t.join(timeout=120)
    assert lines[-1] == "data: [DONE]", lines[-3:]
    error = json.loads(lines[-2].removeprefix("data: "))["error"]
    assert error["code"] == "shutting_down" and "drain timeout" in error["message"]
    assert live.proc.wait(timeout=60) == 0


def test_stalled_body_gets_408_and_does_not_hold_shutdown(launch):
    import socket

    live = launch("--body-read-timeout", "1")
    host, port = live.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n{\"model\": ")  # ... and nothing more
        sock.settimeout(10)
        head = sock.recv(4096).decode()
        assert head.startswith("HTTP/1.1 408"), head
        with socket.create_connection((host, int(port))) as stalled:
            stalled.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
            time.sleep(0.2)
            start = time.monotonic()
            live.proc.send_signal(signal.SIGTERM)
            assert live.proc.wait(timeout=30) == 0
            assert time.monotonic() - start < 10
