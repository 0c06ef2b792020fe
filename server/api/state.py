"""Server-wide state shared by the routes: the engine, settings, metrics and the draining flag."""

from __future__ import annotations

import math
from dataclasses import dataclass

from presso.server.api.errors import APIError
from presso.server.metrics.registry import ServerMetrics


@dataclass(frozen=True, slots=True)
class ServerSettings:
    served_model_name: str
    api_key: str | None = None
    max_queued_requests: int = 256
    max_body_bytes: int = 8 * 1024 * 1024
    retry_after_s: int = 1  # the minimum Retry-After (and the value before any request has finished)
    body_read_timeout_s: float = 30.0  # per piece of a request body (408 when a client stalls)
    tool_call_parser: str = "hermes"  # a name in presso.server.api.tools.TOOL_PARSERS


@dataclass(slots=True)
class ServerState:
    engine: object
    settings: ServerSettings
    metrics: ServerMetrics
    ready: bool = False
    draining: bool = False

    def check_model(self, name: str | None) -> None:
        if name is not None and name != self.settings.served_model_name:
            raise APIError(404, f"The model `{name}` does not exist.", param="model", code="model_not_found")

    def retry_after(self, waiting: int) -> int:
        """Seconds until the queue has likely moved: the waiting requests, served max_num_seqs at a time,
        each taking the recent mean end-to-end time; the configured minimum without history; at most 60."""
        mean = self.metrics.mean_e2e_s
        if mean is None:
            return self.settings.retry_after_s
        slots = max(self.engine.max_num_seqs, 1)
        return int(min(60, max(self.settings.retry_after_s, math.ceil(mean * (waiting + 1) / slots))))

    def admit(self, new_requests: int) -> None:
        """Refuse work while draining (503) or when the wait queue is full (429 + Retry-After)."""
        retry = {"Retry-After": str(self.settings.retry_after_s)}
        if self.draining or not self.ready:
            self.metrics.reject("draining" if self.draining else "not_ready")
            raise APIError(503, "The server is shutting down or not ready.", headers=retry)
        if new_requests > self.settings.max_queued_requests:  # could never fit: retrying will not help
            raise APIError(400, f"n: this request needs {new_requests} sequences (n x prompts); the server queues "
                           f"at most {self.settings.max_queued_requests}", param="n", code="invalid_value")
        waiting = self.engine.stats().num_waiting
        if waiting + new_requests > self.settings.max_queued_requests:
            self.metrics.reject("max_queued_requests")
            raise APIError(429, f"The request queue is full ({waiting} waiting).", code="queue_full",
                           headers={"Retry-After": str(self.retry_after(waiting))})
