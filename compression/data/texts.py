"""Text specs: how every calibration/eval input is named.

`path/to/file.txt` | `CORPUS:calib` / `CORPUS:eval` (a corpus's calibration or evaluation part, corpora.py)
| `austen:<novel>` | `wikitext2[:split]` (via `datasets`, only where a hub is reachable); corpora are
pulled on first use | `mix[:...]` (an equal blend of the mix's calibration parts, data/mix.py; calibration
windows of a mix are drawn per corpus instead, calibration/mix.py). `load_text(spec) -> str`.
"""

from __future__ import annotations

from pathlib import Path

from presso.compression.checkpoint.errors import PressoInputError
from presso.compression.data import austen, corpora
from presso.compression.data.mix import is_mix, mix_text


def load_text(spec: str) -> str:
    if not spec or not spec.strip():
        raise PressoInputError("empty text spec (use a file path, austen:<novel> or wikitext2)")
    if is_mix(spec):
        return mix_text(spec)
    scheme, _, arg = spec.partition(":")
    if scheme in corpora.CORPORA and arg in corpora.PARTS:
        return corpora.part_text(scheme, arg)
    if scheme == "austen" and arg:
        path = austen.novel_path(arg)
        if not path.is_file():
            austen.pull_austen()
        return path.read_text(encoding="utf-8")
    if scheme == "wikitext2":
        return _wikitext2(arg or "test")
    path = Path(spec).expanduser()
    if path.is_file():
        text = path.read_text(encoding="utf-8", errors="replace")
        if not text.strip():
            raise PressoInputError(f"text file is empty: {path}")
        return text
    raise PressoInputError(
        f"unknown text spec {spec!r}: not a file, CORPUS:calib|eval ({', '.join(corpora.CORPORA)}), "
        f"austen:<novel> ({', '.join(austen.NOVELS)}) or wikitext2[:split]"
    )


def _wikitext2(split: str) -> str:
    if split not in {"train", "validation", "test"}:
        raise PressoInputError(f"wikitext2 split must be train, validation or test, got {split!r}")
    try:
        from datasets import load_dataset

        rows = load_dataset("wikitext", "wikitext-2-raw-v1", split=split)
    except Exception as exc:  # no hub, no datasets package: one line for the user
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise PressoInputError(f"wikitext2 needs the `datasets` package and a reachable hub: {first}") from None
    # The GPTQ protocol joins the raw rows with blank lines.
    return "\n\n".join(rows["text"])
