"""Scheduler: exact schedules for chunked prefill, decode batching, preemption, abort, limits (no torch)."""

from __future__ import annotations

import pytest

from presso.server.engine.outputs import RunnerOutput, SampledToken
from presso.server.engine.request import Request
from presso.server.engine.scheduler import Scheduler
from presso.server.engine.types import SamplingParams
from presso.server.kv.block_manager import BlockManager

EOS = 99


def make(num_blocks=8, block_size=4, seqs=4, budget=8, max_len=64, caching=True):
    return Scheduler(BlockManager(num_blocks, block_size, caching), seqs, budget, max_len)


def req(rid, n, max_tokens=4, start=0, **kw):
    return Request(rid, tuple(range(start, start + n)), SamplingParams(max_tokens=max_tokens, temperature=0, **kw),
                   frozenset({EOS}))


def run(s: Scheduler, token=7):
    out = s.schedule()
    result = RunnerOutput(tuple(SampledToken(q.request_id, token, None) for q in out.seqs if q.sample))
    return out, s.update(out, result)


def plan(out):
    return [(q.request_id, q.start_pos, q.num_tokens, q.block_ids, q.sample) for q in out.seqs]


def test_chunked_prefill_mixed_with_decode():
    s = make(budget=8)
    s.add(req("a", 10))
    s.add(req("b", 3, start=50))
    out, deltas = run(s)
    assert plan(out) == [("a", 0, 8, (0, 1), False)]  # a's prompt is chunked; b waits for budget
    assert deltas == []
    out, deltas = run(s)
    assert plan(out) == [("a", 8, 2, (0, 1, 2), True), ("b", 0, 3, (3,), True)]
    assert [(d.request_id, d.new_token_ids) for d in deltas] == [("a", (7,)), ("b", (7,))]
    out, _ = run(s)
    assert plan(out) == [("a", 10, 1, (0, 1, 2), True), ("b", 3, 1, (3,), True)]


def test_preemption_by_recompute_newest_first():
    s = make(num_blocks=4, block_size=2, budget=16)
    s.add(req("a", 3, max_tokens=5))
    s.add(req("b", 3, max_tokens=5, start=20))
    out, _ = run(s)
    assert plan(out) == [("a", 0, 3, (0, 1), True), ("b", 0, 3, (2, 3), True)]
    out, _ = run(s)  # both now have 4 tokens: they fit in their 2 blocks
    assert plan(out) == [("a", 3, 1, (0, 1), True), ("b", 3, 1, (2, 3), True)]
    out, _ = run(s)  # a needs a 3rd block: b (newest) is preempted and its blocks go to a
    assert out.preempted_ids == ("b",)
    assert plan(out) == [("a", 4, 1, (0, 1, 3), True)]
    assert s.num_preemptions == 1 and [r.request_id for r in s.waiting] == ["b"]
    b = s.requests["b"]
    assert b.num_computed_tokens == 0 and b.token_ids == [20, 21, 22, 7, 7] and b.block_ids == []


def test_stop_token_length_and_abort_free_blocks():
    s = make()
    s.add(req("a", 3, max_tokens=2))
    s.add(req("b", 3, max_tokens=5, start=10))
    _, deltas = run(s)
    _, deltas = run(s)
    assert [(d.request_id, d.finished, d.finish_reason) for d in deltas] == [("a", True, "length"), ("b", False, None)]
    assert s.abort("b").finish_reason == "abort"
    assert s.bm.num_free_blocks == 8 and not s.has_work
    assert s.abort("b") is None and s.abort("nope") is None
    s.add(req("c", 3, max_tokens=5, start=30))
    _, deltas = run(s, token=EOS)
    assert deltas[0].finish_reason == "stop" and deltas[0].new_token_ids == (EOS,)
    s.add(req("d", 3, max_tokens=5, start=40, ignore_eos=True))
    _, deltas = run(s, token=EOS)
    assert not deltas[0].finished


def test_prefix_cache_reuse_and_counts():
    s = make(num_blocks=8, block_size=4, budget=32)
    s.add(req("a", 9, max_tokens=1))
    run(s)
    s.add(req("b", 10, max_tokens=1))  # same first 9 tokens
    out, deltas = run(s)
    assert plan(out) == [("b", 8, 2, (0, 1, 3), True)]  # blocks 0, 1 reused, 8 tokens skipped
    assert deltas[0].num_cached_prompt_tokens == 8
    assert (s.bm.prefix_queries, s.bm.prefix_hits) == (19, 8)


def test_limits():
    s = make(num_blocks=4, block_size=4, max_len=20)
    with pytest.raises(ValueError, match="at least one token"):
        s.add(req("e", 0))
    with pytest.raises(ValueError, match="maximum context length"):
        s.add(req("l", 21))
    with pytest.raises(ValueError, match="KV cache"):
        s.add(req("k", 15, max_tokens=4))
    s.add(req("ok", 10, max_tokens=2))
    with pytest.raises(ValueError, match="duplicate"):
        s.add(req("ok", 10))


def test_max_model_len_stops_generation():
    s = make(num_blocks=8, block_size=4, max_len=6, budget=16)
    s.add(req("a", 4, max_tokens=100))
    _, d1 = run(s)
    _, d2 = run(s)
    assert d1[0].finished is False and d2[0].finish_reason == "length" and d2[0].num_generated_tokens == 2


def test_max_num_seqs_and_prompt_logprob_targets():
    s = make(seqs=1, budget=32)
    s.add(req("a", 5, max_tokens=1, prompt_logprobs=1))
    s.add(req("b", 5, max_tokens=1))
    out = s.schedule()
    assert [q.request_id for q in out.seqs] == ["a"]
    assert out.seqs[0].prompt_logprobs_from == 1 and out.seqs[0].prompt_logprob_targets == (1, 2, 3, 4)


def test_sliding_window_frees_blocks_behind_every_layers_window():
    """Window 5, blocks of 4: before computing from position t, blocks wholly before t - 5 + 1 are freed and
    read as block 0 in the table; the request never holds more than the window and one chunk's blocks."""
    s = Scheduler(BlockManager(6, 4, False), 2, 8, 64, sliding_window=5)
    s.check(tuple(range(20)), SamplingParams(max_tokens=40))  # 60 tokens would be 15 blocks; the window needs 5
    s.add(req("a", 20, max_tokens=6))
    out, _ = run(s)
    assert plan(out) == [("a", 0, 8, (0, 1), False)]
    out, _ = run(s)  # from 8: positions >= 4 visible, block 0 freed
    assert plan(out) == [("a", 8, 8, (0, 1, 2, 3), False)]
    assert s.requests["a"].block_ids == [-1, 1, 2, 3]
    out, _ = run(s)  # from 16: positions >= 12 visible, blocks 1 and 2 freed
    assert plan(out) == [("a", 16, 4, (0, 0, 0, 3, 4), True)]
    assert s.bm.num_free_blocks == 6 - 2
    for _ in range(5):
        run(s)
    assert not s.has_work and s.bm.num_free_blocks == 6 and s.bm.max_blocks_used == 3


def test_no_window_keeps_every_block():
    s = make(num_blocks=8, block_size=4, budget=8)
    with pytest.raises(ValueError, match="KV cache"):
        s.check(tuple(range(20)), SamplingParams(max_tokens=40))
