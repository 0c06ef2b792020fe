"""The evaluation suite (`presso eval --suite`, `--eval suite`): every corpus's evaluation part, one protocol.

For each corpus in the registry (data/corpora.py): its evaluation part -> SUITE_WINDOWS windows of
SUITE_CTX tokens spread evenly over it (perplexity.spread_windows: only those slices are tokenized) -> summed
next-token NLL per window -> that domain's perplexity. Exactly `presso eval --text NAME:eval --windows W
--ctx C` per domain. Headline numbers: the mean of the per-domain Δ % against a reference (the dense model),
and the geometric mean of the per-domain perplexities (whose ratio is the geometric mean of the ratios).
Cost: corpora x W forward passes of C tokens (5 x 8 x 1024 tokens by default: about a minute for
SmolLM2-135M on 2 CPU cores).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from presso.compression.data.corpora import CORPORA, part_text
from presso.compression.eval.perplexity import perplexity_from_nll, spread_windows

SUITE = "suite"
SUITE_WINDOWS = 8
SUITE_CTX = 1024


def is_suite(spec: str | None) -> bool:
    return spec == SUITE


@dataclass(frozen=True, slots=True)
class DomainScore:
    corpus: str
    perplexity: float
    tokens_scored: int
    in_mix: bool  # False: a domain the default calibration never sees


@dataclass(frozen=True, slots=True)
class SuiteScores:
    domains: tuple[DomainScore, ...]
    windows: int
    ctx: int

    def perplexities(self) -> dict[str, float]:
        return {d.corpus: d.perplexity for d in self.domains}

    def geo_mean(self) -> float:
        return math.exp(sum(math.log(d.perplexity) for d in self.domains) / len(self.domains))


def domain_windows(tokenizer, corpus: str, windows: int = SUITE_WINDOWS, ctx: int = SUITE_CTX) -> torch.Tensor:
    """-> (windows, ctx) int64 of one corpus's evaluation part."""
    return spread_windows(tokenizer, part_text(corpus, "eval"), ctx, windows)


def score_suite(nll_fn: Callable[[torch.Tensor], float], tokenizer, windows: int = SUITE_WINDOWS,
                ctx: int = SUITE_CTX, progress: bool = False) -> SuiteScores:
    """nll_fn: (1, ctx) int64 -> summed NLL (a loaded model's eval.run.model_nll, or a WindowScorer)."""
    out = []
    for name, corpus in CORPORA.items():
        result = perplexity_from_nll(nll_fn, domain_windows(tokenizer, name, windows, ctx), progress=progress)
        out.append(DomainScore(name, result.perplexity, result.tokens_scored, corpus.in_mix))
    return SuiteScores(tuple(out), windows, ctx)


def delta_pct(before: float, after: float) -> float:
    return 100.0 * (after / before - 1.0)


def suite_report(before: dict[str, float] | None, after: SuiteScores) -> dict:
    """The `perplexity` section of report.json for `--eval suite`: per-domain before/after/Δ and the means."""
    domains = {}
    for d in after.domains:
        b = None if before is None else before.get(d.corpus)
        domains[d.corpus] = {"before": b, "after": d.perplexity, "in_mix": d.in_mix,
                             "delta_pct": None if b is None else delta_pct(b, d.perplexity)}
    deltas = [v["delta_pct"] for v in domains.values() if v["delta_pct"] is not None]
    geo_before = None if before is None else math.exp(sum(math.log(before[d.corpus]) for d in after.domains)
                                                      / len(after.domains))
    return {
        "text": SUITE, "windows": after.windows, "ctx": after.ctx,
        "before": geo_before, "after": after.geo_mean(),  # geometric means over the domains
        "delta_pct": sum(deltas) / len(deltas) if deltas and len(deltas) == len(domains) else None,
        "domains": domains,
    }
