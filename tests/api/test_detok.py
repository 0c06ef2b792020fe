"""Incremental detokenizer: same text as one full decode, for any split of the ids into deltas, with
stop strings across token boundaries and multi-byte characters split over tokens (real tokenizers)."""

from __future__ import annotations

import random

import pytest
from transformers import AutoTokenizer

from presso.server.api.detok import IncrementalDetokenizer

TEXT = ("It is a truth universally acknowledged — that a single man… naïve café 東京 🙂🙂 in possession "
        "of a good fortune, must be in want of a wife.\n\nHowever little known the feelings")


@pytest.fixture(scope="module", params=["tiny", "smollm2"])
def tokenizer(request, tiny_llama_dir):
    if request.param == "tiny":
        return AutoTokenizer.from_pretrained(tiny_llama_dir)
    from presso.compression.models.pull import pull

    return AutoTokenizer.from_pretrained(pull("smollm2-135m"))


def _stream(tok, ids, stops, seed):
    rng = random.Random(seed)
    detok, pieces, i = IncrementalDetokenizer(tok, stops), [], 0
    while i < len(ids):
        n = rng.choice([1, 1, 1, 2, 3])
        delta = detok.push(ids[i : i + n], final=i + n >= len(ids))
        pieces.append(delta.text)
        assert "\ufffd" not in delta.text, "an incomplete character was released"
        i += n
        if delta.stopped:
            return "".join(pieces), True
    return "".join(pieces), False


@pytest.mark.parametrize("seed", range(4))
def test_streamed_text_equals_full_decode(tokenizer, seed):
    ids = tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    text, stopped = _stream(tokenizer, ids, [], seed)
    assert not stopped
    assert text == tokenizer.decode(ids, skip_special_tokens=True)


@pytest.mark.parametrize("stop", ["single man", "\n\n", "🙂", "wife."])
def test_stop_string_cuts_exactly_before_it(tokenizer, stop):
    ids = tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    full = tokenizer.decode(ids, skip_special_tokens=True)
    for seed in range(3):
        text, stopped = _stream(tokenizer, ids, [stop, "never appears"], seed)
        assert stopped and text == full[: full.index(stop)]


def test_work_per_token_stays_constant(tokenizer):
    """Each push decodes a short tail, not the whole generation (no quadratic re-decode)."""
    ids = tokenizer(TEXT * 20, add_special_tokens=False)["input_ids"]
    decoded = []

    class Counting:
        def decode(self, chunk, **kw):
            decoded.append(len(chunk))
            return tokenizer.decode(chunk, **kw)

    detok = IncrementalDetokenizer(Counting(), [])
    for t in ids:
        detok.push([t])
    assert detok.text == tokenizer.decode(ids, skip_special_tokens=True)
    assert max(decoded) <= 16, f"a push decoded {max(decoded)} ids"
