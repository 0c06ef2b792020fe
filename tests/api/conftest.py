"""Fixtures that start the real `presso serve` (uvicorn on 127.0.0.1) in a subprocess for API tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

API_KEY = "test-key-123"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LiveServer:
    proc: subprocess.Popen
    base_url: str
    api_key: str | None
    model: str
    log_path: Path

    @property
    def v1(self) -> str:
        return f"{self.base_url}/v1"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def metrics(self) -> dict[str, float]:
        """Parse /metrics into {'name{labels}': value}."""
        text = httpx.get(f"{self.base_url}/metrics", headers=self.headers(), timeout=10).text
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                out[key] = float(value)
        return out

    def metric(self, name: str) -> float:
        """Sum of every sample of `name` (over labels)."""
        return sum(v for k, v in self.metrics().items() if k == name or k.startswith(name + "{"))

    def stop(self, sig=signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)


def start_server(model_dir: Path, tmp_path: Path, *extra: str, api_key: str | None = None,
                 name: str = "tiny") -> LiveServer:
    port = free_port()
    exe = str(Path(sys.executable).with_name("presso"))
    cmd = [exe, "serve", "--model", str(model_dir), "--port", str(port), "--served-model-name", name,
           "--log-level", "warning", *extra]
    if api_key:
        cmd += ["--api-key", api_key]
    log_path = tmp_path / f"server-{port}.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ})
    server = LiveServer(proc, f"http://127.0.0.1:{port}", api_key, name, log_path)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(f"{server.base_url}/health", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"server did not become healthy:\n{log_path.read_text()[-3000:]}")


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
