"""Incremental detokenization with stop strings that may span token boundaries.

Generated token ids arrive in deltas; the text is re-decoded from all ids (cheap at these lengths and
exact for byte-level BPE), new text is released only when it can no longer be part of a stop string,
and an incomplete UTF-8 sequence (decoded as U+FFFD) is held back until its bytes arrive.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str
    stopped: bool  # a stop string matched: the request must end with finish_reason "stop"


class IncrementalDetokenizer:
    def __init__(self, tokenizer, stops: list[str]):
        self._tokenizer = tokenizer
        self._stops = stops
        self._hold = max((len(s) for s in stops), default=1) - 1
        self._ids: list[int] = []
        self._emitted = 0
        self.text = ""

    def push(self, token_ids: list[int] | tuple[int, ...], final: bool = False) -> TextDelta:
        self._ids.extend(token_ids)
        text = self._tokenizer.decode(self._ids, skip_special_tokens=True)
        if self._stops:
            start = max(0, self._emitted - self._hold)
            hits = [i for s in self._stops if (i := text.find(s, start)) >= 0]
            if hits:
                self.text = text[: min(hits)]
                return self._release(len(self.text), stopped=True)
        self.text = text
        if final:
            return self._release(len(text), stopped=False)
        safe = len(text) - self._hold
        while safe > self._emitted and text[safe - 1] == "\ufffd":
            safe -= 1  # an incomplete multi-byte character: wait for its remaining bytes
        return self._release(max(safe, self._emitted), stopped=False)

    def _release(self, upto: int, stopped: bool) -> TextDelta:
        piece = self.text[self._emitted : upto]
        self._emitted = max(self._emitted, upto)
        return TextDelta(piece, stopped)
