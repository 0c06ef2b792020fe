"""EngineCore: the synchronous engine. Loads the model, sizes the KV cache, and runs steps.

One step = Scheduler.schedule() -> ModelRunner.execute() -> Scheduler.update() -> RequestDeltas.
Both the offline LLM and the AsyncEngine drive this class; it is not thread-safe by itself (the
AsyncEngine serialises access with a lock).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from presso.compression.checkpoint import resolve_model_dir
from presso.compression.checkpoint.config import read_config
from presso.kernels import envs, registry
from presso.server.engine.checks import check_request
from presso.server.engine.config import EngineConfig
from presso.server.engine.guided import GuidedDecoding
from presso.server.engine.request import Request
from presso.server.engine.runner import ModelRunner
from presso.server.engine.scheduler import Scheduler
from presso.server.engine.types import EngineStats, RequestDelta, SamplingParams
from presso.server.kv.block_manager import BlockManager
from presso.server.kv.cache import KVCache
from presso.server.kv.codecs import resolve_codec_name
from presso.server.models.registry import load_model, resolve_dtype

log = logging.getLogger(__name__)


def eos_token_ids(model_dir: Path, cfg: dict, tokenizer) -> frozenset[int]:
    ids: set[int] = set()
    gen = model_dir / "generation_config.json"
    sources = [cfg.get("eos_token_id")]
    if gen.is_file():
        sources.append(json.loads(gen.read_text()).get("eos_token_id"))
    sources.append(getattr(tokenizer, "eos_token_id", None))
    for s in sources:
        if isinstance(s, int):
            ids.add(s)
        elif isinstance(s, list):
            ids.update(int(x) for x in s)
    return frozenset(ids)


class EngineCore:
    def __init__(self, config: EngineConfig):
        from transformers import AutoTokenizer

        self.config = config.validate()
        if envs.num_threads():
            torch.set_num_threads(envs.num_threads())
        self.model_dir = resolve_model_dir(config.model)
        cfg = read_config(self.model_dir)
        self.dtype = resolve_dtype(config.dtype, cfg)
        self.device = torch.device(config.device)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        self.eos_token_ids = eos_token_ids(self.model_dir, cfg, self.tokenizer)
        limit = cfg.get("max_position_embeddings") or cfg.get("n_positions") or 2048
        self.max_model_len = min(config.max_model_len or limit, limit)
        # Every kernel (linears, head, attention, KV codecs) is resolved here, once, for this device.
        with registry.select(self.device.type, config.kernel_backend) as resolved:
            self.model, self.hf_config, source = load_model(self.model_dir, self.dtype, config.device,
                                                                  config.model_impl)
            if self.model.max_context:  # e.g. the generic path is exact only within a sliding window
                self.max_model_len = min(self.max_model_len, self.model.max_context)
            quantized = bool(cfg.get("quantization_config"))
            head = "int8" if config.lm_head_quant == "auto" and quantized else config.lm_head_quant
            with torch.device(self.device):
                if head in ("int8", "int4"):
                    self.model.quantize_head(int(head[3:]))
                codec = resolve_codec_name(config.kv_cache_dtype, self.dtype)
                windows = self.model.sliding_windows or [0] * self.model.num_layers
                self.kv = KVCache(codec, self.model.num_layers, self.model.num_kv_heads, self.model.head_dim,
                                  config.block_size, config.kv_cache_memory, self.model_dir,
                                  config.num_kv_blocks, config.kv_window, config.max_num_seqs, windows)
        self.kernels: dict[str, str] = dict(sorted(resolved.items()))  # op -> backend, for logs and tests
        log.info("engine on %s, kernels: %s", self.device, ", ".join(f"{k}={v}" for k, v in self.kernels.items()))
        if self.kv.codec.pre_rope and not hasattr(self.model, "rope"):
            raise ValueError(f"{self.model_dir}: KV codebooks code keys before RoPE, but this model has no rotary "
                             "embedding presso can apply (GPT-2, or the generic path, where transformers' code "
                             "rotates keys); recalibrate with keys=post_rope")
        # A cached prefix block keeps only codes, but a request starting after it would need its last
        # kv_window tokens exactly: with a window, prefixes are recomputed instead of shared.
        prefix_caching = config.enable_prefix_caching and not config.kv_window
        self.block_manager = BlockManager(self.kv.num_blocks, config.block_size, prefix_caching)
        # blocks out of the window are freed only when every layer slides (block_manager.py says why)
        sliding = max(windows) if all(windows) else 0
        self.scheduler = Scheduler(self.block_manager, config.max_num_seqs, config.max_num_batched_tokens,
                                   self.max_model_len, sliding)
        self.vocab_size = self.hf_config.get("vocab_size") or len(self.tokenizer)  # the logits' width
        self.limits = self.scheduler.limits(self.vocab_size)
        self.guided = GuidedDecoding(self.tokenizer, self.vocab_size, self.eos_token_ids)
        self.runner = ModelRunner(self.model, self.kv, config.seed, self.device, self.guided, config.compile)
        self.weight_bytes = source.nbytes()
        self.num_parameters = self.model.num_parameters()
        if self.runner.compiled is not None:
            self._compile_now()

    def _compile_now(self) -> None:
        """Compile the decode graphs before the first request: batch 1, the dynamic batch graph, and the one
        past the packed kernels' row limit (each a minute or more of Inductor work on a small CPU)."""
        params = SamplingParams(max_tokens=3, temperature=0.0, ignore_eos=True)
        sizes = sorted({1, min(2, self.config.max_num_seqs),
                        min(envs.cpu_packed_max_rows() + 1, self.config.max_num_seqs)})
        for rows in sizes:
            log.info("compiling the decode step for %d row(s)", rows)
            for i in range(rows):  # unequal lengths: served batches have a padding mask, so the graph must too
                self.add_request(f"presso-compile-{rows}-{i}", [1, 2, 3, 4] + [5] * i, params)
            while self.has_work():
                self.step()

    def check(self, prompt_token_ids: list[int], params: SamplingParams) -> None:
        """ValueError for bad params, an empty or too-long prompt, or out-of-vocabulary token ids."""
        check_request(prompt_token_ids, params, self.limits, self.guided)

    def add_request(self, request_id: str, prompt_token_ids: list[int], params: SamplingParams,
                    arrival_time: float | None = None) -> None:
        """Queue a request; arrival_time (time.monotonic()) defaults to now."""
        self.check(prompt_token_ids, params)
        req = Request(request_id, tuple(prompt_token_ids), params, self.eos_token_ids)
        if arrival_time is not None:
            req.arrival_time = arrival_time
        self.scheduler.add(req)

    def abort(self, request_id: str) -> bool:
        self.guided.release([request_id])
        return self.scheduler.abort(request_id) is not None

    def has_work(self) -> bool:
        return self.scheduler.has_work

    def step(self) -> list[RequestDelta]:
        out = self.scheduler.schedule()
        if out.empty:
            return []
        try:
            result = self.runner.execute(out)
        except Exception:  # one bad batch must not take the engine down: fail exactly its requests
            log.exception("engine step failed; aborting its %d requests", len(out.seqs))
            deltas = self.scheduler.fail(out)
        else:
            deltas = self.scheduler.update(out, result)
        self.guided.release(d.request_id for d in deltas if d.finished)
        return deltas

    @torch.inference_mode()
    def prompt_logits(self, prompt_token_ids: list[int]) -> torch.Tensor:
        """Logits (T, V) fp32 at every position of one prompt, run as a single prefill step through the paged
        cache; its blocks are freed after. For checks against other implementations, not for serving."""
        if self.scheduler.has_work:  # a step here would schedule (and lose) other requests' tokens
            raise RuntimeError("prompt_logits needs an idle engine")
        rid = f"prompt-logits-{id(prompt_token_ids)}"
        self.add_request(rid, list(prompt_token_ids), SamplingParams(max_tokens=1))
        try:
            seqs = [s for s in self.scheduler.schedule().seqs if s.request_id == rid]
            if not seqs or seqs[0].num_tokens != len(prompt_token_ids):
                raise ValueError(f"the prompt ({len(prompt_token_ids)} tokens) must fit one step's token budget")
            return self.runner.forward_logits(seqs)
        finally:
            self.abort(rid)

    def stats(self) -> EngineStats:
        bm = self.block_manager
        return EngineStats(
            num_running=len(self.scheduler.running), num_waiting=len(self.scheduler.waiting),
            num_blocks_total=bm.num_blocks, num_blocks_free=bm.num_free_blocks, block_size=bm.block_size,
            kv_bytes_per_token=self.kv.bytes_per_token, kv_cache_dtype=self.kv.codec_name,
            prefix_cache_queries=bm.prefix_queries, prefix_cache_hits=bm.prefix_hits,
            num_preemptions=self.scheduler.num_preemptions, weight_bytes=self.weight_bytes,
            bits_per_weight=8.0 * self.weight_bytes / max(self.num_parameters, 1),
            num_parameters=self.num_parameters, model_impl=self.model.impl,
            model_type=str(self.hf_config.get("model_type")),
        )
