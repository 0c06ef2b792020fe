"""Per-server Prometheus registry and the per-request timer that feeds its latency histograms.

Series follow vLLM's names with the `presso_` prefix: prompt/generation token counters, request
success by finish reason, admission rejections by reason, and histograms of time to first token,
inter-token latency, end-to-end latency and queue time.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector

from presso.server.metrics.collectors import EngineCollector
from presso.server.metrics.energy import EnergyCollector

_LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
                    10.0, 20.0, 40.0, 80.0, 160.0)
_TOKEN_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)


class ServerMetrics:
    def __init__(self, model_name: str, engine=None):
        self.model_name = model_name
        self.mean_e2e_s: float | None = None  # EWMA of finished requests' seconds (note_duration)
        self.registry = CollectorRegistry()
        r, m = self.registry, ["model_name"]
        self.prompt_tokens = Counter("presso_prompt_tokens", "Prompt tokens processed", m, registry=r)
        self.generation_tokens = Counter("presso_generation_tokens", "Generated tokens", m, registry=r)
        self.request_success = Counter("presso_request_success", "Finished requests by finish reason",
                                       [*m, "finished_reason"], registry=r)
        self.admission_rejections = Counter("presso_admission_rejections", "Requests refused at admission",
                                            [*m, "reason"], registry=r)
        self.ttft = Histogram("presso_time_to_first_token_seconds", "Time to first token", m,
                              buckets=_LATENCY_BUCKETS, registry=r)
        self.itl = Histogram("presso_inter_token_latency_seconds", "Time between output tokens", m,
                             buckets=_LATENCY_BUCKETS, registry=r)
        self.e2e = Histogram("presso_e2e_request_latency_seconds", "Arrival to finish", m,
                             buckets=_LATENCY_BUCKETS, registry=r)
        self.queue_time = Histogram("presso_request_queue_time_seconds", "Arrival to first scheduling", m,
                                    buckets=_LATENCY_BUCKETS, registry=r)
        self.request_prompt_tokens = Histogram("presso_request_prompt_tokens", "Prompt length per request", m,
                                               buckets=_TOKEN_BUCKETS, registry=r)
        self.request_generation_tokens = Histogram("presso_request_generation_tokens",
                                                   "Generated tokens per request", m,
                                                   buckets=_TOKEN_BUCKETS, registry=r)
        ProcessCollector(namespace="presso", registry=r)  # presso_process_resident_memory_bytes, cpu, fds
        self.energy = EnergyCollector(model_name, self._generated_so_far)
        r.register(self.energy)
        if engine is not None:
            r.register(EngineCollector(engine, model_name))

    def _generated_so_far(self) -> float:
        # Read the counter itself, not the registry: the registry would call the energy collector again.
        return sum(sample.value for family in self.generation_tokens.collect() for sample in family.samples
                   if sample.name.endswith("_total"))

    def reject(self, reason: str) -> None:
        self.admission_rejections.labels(self.model_name, reason).inc()

    def note_duration(self, seconds: float) -> None:
        """An exponential moving average of finished requests' end-to-end time (for Retry-After)."""
        self.mean_e2e_s = seconds if self.mean_e2e_s is None else 0.9 * self.mean_e2e_s + 0.1 * seconds


class RequestTimer:
    """Timestamps of one engine request; turns them into histogram observations and counters."""

    def __init__(self, metrics: ServerMetrics, arrival: float):
        self.m = metrics
        self.arrival = arrival
        self.last: float | None = None

    def on_tokens(self, count: int, queue_time: float | None = None) -> None:
        name = self.m.model_name
        if queue_time is not None:  # the engine sends it once, on the request's first delta
            self.m.queue_time.labels(name).observe(queue_time)
        if count <= 0:
            return
        now = time.perf_counter()
        if self.last is None:
            self.m.ttft.labels(name).observe(now - self.arrival)
            count -= 1  # the first token has no predecessor
        if count > 0 and self.last is not None:
            per_token = (now - self.last) / count
            for _ in range(count):
                self.m.itl.labels(name).observe(per_token)
        self.last = now

    def finish(self, reason: str, prompt_tokens: int, generated: int) -> None:
        name = self.m.model_name
        elapsed = time.perf_counter() - self.arrival
        self.m.e2e.labels(name).observe(elapsed)
        self.m.note_duration(elapsed)
        self.m.prompt_tokens.labels(name).inc(prompt_tokens)
        self.m.generation_tokens.labels(name).inc(generated)
        self.m.request_prompt_tokens.labels(name).observe(prompt_tokens)
        self.m.request_generation_tokens.labels(name).observe(generated)
        self.m.request_success.labels(name, reason).inc()
