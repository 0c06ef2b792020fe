"""The calibration mix (`--calib mix`, the default): windows drawn from several corpora's calibration parts.

spec `mix` (every corpus with in_mix, equal shares) or `mix:austen=2,kjv,pycode` (chosen corpora, relative
weights, 1 when omitted) -> per-domain counts (largest remainder of samples x weight share) -> per domain,
that many windows at random character offsets of its calibration part (a generator seeded by the seed and
the domain's name): each offset's slice is tokenized alone, its first (partial) token dropped, and the next
`length` tokens kept -> windows interleaved round-robin across domains, so every batch of a sequential
calibration pass sees every domain. -> (N, L) int64. Same (spec, samples, length, seed, tokenizer) -> same
windows. Only the sampled slices are tokenized, not whole corpora.
"""

from __future__ import annotations

import hashlib

import torch

from presso.compression.checkpoint.errors import PressoInputError
from presso.compression.data import corpora
from presso.compression.data.mix import allocate, is_mix, parse_mix

SLICE_CHARS_PER_TOKEN = 12  # a slice of 12 x length characters holds >= length tokens in every corpus here


def _seed(seed: int, name: str) -> int:
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def domain_windows(tokenizer, name: str, count: int, length: int, seed: int) -> list[torch.Tensor]:
    """`count` windows (each (length,) int64) from corpus `name`'s calibration part."""
    text = corpora.part_text(name, "calib")
    span = SLICE_CHARS_PER_TOKEN * length
    if len(text) < 2 * span:
        raise PressoInputError(f"corpus {name}'s calibration part is too short for --calib-len {length}")
    gen = torch.Generator().manual_seed(_seed(seed, name))
    starts = torch.randint(0, len(text) - span, (count,), generator=gen).tolist()
    out = []
    for start in starts:
        ids = tokenizer(text[start : start + span], add_special_tokens=False, return_attention_mask=False)["input_ids"]
        if len(ids) < length + 1:
            raise PressoInputError(f"corpus {name}: a {span}-character slice has fewer than {length + 1} tokens")
        out.append(torch.tensor(ids[1 : length + 1], dtype=torch.long))  # (L,); token 0 may be a cut word
    return out


def mix_windows(tokenizer, spec: str, samples: int, length: int, seed: int = 0) -> torch.Tensor:
    """-> (samples, length) int64 windows of the mix, interleaved across domains."""
    counts = allocate(samples, parse_mix(spec))
    per_domain = [domain_windows(tokenizer, name, n, length, seed) for name, n in counts.items() if n]
    order = [d[i] for i in range(max(len(d) for d in per_domain)) for d in per_domain if i < len(d)]
    return torch.stack(order)  # (N, L)


def describe(spec: str, samples: int, length: int) -> dict:
    """What a mix draws, for presso.json / report.json: {corpus: windows}."""
    return {"corpora": allocate(samples, parse_mix(spec)), "length": length}

__all__ = ["describe", "domain_windows", "is_mix", "mix_windows", "parse_mix"]
