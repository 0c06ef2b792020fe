"""Fixtures for the deployment tests: Debian's Prometheus binaries (installed with apt-get when missing,
skipped only where apt is unavailable) and a live `presso serve` of the tiny model on loopback."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from live_server import free_port, start_process, start_server, stop_process

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


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


@pytest.fixture(scope="module")
def presso_tiny(tiny_llama_dir, tmp_path_factory):
    """A tiny-model presso with a short queue (2 running, 4 waiting) so load also yields 429s."""
    live = start_server(tiny_llama_dir, tmp_path_factory.mktemp("presso"), "--kv-cache-memory", "16MiB",
                        "--max-num-seqs", "2", "--max-queued-requests", "4")
    yield live.base_url
    stop_process(live.proc)


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
