"""The FastAPI application: routes, error handlers, middleware, engine start/stop in the lifespan.

`build_app(engine, settings)` returns an app whose state holds the engine; the engine's model is
loaded before the app is built, so /health is ready as soon as the lifespan has started the engine.
"""

from __future__ import annotations

import time
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from presso.server.api.chat import create_chat_completion
from presso.server.api.completions import create_completion
from presso.server.api.errors import APIError, install_error_handlers
from presso.server.api.guard import GuardMiddleware
from presso.server.api.params import encode_chat
from presso.server.api.protocol import DetokenizeRequest, TokenizeRequest
from presso.server.api.responses import create_response
from presso.server.api.state import ServerSettings, ServerState
from presso.server.metrics.registry import ServerMetrics


def build_app(engine, settings: ServerSettings) -> FastAPI:
    state = ServerState(engine, settings, ServerMetrics(settings.served_model_name, engine))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await engine.start()
        state.ready = True
        try:
            yield
        finally:
            state.ready = False
            state.draining = True
            await engine.shutdown()

    app = FastAPI(title="presso", version="0.1.0", lifespan=lifespan)
    app.state.presso = state
    install_error_handlers(app)
    app.add_middleware(GuardMiddleware, api_key=settings.api_key, max_body_bytes=settings.max_body_bytes,
                       read_timeout=settings.body_read_timeout_s)
    created = int(time.time())

    @app.get("/health")
    async def health():
        if not state.ready or state.draining:
            return JSONResponse({"status": "unavailable"}, status_code=503)
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{
            "id": settings.served_model_name, "object": "model", "created": created, "owned_by": "presso",
            "root": settings.served_model_name, "max_model_len": engine.max_model_len,
        }]}

    @app.get("/v1/models/{model_id:path}")
    async def model(model_id: str):
        state.check_model(model_id)
        return (await models())["data"][0]

    app.post("/v1/completions")(create_completion)
    app.post("/v1/chat/completions")(create_chat_completion)
    app.post("/v1/responses")(create_response)

    @app.post("/tokenize")
    async def tokenize(body: TokenizeRequest):
        state.check_model(body.model)
        tok = engine.tokenizer
        if body.messages is not None:
            ids = encode_chat(tok, [{"role": m.role, "content": m.text()} for m in body.messages])
        else:
            ids = tok(body.prompt, add_special_tokens=body.add_special_tokens)["input_ids"]
        return {"tokens": ids, "count": len(ids), "max_model_len": engine.max_model_len}

    @app.post("/detokenize")
    async def detokenize(body: DetokenizeRequest):
        state.check_model(body.model)
        vocab = len(engine.tokenizer)
        if any(t >= vocab for t in body.tokens):
            raise APIError(400, f"tokens: ids must be below the vocabulary size {vocab}", param="tokens")
        return {"prompt": engine.tokenizer.decode(body.tokens)}

    @app.get("/metrics")
    async def metrics(request: Request):
        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
