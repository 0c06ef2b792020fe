"""`presso serve`: load a checkpoint into the AsyncEngine and serve the OpenAI API with uvicorn.

model dir -> EngineConfig -> AsyncEngine (weights loaded here, before the socket opens) -> build_app
-> uvicorn. SIGTERM/SIGINT drain: the server stops taking requests (503), lets running ones finish
for up to --drain-timeout seconds, stops the engine, and exits 0.
"""

from __future__ import annotations

import argparse
import logging
import signal
from pathlib import Path

from presso.compression.checkpoint import PressoInputError, resolve_model_dir


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
    from presso.server.api.state import ServerSettings
    from presso.server.engine.async_engine import AsyncEngine, EngineConfig

    model_dir = resolve_model_dir(args.model)
    settings = ServerSettings(
        served_model_name=args.served_model_name or model_dir.name,
        api_key=read_api_key(args),
        max_queued_requests=args.max_queued_requests,
    )
    try:
        config = EngineConfig(
            model=str(model_dir),
            dtype=args.dtype,
            kv_cache_dtype=args.kv_cache,
            kv_cache_memory=args.kv_cache_memory,
            kv_window=args.kv_window,
            lm_head_quant=args.lm_head_quant,
            max_num_seqs=args.max_num_seqs,
            max_model_len=args.max_model_len,
            block_size=args.block_size,
        ).validate()
        engine = AsyncEngine.from_config(config)
    except ValueError as exc:
        raise PressoInputError(str(exc)) from None
    app = build_app(engine, settings)
    state = app.state.presso

    class DrainingServer(uvicorn.Server):
        def handle_exit(self, sig, frame):
            state.draining = True  # new requests get 503 while in-flight ones finish
            super().handle_exit(sig, frame)

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    server = DrainingServer(uvicorn.Config(
        app, host=args.host, port=args.port, log_level=args.log_level,
        timeout_graceful_shutdown=int(args.drain_timeout), access_log=False,
    ))
    # uvicorn re-raises the signal that stopped it once it has drained; with this handler in place
    # (uvicorn restores it after serving) that re-raise is a no-op and a drained SIGTERM exits 0.
    signal.signal(signal.SIGTERM, lambda *_: None)
    server.run()
    return 0


def register(sub) -> None:
    p = sub.add_parser("serve", help="serve a model behind an OpenAI-compatible HTTP API")
    p.add_argument("--model", required=True, help="model/checkpoint dir, embedded model name or hub id")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--served-model-name", default=None, help="name clients use (default: the dir's name)")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    p.add_argument("--kv-cache", default="auto", help="KV cache codec: auto, bf16, fp16, fp32, int8, kivi2, rvq")
    p.add_argument("--kv-cache-memory", default="1GiB", help="KV budget: bytes (2GiB, 512MiB) or a fraction")
    p.add_argument("--kv-window", type=int, default=0, metavar="N",
                   help="compressed KV codecs: keep each sequence's last N tokens exact too (bf16; disables "
                        "prefix caching)")
    p.add_argument("--lm-head-quant", default="auto", choices=["auto", "none", "int8", "int4"],
                   help="output head RTN at load (auto: int8 for quantized checkpoints)")
    p.add_argument("--max-num-seqs", type=int, default=64)
    p.add_argument("--max-model-len", type=int, default=None)
    p.add_argument("--block-size", type=int, default=16)
    p.add_argument("--max-queued-requests", type=int, default=256)
    key = p.add_mutually_exclusive_group()
    key.add_argument("--api-key", default=None)
    key.add_argument("--api-key-file", default=None)
    p.add_argument("--drain-timeout", type=float, default=30.0, help="seconds running requests get on SIGTERM")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=run_serve)
