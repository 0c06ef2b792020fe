"""Fixtures for loadtest: a live tiny-model `presso serve` (with an API key) on loopback, and a runner
for the real `presso-loadtest` console script."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from live_server import start_server, stop_process

API_KEY = "loadtest-key"


@dataclass(frozen=True, slots=True)
class Live:
    base_url: str
    api_key: str

    def counter(self, name: str) -> float:
        """Sum over labels of one series in /metrics."""
        text = httpx.get(f"{self.base_url}/metrics", headers={"Authorization": f"Bearer {self.api_key}"},
                         timeout=10).text
        return sum(float(line.rpartition(" ")[2]) for line in text.splitlines()
                   if line.startswith((name + " ", name + "{")))


@pytest.fixture(scope="module")
def live(tiny_llama_dir, tmp_path_factory):
    server = start_server(tiny_llama_dir, tmp_path_factory.mktemp("presso"), "--kv-cache-memory", "32MiB",
                          api_key=API_KEY)
    base = server.base_url
    yield Live(base, API_KEY)
    stop_process(server.proc, timeout=60)


@pytest.fixture
def loadtest():
    """Run `presso-loadtest ARGS...`; returns the CompletedProcess."""
    exe = str(Path(sys.executable).with_name("presso-loadtest"))

    def _run(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout)

    return _run
