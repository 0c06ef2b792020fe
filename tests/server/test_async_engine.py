"""AsyncEngine: concurrent streams, abort frees blocks, seeded sampling is reproducible across batches,
bad input raises before queueing, logprobs/prompt logprobs, and a failing step only fails its requests."""

from __future__ import annotations

import asyncio

import pytest

from presso.server.engine import AsyncEngine, EngineConfig, SamplingParams


@pytest.fixture(scope="module")
def engine(tiny_llama_dir):
    return AsyncEngine.from_config(EngineConfig(model=tiny_llama_dir, dtype="float32", kv_cache_memory="4MiB",
                                                block_size=4, max_num_batched_tokens=64))


async def collect(stream):
    return [d async for d in stream]


def run(coro):
    return asyncio.run(coro)


def test_concurrent_requests_and_stats(engine):
    async def main():
        await engine.start()
        try:
            streams = [engine.add_request(f"c{i}", list(range(3, 10 + 7 * i)),
                                          SamplingParams(max_tokens=5 + i, temperature=0, ignore_eos=True))
                       for i in range(6)]
            results = await asyncio.gather(*(collect(s) for s in streams))
        finally:
            await engine.shutdown()
        return results

    results = run(main())
    for i, deltas in enumerate(results):
        assert deltas[-1].finished and deltas[-1].finish_reason == "length"
        assert sum(len(d.new_token_ids) for d in deltas) == 5 + i == deltas[-1].num_generated_tokens
        assert deltas[0].num_prompt_tokens == 7 + 7 * i
        assert deltas[0].queue_time_s is not None and deltas[0].queue_time_s >= 0
        assert all(d.queue_time_s is None for d in deltas[1:])
    stats = engine.stats()
    assert stats.num_running == stats.num_waiting == 0
    assert stats.num_blocks_free == stats.num_blocks_total and stats.kv_cache_dtype == "fp32"
    assert stats.kv_bytes_per_token == 2 * 2 * 2 * 16 * 4  # K+V, 2 layers, 2 KV heads, head_dim 16, fp32


def test_abort_frees_blocks_and_ends_stream(engine):
    async def main():
        await engine.start()
        try:
            stream = engine.add_request("a", list(range(3, 40)), SamplingParams(max_tokens=400, ignore_eos=True))
            first = await stream.__anext__()
            assert not first.finished
            assert engine.stats().num_blocks_free < engine.stats().num_blocks_total
            engine.abort("a")
            rest = await collect(stream)
            engine.abort("a")  # finished: a no-op
            engine.abort("never-seen")
            return rest
        finally:
            await engine.shutdown()

    rest = run(main())
    assert rest[-1].finished and rest[-1].finish_reason == "abort"
    assert engine.stats().num_blocks_free == engine.stats().num_blocks_total


def test_seed_reproducible_regardless_of_batch(engine):
    params = SamplingParams(max_tokens=12, temperature=1.0, top_p=0.9, top_k=50, seed=1234, ignore_eos=True)
    prompt = list(range(5, 30))

    async def main(n_others):
        await engine.start()
        try:
            others = [engine.add_request(f"o{n_others}-{i}", list(range(3, 12 + i)),
                                         SamplingParams(max_tokens=12, temperature=1.0, ignore_eos=True))
                      for i in range(n_others)]
            mine = engine.add_request(f"s{n_others}", prompt, params)
            res = await asyncio.gather(collect(mine), *(collect(o) for o in others))
            return tuple(t for d in res[0] for t in d.new_token_ids)
        finally:
            await engine.shutdown()

    alone, crowded = run(main(0)), run(main(5))
    assert alone == crowded and len(alone) == 12
    unseeded = run(main(0))
    assert len(unseeded) == 12


def test_bad_input_raises_before_queueing(engine):
    async def main():
        await engine.start()
        try:
            with pytest.raises(ValueError, match="at least one token"):
                engine.add_request("e", [], SamplingParams())
            with pytest.raises(ValueError, match="maximum context length"):
                engine.add_request("l", [5] * (engine.max_model_len + 1), SamplingParams())
            with pytest.raises(ValueError, match="top_p"):
                engine.add_request("p", [5, 6], SamplingParams(top_p=0.0))
            with pytest.raises(ValueError, match="temperature"):
                engine.add_request("t", [5, 6], SamplingParams(temperature=-1))
            assert engine.stats().num_waiting == 0
        finally:
            await engine.shutdown()

    run(main())


def test_logprobs_and_prompt_logprobs(engine):
    async def main():
        await engine.start()
        try:
            params = SamplingParams(max_tokens=3, temperature=0, logprobs=2, prompt_logprobs=1, ignore_eos=True)
            return await collect(engine.add_request("lp", list(range(3, 20)), params))
        finally:
            await engine.shutdown()

    deltas = run(main())
    plp = deltas[0].prompt_logprobs
    assert plp[0] is None and len(plp) == 17 and all(p.token_id == 3 + i for i, p in enumerate(plp) if p)
    lps = [lp for d in deltas for lp in d.logprobs]
    assert len(lps) == 3
    for lp in lps:
        assert len(lp.top) == 2 and lp.top[0][1] >= lp.top[1][1]
        assert lp.token_id == lp.top[0][0] and abs(lp.logprob - lp.top[0][1]) < 1e-6  # greedy = top-1
    assert all(deltas[i].prompt_logprobs is None for i in range(1, len(deltas)))


def test_failing_step_fails_only_its_requests(engine, monkeypatch):
    runner = engine.core.runner
    real = runner.execute

    def flaky(out):
        if any(s.request_id == "bad" for s in out.seqs):
            raise RuntimeError("injected")
        return real(out)

    async def main():
        await engine.start()
        try:
            bad = engine.add_request("bad", [3, 4, 5], SamplingParams(max_tokens=4))
            bad_deltas = await collect(bad)
            good = await collect(engine.add_request("good", [3, 4, 5], SamplingParams(max_tokens=4, ignore_eos=True)))
            return bad_deltas, good
        finally:
            await engine.shutdown()

    monkeypatch.setattr(runner, "execute", flaky)
    bad, good = run(main())
    assert bad[-1].finish_reason == "abort"
    assert good[-1].finish_reason == "length" and good[-1].num_generated_tokens == 4
    assert engine.stats().num_blocks_free == engine.stats().num_blocks_total


def test_one_thread_builds_the_core_and_runs_every_step(tiny_llama_dir, monkeypatch):
    """torch work stays on one thread (async_engine's docstring: a second OpenMP team halves step speed)."""
    import threading

    from presso.server.engine import async_engine

    seen: dict[str, set[int]] = {"init": set(), "step": set()}

    class Recording(async_engine.EngineCore):
        def __init__(self, config):
            seen["init"].add(threading.get_ident())
            super().__init__(config)

        def step(self):
            seen["step"].add(threading.get_ident())
            return super().step()

    monkeypatch.setattr(async_engine, "EngineCore", Recording)
    eng = AsyncEngine.from_config(EngineConfig(model=tiny_llama_dir, dtype="float32", kv_cache_memory="4MiB",
                                               block_size=4))

    async def main():
        await eng.start()
        try:
            await collect(eng.add_request("t", [3, 4, 5], SamplingParams(max_tokens=4, temperature=0)))
        finally:
            await eng.shutdown()

    run(main())
    eng.close()
    assert len(seen["init"]) == 1 and seen["init"] == seen["step"]
    assert threading.get_ident() not in seen["init"]
