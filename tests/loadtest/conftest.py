"""Fixtures for loadtest: a live tiny-model `presso serve` (with an API key) on loopback, and a runner
for the real `presso-loadtest` console script."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

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
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = str(Path(sys.executable).with_name("presso"))
    log = tmp_path_factory.mktemp("presso") / "server.log"
    cmd = [exe, "serve", "--model", str(tiny_llama_dir), "--port", str(port), "--served-model-name", "tiny",
           "--kv-cache-memory", "32MiB", "--api-key", API_KEY, "--log-level", "warning"]
    proc = subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        assert proc.poll() is None, f"presso exited:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"presso never became healthy:\n{log.read_text()[-3000:]}"
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    yield Live(base, API_KEY)
    proc.terminate()
    proc.wait(timeout=60)


@pytest.fixture
def loadtest():
    """Run `presso-loadtest ARGS...`; returns the CompletedProcess."""
    exe = str(Path(sys.executable).with_name("presso-loadtest"))

    def _run(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout)

    return _run
