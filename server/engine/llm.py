"""Offline batch API: `LLM(model_dir).generate(prompts, SamplingParams(...))`, driving EngineCore to completion."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from presso.server.engine.config import EngineConfig
from presso.server.engine.core import EngineCore
from presso.server.engine.types import SamplingParams, TokenLogprob


@dataclass(frozen=True, slots=True)
class Completion:
    prompt_token_ids: tuple[int, ...]
    token_ids: tuple[int, ...]
    text: str
    finish_reason: str | None
    logprobs: tuple[TokenLogprob, ...] | None
    prompt_logprobs: tuple[TokenLogprob | None, ...] | None
    num_cached_prompt_tokens: int


class LLM:
    def __init__(self, model, **engine_kwargs):
        self.engine = EngineCore(EngineConfig(model=model, **engine_kwargs))
        self.tokenizer = self.engine.tokenizer

    def generate(self, prompts: Sequence[str] | Sequence[Sequence[int]],
                 params: SamplingParams | Sequence[SamplingParams] | None = None) -> list[Completion]:
        """Completions in prompt order; prompts are strings or token id lists."""
        params = params or SamplingParams()
        plist = list(params) if isinstance(params, Sequence) else [params] * len(prompts)
        if len(plist) != len(prompts):
            raise ValueError(f"got {len(plist)} SamplingParams for {len(prompts)} prompts")
        ids = [list(self.tokenizer(p)["input_ids"]) if isinstance(p, str) else list(p) for p in prompts]
        for i, (prompt, p) in enumerate(zip(ids, plist, strict=True)):
            self.engine.add_request(f"offline-{id(self)}-{i}", prompt, p)
        tokens: dict[int, list[int]] = {i: [] for i in range(len(ids))}
        lps: dict[int, list[TokenLogprob]] = {i: [] for i in range(len(ids))}
        final: dict[int, tuple] = {}
        while self.engine.has_work():
            for d in self.engine.step():
                i = int(d.request_id.rsplit("-", 1)[1])
                tokens[i].extend(d.new_token_ids)
                if d.logprobs:
                    lps[i].extend(d.logprobs)
                if d.prompt_logprobs is not None:
                    final.setdefault(("plp", i), d.prompt_logprobs)
                if d.finished:
                    final[i] = (d.finish_reason, d.num_cached_prompt_tokens)
        out = []
        for i, prompt in enumerate(ids):
            reason, cached = final.get(i, (None, 0))
            out.append(Completion(
                prompt_token_ids=tuple(prompt), token_ids=tuple(tokens[i]),
                text=self.tokenizer.decode(tokens[i], skip_special_tokens=True), finish_reason=reason,
                logprobs=tuple(lps[i]) if plist[i].logprobs is not None else None,
                prompt_logprobs=final.get(("plp", i)), num_cached_prompt_tokens=cached,
            ))
        return out
