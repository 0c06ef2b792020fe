"""`presso serve --engine-process` (the engine core in its own process): it serves, and it leaves no
process behind whether the server drains on SIGTERM or is killed outright."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx


def _children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


def _gone(pid: int, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
            state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
            if state == "Z":  # exited, waiting for its parent to reap it
                return True
        except (ProcessLookupError, FileNotFoundError):
            return True
        time.sleep(0.2)
    return False


def _core_pid(live) -> int:
    cores = [p for p in _children(live.proc.pid)
             if "core_process" in Path(f"/proc/{p}/cmdline").read_text()]
    assert len(cores) == 1, "presso serve should run one engine-core process"
    return cores[0]


def test_serves_and_drains_without_leftovers(launch):
    live = launch("--engine-process")
    core = _core_pid(live)
    r = httpx.post(f"{live.v1}/completions", timeout=60,
                   json={"model": "tiny", "prompt": "the neighbourhood", "max_tokens": 5, "temperature": 0})
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 5
    assert live.stop(signal.SIGTERM) == 0
    assert _gone(core)


def test_killed_server_takes_its_core_along(launch):
    live = launch("--engine-process")
    core = _core_pid(live)
    live.proc.kill()
    live.proc.wait()
    assert _gone(core), "the engine-core process outlived a SIGKILLed server"
