"""Structured outputs: a grammar per request (llguidance), token masks for the rows that sample.

SamplingParams.guide = (kind, spec): `json_schema` (a JSON schema as text), `json_object` (any JSON
object), `regex`, or `grammar` (Lark). The grammar is compiled and validated when the request is
checked (a bad one is the caller's ValueError), cached by (kind, spec); each request gets its own
matcher on its first sampled token. Per step: mask(logits, seqs) -> logits with every token the grammar
forbids at -inf (a (B, ceil(V/32)) int32 bitmask filled by llguidance, unpacked once) -> the sampler ->
advance(seqs, tokens) feeds the chosen tokens to the matchers. When the grammar is complete only EOS
remains allowed, so the request stops as it would on its own. release(ids) drops finished requests.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence

import torch

from presso.server.engine.outputs import ScheduledSeq
from presso.server.engine.types import GUIDE_KINDS

_ANY_OBJECT = {"type": "object"}
# compact JSON (", " and ": " separators, no free whitespace): a small model cannot pad the output with
# whitespace until max_tokens, and the result is what json.dumps writes
_JSON_OPTIONS = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}
_SHIFTS = torch.arange(32, dtype=torch.int32)  # bit b of each int32 word is token 32*w + b


class GuidedDecoding:
    def __init__(self, tokenizer, vocab_size: int, eos_token_ids: Iterable[int], cache_size: int = 256):
        self.hf_tokenizer, self.vocab_size = tokenizer, vocab_size
        self.eos = sorted(eos_token_ids)
        self._ll_tokenizer = None  # built on first use (~0.5 s for a 49k vocabulary)
        self._grammars: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()  # the API thread compiles (check), the engine thread reads
        self._matchers: dict[str, object] = {}  # engine thread only
        self.seconds = 0.0  # time spent in mask() and advance(), for `presso bench guided`

    def _tokenizer(self):
        with self._lock:
            if self._ll_tokenizer is None:
                import llguidance.hf

                self._ll_tokenizer = llguidance.hf.from_tokenizer(self.hf_tokenizer, n_vocab=self.vocab_size,
                                                                  eos_token=self.eos or None)
            return self._ll_tokenizer

    def grammar(self, guide: tuple[str, str]) -> str:
        """The compiled, validated grammar of a guide (cached); ValueError naming what is wrong."""
        with self._lock:
            if guide in self._grammars:
                self._grammars.move_to_end(guide)
                return self._grammars[guide]
        from llguidance import LLMatcher

        kind, spec = guide
        if kind not in GUIDE_KINDS:
            raise ValueError(f"guide kind must be one of {GUIDE_KINDS}, got {kind!r}")
        try:
            if kind in ("json_schema", "json_object"):
                schema = json.loads(spec) if kind == "json_schema" else _ANY_OBJECT
                grammar = LLMatcher.grammar_from_json_schema(schema, defaults=_JSON_OPTIONS)
            elif kind == "regex":
                grammar = LLMatcher.grammar_from_regex(spec)
            else:
                grammar = LLMatcher.grammar_from_lark(spec)
        except ValueError as exc:
            raise ValueError(f"{kind}: {exc}") from None
        failed, messages = LLMatcher.validate_grammar_with_warnings(grammar, self._tokenizer())
        if failed:
            raise ValueError(f"{kind}: {messages[0] if messages else 'invalid'}")
        with self._lock:
            self._grammars[guide] = grammar
            if len(self._grammars) > self._cache_size:
                self._grammars.popitem(last=False)
        return grammar

    def prime(self, guide: tuple[str, str], grammar: str) -> None:
        """Cache a grammar another GuidedDecoding on the same tokenizer already compiled and validated (the
        API process of `--engine-process`), so the engine-core process does not compile it again."""
        with self._lock:
            self._grammars[guide] = grammar
            if len(self._grammars) > self._cache_size:
                self._grammars.popitem(last=False)

    def _matcher(self, seq: ScheduledSeq):
        matcher = self._matchers.get(seq.request_id)
        if matcher is None:
            from llguidance import LLMatcher

            matcher = LLMatcher(self._tokenizer(), self.grammar(seq.params.guide), log_level=0)
            self._matchers[seq.request_id] = matcher
        return matcher

    def mask(self, logits: torch.Tensor, seqs: Sequence[ScheduledSeq]) -> torch.Tensor:
        """logits (B, V) fp32 on the host -> a copy with forbidden tokens at -inf (unchanged if no row is guided)."""
        rows = [i for i, s in enumerate(seqs) if s.params.guide is not None]
        if not rows:
            return logits
        import llguidance.torch as llt

        start = time.perf_counter()
        words = (self.vocab_size + 31) // 32
        bitmask = torch.full((len(rows), words), -1, dtype=torch.int32)  # (R, W)
        for j, i in enumerate(rows):
            llt.fill_next_token_bitmask(self._matcher(seqs[i]), bitmask, j)
        allowed = ((bitmask.unsqueeze(-1) >> _SHIFTS) & 1).flatten(1)[:, :logits.shape[1]].bool()  # (R, V)
        out = logits.clone()
        out[rows] = out[rows].masked_fill(~allowed, float("-inf"))
        self.seconds += time.perf_counter() - start
        return out

    def advance(self, seqs: Sequence[ScheduledSeq], tokens: Sequence[int]) -> None:
        """Feed each guided row's sampled token to its matcher."""
        start = time.perf_counter()
        for s, token in zip(seqs, tokens, strict=True):
            if s.params.guide is not None:
                self._matcher(s).consume_token(token)
        self.seconds += time.perf_counter() - start

    def release(self, request_ids: Iterable[str]) -> None:
        for rid in request_ids:
            self._matchers.pop(rid, None)
