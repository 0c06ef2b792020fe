"""The `mix` text spec: which corpora a calibration mix draws from, with what weights.

`mix` = every corpus marked in_mix (corpora.py), equal weights; `mix:austen=2,kjv,pycode` = chosen corpora,
relative weights (1 when omitted). calibration/mix.py turns it into windows; text consumers that need one
string (KD training text, AQLM's sampler) get `mix_text`: an equal-character blend of the calibration parts.
"""

from __future__ import annotations

from presso.compression.checkpoint.errors import PressoInputError
from presso.compression.data import corpora

MIX = "mix"
MIX_TEXT_CHARS = 1_000_000  # characters of the blend (split by weight): ~250k tokens, tokenized in seconds


def is_mix(spec: str | None) -> bool:
    return spec is not None and (spec == MIX or spec.startswith(MIX + ":"))


def parse_mix(spec: str) -> list[tuple[str, float]]:
    """`mix[:name[=weight],...]` -> [(corpus, weight)] in the spec's (or the registry's) order."""
    _, _, arg = spec.partition(":")
    if not arg.strip():
        return [(name, 1.0) for name in corpora.mix_corpora()]
    out: dict[str, float] = {}
    for item in arg.split(","):
        name, _, weight = item.strip().partition("=")
        corpora.get_corpus(name)
        try:
            value = float(weight) if weight else 1.0
        except ValueError:
            raise PressoInputError(f"--calib {spec!r}: weight of {name!r} is not a number: {weight!r}") from None
        if value <= 0 or name in out:
            raise PressoInputError(f"--calib {spec!r}: each corpus once, with a positive weight")
        out[name] = value
    return list(out.items())


def allocate(samples: int, weights: list[tuple[str, float]]) -> dict[str, int]:
    """Split `samples` windows by weight: floor of each share, the remainder to the largest fractions."""
    total = sum(w for _, w in weights)
    exact = [(name, samples * w / total) for name, w in weights]
    counts = {name: int(x) for name, x in exact}
    by_fraction = sorted(range(len(exact)), key=lambda i: (-(exact[i][1] - int(exact[i][1])), i))
    for i in by_fraction[: samples - sum(counts.values())]:
        counts[exact[i][0]] += 1
    return counts


def mix_text(spec: str) -> str:
    """The calibration parts, each cut to its weight's share of MIX_TEXT_CHARS (the first documents)."""
    weights = parse_mix(spec)
    total = sum(w for _, w in weights)
    return corpora.SEPARATOR.join(corpora.part_text(name, "calib")[: int(MIX_TEXT_CHARS * w / total)]
                                  for name, w in weights)
