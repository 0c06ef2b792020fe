"""Drive a run: fixed-concurrency workers (closed loop) or Poisson arrivals (open loop), bounded by a
request count and/or a time limit.

RunConfig + workload.jobs -> client.send per job -> RunResult (records in completion order, wall time).
When the time limit passes no new request starts; requests already in flight finish (or time out).
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass

import httpx

from loadtest.client import RequestRecord, discover_model, send
from loadtest.config import RunConfig
from loadtest.workload import jobs


@dataclass(frozen=True, slots=True)
class RunResult:
    config: RunConfig
    model: str
    records: tuple[RequestRecord, ...]
    wall_s: float  # from the first send to the last response


class _Budget:
    """Hands out jobs until the request count or the deadline is reached."""

    def __init__(self, config: RunConfig, start: float):
        self.jobs = jobs(config)
        self.left = config.max_requests
        self.deadline = None if config.duration_s is None else start + config.duration_s

    def next(self):
        if self.left is not None and self.left <= 0:
            return None
        if self.deadline is not None and time.perf_counter() >= self.deadline:
            return None
        if self.left is not None:
            self.left -= 1
        return next(self.jobs)


async def _closed_loop(http, config: RunConfig, model: str, start: float) -> list[RequestRecord]:
    budget, records = _Budget(config, start), []

    async def worker():
        while (job := budget.next()) is not None:
            records.append(await send(http, config, model, job, start))

    await asyncio.gather(*(worker() for _ in range(config.concurrency)))
    return records


async def _open_loop(http, config: RunConfig, model: str, start: float) -> list[RequestRecord]:
    """Poisson arrivals at config.rate; at most config.concurrency requests in flight (later ones wait)."""
    budget, records, tasks = _Budget(config, start), [], []
    arrivals = random.Random(config.seed + 1)
    gate = asyncio.Semaphore(config.concurrency)
    next_at = time.perf_counter()

    async def one(job):
        async with gate:
            records.append(await send(http, config, model, job, start))

    while True:
        next_at += arrivals.expovariate(config.rate)
        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
        job = budget.next()
        if job is None:
            break
        tasks.append(asyncio.create_task(one(job)))
    await asyncio.gather(*tasks)
    return records


async def run_async(config: RunConfig) -> RunResult:
    config.check()
    model = config.model or discover_model(config)
    limits = httpx.Limits(max_connections=config.concurrency + 8, max_keepalive_connections=config.concurrency + 8)
    timeout = httpx.Timeout(config.timeout_s, connect=30.0)
    async with httpx.AsyncClient(limits=limits, timeout=timeout) as http:
        start = time.perf_counter()
        loop = _closed_loop if config.mode == "concurrency" else _open_loop
        records = await loop(http, config, model, start)
        wall = time.perf_counter() - start
    return RunResult(config, model, tuple(records), wall)


def run(config: RunConfig) -> RunResult:
    return asyncio.run(run_async(config))
