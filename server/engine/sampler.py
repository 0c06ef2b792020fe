"""Batched token sampling: logits processors, greedy, temperature, top-k, top-p, min-p, seeds, logprobs.

Input: fp32 logits (B, V) for the sequences that sample this step, with their SamplingParams. Processors
first, in this order: repetition penalty (prompt + generated tokens), presence/frequency penalties,
logit_bias, then eos/stop tokens masked before min_tokens; they change greedy picks too. All rows
go through one set of tensor ops; only seeded rows draw their noise with their own generator, seeded by
(seed, number of tokens generated so far), so a seeded request samples the same tokens whatever batch it
shares and even after a preemption. Sampling is the exponential race argmax(p / E), E ~ Exp(1), which
draws exactly from p. Logprobs are the model's raw log-softmax (before any processor and temperature).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from presso.server.engine.outputs import ScheduledSeq
from presso.server.engine.types import TokenLogprob

_SEED_MIX = 0x9E3779B97F4A7C15


def step_seed(seed: int, step: int) -> int:
    return (seed * 6364136223846793005 + (step + 1) * _SEED_MIX) % (2**63 - 1)


def apply_penalties(logits: torch.Tensor, seqs: Sequence[ScheduledSeq]) -> torch.Tensor:
    rows = [i for i, s in enumerate(seqs) if s.output_token_ids]
    if not rows:
        return logits
    logits = logits.clone()
    counts = torch.zeros(len(rows), logits.shape[1])  # (R, V)
    for j, i in enumerate(rows):
        ids = torch.tensor(seqs[i].output_token_ids)
        counts[j].index_add_(0, ids, torch.ones(len(ids)))
    presence = torch.tensor([seqs[i].params.presence_penalty for i in rows])[:, None]
    frequency = torch.tensor([seqs[i].params.frequency_penalty for i in rows])[:, None]
    logits[rows] -= presence * (counts > 0) + frequency * counts
    return logits


def apply_repetition_penalty(logits: torch.Tensor, seqs: Sequence[ScheduledSeq]) -> torch.Tensor:
    """HF/CTRL repetition penalty over each row's prompt + generated tokens: a positive logit / p, else * p."""
    rows = [i for i, s in enumerate(seqs) if s.params.repetition_penalty != 1.0 and s.context_token_ids]
    if not rows:
        return logits
    logits = logits.clone()
    for i in rows:
        ids = torch.tensor(sorted(set(seqs[i].context_token_ids)))
        p = seqs[i].params.repetition_penalty
        picked = logits[i, ids]
        logits[i, ids] = torch.where(picked > 0, picked / p, picked * p)
    return logits


def apply_bias_and_bans(logits: torch.Tensor, seqs: Sequence[ScheduledSeq]) -> torch.Tensor:
    """logit_bias added; banned tokens (eos/stop before min_tokens) set to -inf."""
    if not any(s.params.logit_bias or s.banned_token_ids for s in seqs):
        return logits
    logits = logits.clone()
    for i, s in enumerate(seqs):
        if s.params.logit_bias:
            ids, bias = zip(*s.params.logit_bias, strict=True)
            logits[i, torch.tensor(ids)] += torch.tensor(bias)
        if s.banned_token_ids:
            logits[i, torch.tensor(s.banned_token_ids)] = float("-inf")
    return logits


def process_logits(logits: torch.Tensor, seqs: Sequence[ScheduledSeq]) -> torch.Tensor:
    """Every logits processor a request asked for (they also change greedy picks)."""
    return apply_bias_and_bans(apply_penalties(apply_repetition_penalty(logits, seqs), seqs), seqs)


def _filter_top_k_top_p(logits: torch.Tensor, top_k: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """Mask (to -inf) everything outside each row's top-k and nucleus top-p. top_k 0 = off."""
    sorted_logits, order = logits.sort(dim=-1, descending=True)  # (B, V)
    vocab = logits.shape[1]
    rank = torch.arange(vocab)[None, :]
    k = torch.where(top_k > 0, top_k, vocab)[:, None]
    drop = rank >= k
    probs = sorted_logits.masked_fill(drop, float("-inf")).softmax(-1)
    before = probs.cumsum(-1) - probs  # mass of strictly better tokens
    drop |= (before >= top_p[:, None]) & (rank > 0) & (top_p[:, None] < 1.0)  # smallest set with mass >= top_p
    mask = torch.zeros_like(drop).scatter_(1, order, drop)
    return logits.masked_fill(mask, float("-inf"))


def sample(logits: torch.Tensor, seqs: Sequence[ScheduledSeq], generator: torch.Generator) -> list[int]:
    """logits (B, V) fp32 -> one token id per row."""
    params = [s.params for s in seqs]
    logits = process_logits(logits, seqs)
    greedy = torch.tensor([p.greedy for p in params])
    token = logits.argmax(-1)
    if bool(greedy.all()):
        return token.tolist()
    temp = torch.tensor([p.temperature if not p.greedy else 1.0 for p in params])[:, None]
    scaled = logits / temp
    if any(p.top_k > 0 or p.top_p < 1.0 for p in params):
        scaled = _filter_top_k_top_p(scaled, torch.tensor([p.top_k for p in params]),
                                     torch.tensor([p.top_p for p in params]))
    probs = scaled.softmax(-1)  # (B, V)
    if any(p.min_p > 0.0 for p in params):
        min_p = torch.tensor([p.min_p for p in params])[:, None]
        probs = probs.masked_fill(probs < min_p * probs.amax(-1, keepdim=True), 0.0)
    noise = torch.empty_like(probs).exponential_(generator=generator)
    for i, s in enumerate(seqs):
        if s.params.seed is not None and not s.params.greedy:
            g = torch.Generator().manual_seed(step_seed(s.params.seed, s.num_generated))
            noise[i].exponential_(generator=g)
    sampled = (probs / noise).argmax(-1)
    return torch.where(greedy, token, sampled).tolist()


def token_logprobs(logits: torch.Tensor, chosen: Sequence[int], ks: Sequence[int | None]) -> list[TokenLogprob | None]:
    """Raw logprob of each row's chosen token plus its top-k alternatives (None where k is None)."""
    if all(k is None for k in ks):
        return [None] * len(ks)
    lp = logits.log_softmax(-1)  # (B, V)
    chosen_lp = lp.gather(1, torch.tensor(chosen)[:, None])[:, 0].tolist()
    kmax = max(k or 0 for k in ks)
    top_v, top_i = lp.topk(kmax, dim=-1) if kmax else (lp[:, :0], lp[:, :0].long())
    top_v, top_i = top_v.tolist(), top_i.tolist()
    out: list[TokenLogprob | None] = []
    for r, k in enumerate(ks):
        if k is None:
            out.append(None)
            continue
        top = tuple(zip(top_i[r][:k], top_v[r][:k], strict=True))
        out.append(TokenLogprob(chosen[r], chosen_lp[r], top))
    return out
