"""The engine-core process of `--engine-process`: schedules and runs the model, nothing else.

Started by ProcessEngine as `python -m presso.server.engine.core_process CMD_FD EVENT_FD`. It reads the
EngineConfig (a JSON frame) from CMD_FD, loads the EngineCore, answers ("hello", info), then loops:
read the commands that arrived (blocking only when there is no work), apply adds and aborts, run one
step, write one ("step", deltas, stats, adds seen) frame with every request's new tokens. No HTTP,
tokenizer work or asyncio here, so the step loop never waits for the API process's GIL.
It exits on ("close",) or when CMD_FD reaches EOF (the API process died), and asks the kernel to
SIGTERM it if its parent goes away first, so it is never left behind as an orphan.
"""

from __future__ import annotations

import ctypes
import dataclasses
import json
import logging
import signal
import sys
import threading
import time

from presso.server.engine import ipc
from presso.server.engine.types import RequestDelta

log = logging.getLogger("presso.server.engine.core_process")
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the EOF on the command pipe still ends the loop
        pass


def _abort_delta(rid: str) -> tuple:
    return ipc.delta_to_wire(RequestDelta(rid, (), None, None, True, "abort", 0, 0, 0))


class CoreLoop:
    def __init__(self, core, cmd_fd: int, event_fd: int):
        self.core, self.cmd_fd, self.event_fd = core, cmd_fd, event_fd
        self.reader = ipc.FrameReader()
        self.adds_seen = 0
        self.deltas: list[tuple] = []
        self.open = True

    def _send(self, message: tuple) -> None:
        ipc.write_all(self.event_fd, ipc.encode(message))

    def _flush(self) -> None:
        stats = ipc.stats_to_wire(self.core.stats())
        self._send(("step", tuple(self.deltas), stats, self.adds_seen))
        self.deltas = []

    def handle(self, msg: tuple) -> None:
        kind = msg[0]
        if kind == "add":
            _, rid, prompt, params, arrival, grammar = msg
            self.adds_seen += 1
            params = ipc.params_from_wire(params)
            if grammar is not None:
                self.core.guided.prime(params.guide, grammar)
            try:
                self.core.add_request(rid, list(prompt), params, arrival)
            except ValueError as exc:  # checked by the API process already; a late refusal ends the stream
                log.warning("request %s refused by the core: %s", rid, exc)
                self.deltas.append(_abort_delta(rid))
        elif kind == "abort":
            if self.core.abort(msg[1]):
                self.deltas.append(_abort_delta(msg[1]))
        elif kind == "sync":
            self._flush()
            self._send(("sync", msg[1], ipc.stats_to_wire(self.core.stats()), self.adds_seen))
        elif kind == "close":
            self.open = False

    def run(self) -> None:
        while self.open:
            messages = ipc.read_messages(self.cmd_fd, self.reader, None if not self.core.has_work() else 0)
            if messages is None:  # the API process is gone
                return
            for msg in messages:
                try:
                    self.handle(msg)
                except Exception:  # a bad command must not end the loop the other requests run in
                    log.exception("engine-core command %r failed", msg[:2])
                    if msg[0] == "add":
                        self.deltas.append(_abort_delta(msg[1]))
            if not self.open:
                return
            if self.core.has_work():
                try:
                    self.deltas += [ipc.delta_to_wire(d) for d in self.core.step()]
                except Exception:  # the core isolates failing requests; keep the loop alive for the rest
                    log.exception("engine step failed")
                    time.sleep(0.01)
            if self.deltas or messages:
                self._flush()


def main(argv: list[str]) -> int:
    cmd_fd, event_fd = int(argv[0]), int(argv[1])
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the API process drains
    reader = ipc.FrameReader()
    messages = []
    while not messages:
        messages = ipc.read_messages(cmd_fd, reader, None)
        if messages is None:
            return 0
    # One thread loads the model and runs every step: torch's OpenMP runtime keeps a thread team per
    # calling thread, and with more OpenMP threads than cores it stops spinning between parallel regions
    # (a SmolLM2 int4 batch-1 step: 14 ms on one team, 28 ms once a second team exists).
    result: list[int] = []
    worker = threading.Thread(target=lambda: result.append(_serve(messages, cmd_fd, event_fd)), name="presso-core")
    worker.start()
    worker.join()
    return result[0] if result else 1


def _serve(messages: list[tuple], cmd_fd: int, event_fd: int) -> int:
    """Load the EngineCore from the setup frame and run the step loop (in the core's one torch thread)."""
    setup = json.loads(messages[0][1])
    logging.basicConfig(level=setup["log_level"], format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        from presso.server.engine.config import EngineConfig
        from presso.server.engine.core import EngineCore

        core = EngineCore(EngineConfig(**setup["config"]))
    except ValueError as exc:
        ipc.write_all(event_fd, ipc.encode(("error", str(exc))))
        return 2
    info = {"max_model_len": core.max_model_len, "vocab_size": core.vocab_size,
            "eos_token_ids": sorted(core.eos_token_ids), "limits": dataclasses.asdict(core.limits),
            "stats": ipc.stats_to_wire(core.stats()),
            "kernels": core.kernels}
    ipc.write_all(event_fd, ipc.encode(("hello", json.dumps(info))))
    loop = CoreLoop(core, cmd_fd, event_fd)
    for msg in messages[1:]:
        loop.handle(msg)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
