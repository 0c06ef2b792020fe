"""Fixtures for the deployment tests: Debian's Prometheus binaries (installed with apt-get when missing,
skipped only where apt is unavailable) and a live `presso serve` of the tiny model on loopback."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ensure_prometheus() -> tuple[str, str]:
    """Paths of `prometheus` and `promtool`; installs Debian's package as root when they are missing."""
    if not (shutil.which("prometheus") and shutil.which("promtool")):
        if shutil.which("apt-get") is None:
            pytest.skip("prometheus is not installed and apt-get is unavailable on this machine")
        if os.geteuid() != 0:
            pytest.skip("prometheus is not installed and apt-get needs root here (run `make prometheus`)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "prometheus"]
        if subprocess.run(install, env=env, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, check=True)
            subprocess.run(install, env=env, capture_output=True, check=True)
    return shutil.which("prometheus"), shutil.which("promtool")


@pytest.fixture(scope="session")
def prometheus_bins() -> tuple[str, str]:
    return _ensure_prometheus()


@pytest.fixture(scope="session")
def promtool(prometheus_bins) -> str:
    return prometheus_bins[1]


def wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 180) -> None:
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
    proc = subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    try:
        wait_http(health_url, proc, log)
    except BaseException:
        proc.kill()
        raise
    return proc


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def presso_tiny(tiny_llama_dir, tmp_path_factory):
    """A tiny-model presso with a short queue (2 running, 4 waiting) so load also yields 429s."""
    port = free_port()
    exe = str(Path(sys.executable).with_name("presso"))
    cmd = [exe, "serve", "--model", str(tiny_llama_dir), "--port", str(port), "--served-model-name", "tiny",
           "--kv-cache-memory", "16MiB", "--max-num-seqs", "2", "--max-queued-requests", "4",
           "--log-level", "warning"]
    base = f"http://127.0.0.1:{port}"
    proc = start_process(cmd, tmp_path_factory.mktemp("presso") / "server.log", f"{base}/health")
    yield base
    stop_process(proc)


@pytest.fixture(scope="module")
def start_prometheus(prometheus_bins, tmp_path_factory):
    """Start the real prometheus on a free loopback port with a given config; returns its base URL."""
    started: list[subprocess.Popen] = []

    def _start(config: Path) -> str:
        port = free_port()
        work = tmp_path_factory.mktemp("prometheus")
        cmd = [prometheus_bins[0], f"--config.file={config}", f"--storage.tsdb.path={work / 'data'}",
               f"--web.listen-address=127.0.0.1:{port}"]
        base = f"http://127.0.0.1:{port}"
        started.append(start_process(cmd, work / "prometheus.log", f"{base}/-/ready"))
        return base

    yield _start
    for proc in started:
        stop_process(proc)
