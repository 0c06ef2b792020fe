"""Start real processes for the live tests: `presso serve` (uvicorn on 127.0.0.1) or any server with a
health URL, waited for until it answers 200, and stopped at teardown. Shared by tests/api, tests/deploy
and tests/loadtest (tests/conftest.py puts this folder on sys.path)."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    """Poll `url` until it answers 200; RuntimeError (with the log's tail) if `proc` exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"{url} did not answer 200 in {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def start_process(cmd: list[str], log: Path, health_url: str) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT, env={**os.environ})
    try:
        wait_http(health_url, proc, log)
    except BaseException:
        proc.kill()
        raise
    return proc


def stop_process(proc: subprocess.Popen, timeout: float = 30) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


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
    """The real `presso serve` console script on a free loopback port, healthy. $PRESSO_TEST_SERVE_ARGS adds
    flags to every server (e.g. `--engine-process`: the API suite against the engine-core process)."""
    port = free_port()
    exe = str(Path(sys.executable).with_name("presso"))
    cmd = [exe, "serve", "--model", str(model_dir), "--port", str(port), "--served-model-name", name,
           "--log-level", "warning", *extra, *shlex.split(os.environ.get("PRESSO_TEST_SERVE_ARGS", ""))]
    if api_key:
        cmd += ["--api-key", api_key]
    log_path = tmp_path / f"server-{port}.log"
    base = f"http://127.0.0.1:{port}"
    return LiveServer(start_process(cmd, log_path, f"{base}/health"), base, api_key, name, log_path)
