"""Fixtures that start the real `presso serve` (uvicorn on 127.0.0.1) in a subprocess for API tests."""

from __future__ import annotations

import pytest
from live_server import LiveServer, start_server

API_KEY = "test-key-123"


@pytest.fixture(scope="module")
def server(tiny_llama_dir, tmp_path_factory):
    live = start_server(tiny_llama_dir, tmp_path_factory.mktemp("srv"), "--kv-cache-memory", "64MiB",
                        api_key=API_KEY)
    yield live
    live.stop()


@pytest.fixture
def client(server):
    from openai import OpenAI

    return OpenAI(base_url=server.v1, api_key=server.api_key, max_retries=0, timeout=120)


@pytest.fixture
def launch(tiny_llama_dir, tmp_path):
    """Start extra servers with custom flags; all are stopped at teardown."""
    started: list[LiveServer] = []

    def _launch(*extra: str, api_key: str | None = None) -> LiveServer:
        live = start_server(tiny_llama_dir, tmp_path, *extra, api_key=api_key)
        started.append(live)
        return live

    yield _launch
    for live in started:
        if live.proc.poll() is None:
            live.proc.kill()
            live.proc.wait()


@pytest.fixture(scope="session")
def start_server_fn():
    """`start_server` itself, for modules that build servers on other models."""
    return start_server
