"""Incremental detokenization with stop strings that may span token boundaries.

Generated token ids arrive in deltas. Each push decodes only a short tail: the ids from `prefix` (a few
tokens already turned into text, kept as context so tokenizers that change a token's text by its left
neighbour decode it right) to the end, and appends what that tail adds beyond the decoded context, so
the work per token stays constant however long the generation. A tail ending in an incomplete UTF-8
sequence (decoded as U+FFFD) waits for its remaining bytes. New text is released only when it can no
longer be part of a stop string.
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
        self._prefix = 0  # ids[_prefix:_read] are text already, decoded again only as context
        self._read = 0  # ids[:_read] are in self._decoded
        self._decoded = ""  # text of ids[:_read]
        self._emitted = 0
        self.text = ""

    def _decode(self, ids: list[int]) -> str:
        return self._tokenizer.decode(ids, skip_special_tokens=True)

    def _advance(self, final: bool) -> None:
        """Append the text the not-yet-read ids add (unless they end inside a multi-byte character)."""
        context = self._decode(self._ids[self._prefix : self._read])
        tail = self._decode(self._ids[self._prefix :])
        if len(tail) > len(context) and (final or not tail.endswith("\ufffd")):
            self._decoded += tail[len(context) :]
            self._prefix, self._read = self._read, len(self._ids)

    def push(self, token_ids: list[int] | tuple[int, ...], final: bool = False) -> TextDelta:
        self._ids.extend(token_ids)
        self._advance(final)
        text = self._decoded
        if self._stops:
            start = max(0, self._emitted - self._hold)
            hits = [i for s in self._stops if (i := text.find(s, start)) >= 0]
            if hits:
                self.text = text[: min(hits)]
                return self._release(len(self.text), stopped=True)
        self.text = text
        if final:
            return self._release(len(text), stopped=False)
        return self._release(max(len(text) - self._hold, self._emitted), stopped=False)

    def _release(self, upto: int, stopped: bool) -> TextDelta:
        piece = self.text[self._emitted : upto]
        self._emitted = max(self._emitted, upto)
        return TextDelta(piece, stopped)
