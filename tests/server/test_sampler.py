"""Sampler: greedy, top-k / top-p filtering, penalties, per-request seeds, logprobs."""

from __future__ import annotations

import pytest
import torch

from presso.server.engine import sampler
from presso.server.engine.outputs import ScheduledSeq
from presso.server.engine.types import SamplingParams


def seq(params: SamplingParams, outputs=(), generated=0) -> ScheduledSeq:
    return ScheduledSeq("r", (1,), 0, (0,), True, params, tuple(outputs), generated, None)


def test_greedy_and_top_k_1():
    logits = torch.tensor([[0.0, 3.0, 1.0], [5.0, 0.0, 1.0]])
    g = torch.Generator().manual_seed(0)
    got = sampler.sample(logits, [seq(SamplingParams(temperature=0)), seq(SamplingParams(top_k=1))], g)
    assert got == [1, 0]


def test_top_k_and_top_p_restrict_support():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]])).repeat(400, 1)
    g = torch.Generator().manual_seed(0)
    top2 = sampler.sample(logits, [seq(SamplingParams(top_k=2))] * 400, g)
    assert set(top2) == {0, 1}
    nucleus = sampler.sample(logits, [seq(SamplingParams(top_p=0.7))] * 400, g)
    assert set(nucleus) == {0, 1}  # 0.5 < 0.7, 0.5 + 0.3 >= 0.7: two tokens kept
    free = sampler.sample(logits, [seq(SamplingParams())] * 400, g)
    assert set(free) == {0, 1, 2, 3}
    assert 0.4 < free.count(0) / 400 < 0.6


def test_penalties():
    logits = torch.tensor([[2.0, 1.9, 0.0]])
    g = torch.Generator()
    assert sampler.sample(logits, [seq(SamplingParams(temperature=0, presence_penalty=0.5), [0])], g) == [1]
    assert sampler.sample(logits, [seq(SamplingParams(temperature=0, frequency_penalty=-0.5), [1])], g) == [1]
    assert sampler.sample(logits, [seq(SamplingParams(temperature=0, frequency_penalty=0.05), [0])], g) == [0]


def test_seed_depends_on_seed_and_step_only():
    logits = torch.randn(1, 50)
    p = SamplingParams(seed=7)
    runs = [sampler.sample(logits, [seq(p, generated=3)], torch.Generator().manual_seed(i)) for i in range(3)]
    assert runs[0] == runs[1] == runs[2]
    steps = {sampler.sample(logits, [seq(p, generated=s)], torch.Generator())[0] for s in range(20)}
    assert len(steps) > 1


def test_logprobs():
    logits = torch.tensor([[1.0, 2.0, 3.0]])
    (lp,) = sampler.token_logprobs(logits, [1], [2])
    ref = torch.log_softmax(logits, -1)[0]
    assert lp.token_id == 1 and lp.logprob == pytest.approx(float(ref[1]))
    assert [t for t, _ in lp.top] == [2, 1]
    assert sampler.token_logprobs(logits, [1], [None]) == [None]


@pytest.mark.parametrize("bad", [dict(top_p=1.5), dict(top_k=-1), dict(max_tokens=-1), dict(logprobs=21),
                                 dict(presence_penalty=3.0), dict(temperature=float("nan"))])
def test_validate_names_field(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        SamplingParams(**bad).validate()


def _with(params: SamplingParams, **fields) -> ScheduledSeq:
    import dataclasses

    return dataclasses.replace(seq(params), **fields)


def test_repetition_penalty_divides_positive_and_multiplies_negative_logits_of_seen_tokens():
    logits = torch.tensor([[2.0, -1.0, 1.5, 0.5]])
    s = _with(SamplingParams(temperature=0, repetition_penalty=2.0), context_token_ids=(0, 1, 1))
    out = sampler.process_logits(logits, [s])
    assert out.tolist() == [[1.0, -2.0, 1.5, 0.5]]  # tokens 2, 3 unseen: untouched
    assert sampler.sample(logits, [s], torch.Generator()) == [2]


def test_logit_bias_and_banned_tokens():
    logits = torch.tensor([[2.0, 1.0, 0.0]])
    biased = seq(SamplingParams(temperature=0, logit_bias=((2, 5.0),)))
    banned = _with(SamplingParams(temperature=0), banned_token_ids=(0,))
    assert sampler.sample(logits.repeat(2, 1), [biased, banned], torch.Generator()) == [2, 1]
    raw = sampler.token_logprobs(logits, [2], [0])[0]
    assert raw.logprob == pytest.approx(float(logits.log_softmax(-1)[0, 2]))  # logprobs stay the model's


def test_min_p_keeps_tokens_within_the_ratio_of_the_top_one():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]])).repeat(400, 1)
    got = sampler.sample(logits, [seq(SamplingParams(min_p=0.5))] * 400, torch.Generator().manual_seed(0))
    assert set(got) == {0, 1}  # 0.3 >= 0.5 * 0.5, 0.15 < 0.25


def test_min_tokens_bans_eos_and_stop_tokens_until_reached():
    from presso.server.engine.request import Request

    req = Request("r", (1, 2), SamplingParams(max_tokens=9, min_tokens=2, stop_token_ids=(7,)), frozenset({5}))
    assert req.banned_token_ids() == (5, 7)
    req.token_ids += [3, 4]
    assert req.banned_token_ids() == () and req.stop_reason(5, 100) == "stop"
    quiet = Request("q", (1,), SamplingParams(min_tokens=1, ignore_eos=True), frozenset({5}))
    assert quiet.banned_token_ids() == ()
    with pytest.raises(ValueError, match="min_tokens"):
        SamplingParams(max_tokens=2, min_tokens=3).validate()
