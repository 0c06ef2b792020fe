"""`presso serve`: load a checkpoint into the AsyncEngine and serve the OpenAI API with uvicorn.

model dir -> EngineConfig -> AsyncEngine (weights loaded here, before the socket opens) -> build_app
-> uvicorn. SIGTERM/SIGINT drain: the server stops taking requests (503), lets running ones finish
for up to --drain-timeout seconds, stops the engine, and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import time
from pathlib import Path

from presso.compression.checkpoint import PressoInputError, resolve_model_dir
from presso.server.engine.args import add_engine_args

log = logging.getLogger(__name__)


def read_api_key(args: argparse.Namespace) -> str | None:
    if args.api_key_file:
        path = Path(args.api_key_file)
        try:
            key = path.read_text().strip()
        except OSError as exc:
            raise PressoInputError(f"--api-key-file {path}: {exc.strerror}") from None
        if not key:
            raise PressoInputError(f"--api-key-file {path}: the file is empty")
        return key
    return args.api_key or None


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from presso.server.api.app import build_app
    from presso.server.api.errors import APIError
    from presso.server.api.generation import ChoiceRun
    from presso.server.api.state import ServerSettings
    from presso.server.engine.args import engine_kwargs
    from presso.server.engine.async_engine import EngineConfig, open_engine

    model_dir = resolve_model_dir(args.model)
    settings = ServerSettings(
        served_model_name=args.served_model_name or model_dir.name,
        api_key=read_api_key(args),
        max_queued_requests=args.max_queued_requests,
        tool_call_parser=args.tool_call_parser,
        body_read_timeout_s=args.body_read_timeout,
    )
    try:
        config = EngineConfig(model=str(model_dir), **engine_kwargs(args)).validate()
        engine = open_engine(config)
    except ValueError as exc:
        raise PressoInputError(str(exc)) from None
    app = build_app(engine, settings)
    state = app.state.presso

    class DrainingServer(uvicorn.Server):
        """SIGTERM/SIGINT: keep listening (new requests get 503) while the ones in flight finish, for up
        to --drain-timeout seconds; streams still running then end with an error event and [DONE];
        then uvicorn shuts down. A second signal exits at once."""

        def handle_exit(self, sig, frame):
            if state.draining:
                return super().handle_exit(sig, frame)
            state.draining = True
            asyncio.get_event_loop().call_soon_threadsafe(lambda: asyncio.ensure_future(self._drain(sig, frame)))

        async def _drain(self, sig, frame):
            deadline = time.monotonic() + args.drain_timeout
            while ChoiceRun.in_flight() and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            cut = ChoiceRun.cut_off_all(APIError(503, "The server is shutting down: the request was cut off at the "
                                                 "drain timeout.", code="shutting_down"))
            if cut:
                log.warning("drain timeout: cut off %d request(s)", cut)
                await asyncio.sleep(0.5)  # let their error events reach the clients
            super().handle_exit(sig, frame)

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    server = DrainingServer(uvicorn.Config(
        app, host=args.host, port=args.port, log_level=args.log_level,
        timeout_graceful_shutdown=5, access_log=False,  # the drain happened before uvicorn's shutdown
    ))
    # uvicorn re-raises the signal that stopped it once it has drained; with this handler in place
    # (uvicorn restores it after serving) that re-raise is a no-op and a drained SIGTERM exits 0.
    signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        server.run()
    finally:
        engine.close()  # --engine-process: the core process ends with the server
    return 0


def register(sub) -> None:
    p = sub.add_parser("serve", help="serve a model behind an OpenAI-compatible HTTP API")
    p.add_argument("--model", required=True, help="model/checkpoint dir, embedded model name or hub id")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--served-model-name", default=None, help="name clients use (default: the dir's name)")
    add_engine_args(p, ["dtype", "device", "kernel_backend", "kv_cache_dtype", "kv_cache_memory", "kv_window",
                        "lm_head_quant", "max_num_seqs", "max_model_len", "block_size", "model_impl",
                        "engine_process", "compile", "max_num_batched_tokens"], max_num_seqs=64)
    p.add_argument("--max-queued-requests", type=int, default=256)
    p.add_argument("--body-read-timeout", type=float, default=30.0, metavar="S",
                   help="seconds a client may take per piece of a request body (408 after)")
    p.add_argument("--tool-call-parser", default="hermes", choices=["hermes"],
                   help="how tool calls are read out of the model's text (server/api/tools.py)")
    key = p.add_mutually_exclusive_group()
    key.add_argument("--api-key", default=None)
    key.add_argument("--api-key-file", default=None)
    p.add_argument("--drain-timeout", type=float, default=30.0, help="seconds running requests get on SIGTERM")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=run_serve)
