"""ProcessEngine (`--engine-process`): the EngineCore in its own process behaves like the in-process
AsyncEngine: same greedy tokens, logprobs, abort frees blocks, bad input raises before queueing, a dead
core process ends the live streams with an abort (and refuses new requests), close() leaves no process."""

from __future__ import annotations

import asyncio

import pytest

from presso.server.engine import AsyncEngine, EngineConfig, SamplingParams
from presso.server.engine.process_engine import EngineProcessError, ProcessEngine

pytestmark = pytest.mark.slow  # starts a process

CONFIG = dict(dtype="float32", kv_cache_memory="4MiB", block_size=4, max_num_batched_tokens=64)


@pytest.fixture(scope="module")
def engine(tiny_llama_dir):
    eng = ProcessEngine(EngineConfig(model=tiny_llama_dir, engine_process=True, **CONFIG))
    yield eng
    eng.close()
    assert eng.proc.poll() is not None


async def collect(stream):
    return [d async for d in stream]


async def generate(eng, jobs):
    await eng.start()
    try:
        streams = [eng.add_request(rid, prompt, params) for rid, prompt, params in jobs]
        return await asyncio.gather(*(collect(s) for s in streams))
    finally:
        await eng.shutdown()


def jobs(tag: str):
    return [(f"{tag}{i}", list(range(3, 10 + 7 * i)),
             SamplingParams(max_tokens=5 + i, temperature=0, ignore_eos=True, logprobs=2 if i == 1 else None,
                            prompt_logprobs=1 if i == 2 else None)) for i in range(5)]


def test_same_deltas_as_the_in_process_engine(engine, tiny_llama_dir):
    threaded = AsyncEngine.from_config(EngineConfig(model=tiny_llama_dir, **CONFIG))
    want = asyncio.run(generate(threaded, jobs("t")))
    got = asyncio.run(generate(engine, jobs("p")))
    for w, g in zip(want, got, strict=True):
        assert [d.new_token_ids for d in g] == [d.new_token_ids for d in w]
        assert g[-1].finish_reason == "length" and g[-1].num_generated_tokens == w[-1].num_generated_tokens
        assert g[0].num_prompt_tokens == w[0].num_prompt_tokens and g[0].queue_time_s >= 0
    lps = [lp for d in got[1] for lp in d.logprobs]
    want_lps = [lp for d in want[1] for lp in d.logprobs]
    assert [lp.token_id for lp in lps] == [lp.token_id for lp in want_lps] and len(lps[0].top) == 2
    assert all(abs(a.logprob - b.logprob) < 1e-5 for a, b in zip(lps, want_lps, strict=True))
    assert len(got[2][0].prompt_logprobs) == got[2][0].num_prompt_tokens
    stats = engine.stats()
    assert stats.num_running == stats.num_waiting == 0
    assert stats.num_blocks_free == stats.num_blocks_total and stats.kv_cache_dtype == "fp32"


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
            # a consumer that leaves early aborts its request too
            other = engine.add_request("b", list(range(3, 40)), SamplingParams(max_tokens=400, ignore_eos=True))
            await other.__anext__()
            await other.aclose()
            return rest
        finally:
            await engine.shutdown()

    rest = asyncio.run(main())
    assert rest[-1].finished and rest[-1].finish_reason == "abort"
    assert engine.stats().num_blocks_free == engine.stats().num_blocks_total


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
            with pytest.raises(ValueError, match=r"ints in \[0, "):
                engine.add_request("v", [5, 10**6], SamplingParams())
            with pytest.raises(ValueError, match="regex"):
                engine.add_request("g", [5, 6], SamplingParams(guide=("regex", "(")))
            assert engine.stats().num_waiting == 0
        finally:
            await engine.shutdown()

    asyncio.run(main())


def test_guided_request_uses_the_api_compiled_grammar(engine):
    params = SamplingParams(max_tokens=8, temperature=0, guide=("regex", "[ab]{3}"))
    deltas = asyncio.run(generate(engine, [("g", [5, 6, 7], params)]))[0]
    text = engine.tokenizer.decode([t for d in deltas for t in d.new_token_ids], skip_special_tokens=True)
    assert len(text) == 3 and set(text) <= {"a", "b"}


def test_bad_config_is_a_value_error(tiny_llama_dir):
    with pytest.raises(ValueError, match="kv_cache_dtype 'nope'"):  # raised in the core process, re-raised here
        ProcessEngine(EngineConfig(model=tiny_llama_dir, engine_process=True, kv_cache_dtype="nope", **CONFIG))


def test_dead_core_ends_streams_and_refuses_new_requests(tiny_llama_dir):
    eng = ProcessEngine(EngineConfig(model=tiny_llama_dir, engine_process=True, **CONFIG))

    async def main():
        await eng.start()
        stream = eng.add_request("x", list(range(3, 20)), SamplingParams(max_tokens=400, ignore_eos=True))
        await stream.__anext__()
        eng.proc.kill()
        rest = await collect(stream)
        with pytest.raises(EngineProcessError):
            eng.add_request("y", [3, 4], SamplingParams())
        await eng.shutdown()
        return rest

    try:
        rest = asyncio.run(main())
    finally:
        eng.close()
    assert rest[-1].finished and rest[-1].finish_reason == "abort"
