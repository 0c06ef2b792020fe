"""Teacher-forced scoring through the paged KV cache, for `presso eval --kv-cache CODEC`.

Each window goes through the real engine as a prompt with prompt logprobs: every chunk's K/V is
written into the (compressed) pages and every position attends to what the codec stored, exactly as
decoding would. window (1, L) int64 -> summed NLL of positions 1..L-1 (float).
"""

from __future__ import annotations

import torch

from presso.server.engine.llm import LLM
from presso.server.engine.types import SamplingParams


class EngineScorer:
    def __init__(self, model_dir, kv_cache: str, dtype: str = "auto", ctx: int = 1024,
                 kv_cache_memory: str = "512MiB", **engine_kwargs):
        self.llm = LLM(model_dir, kv_cache_dtype=kv_cache, dtype=dtype, kv_cache_memory=kv_cache_memory,
                       enable_prefix_caching=False, max_model_len=max(ctx + 1, 16), max_num_seqs=1,
                       **engine_kwargs)
        kv_window = engine_kwargs.get("kv_window", 0)
        self.params = SamplingParams(max_tokens=0, temperature=0.0, prompt_logprobs=0)
        self.kv_cache = kv_cache + (f"+w{kv_window}" if kv_window else "")

    def stats(self):
        return self.llm.engine.stats()

    def num_parameters(self) -> int:
        return self.stats().num_parameters

    def __call__(self, window: torch.Tensor) -> float:
        (done,) = self.llm.generate([window[0].tolist()], self.params)
        scored = done.prompt_logprobs
        assert scored is not None and len(scored) == window.shape[1], "engine returned partial prompt logprobs"
        return -sum(entry.logprob for entry in scored[1:])
