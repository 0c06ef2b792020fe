"""EngineConfig: everything that shapes an engine instance, validated once at construction."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from presso.server.kv.cache import parse_memory

DTYPE_NAMES = ("auto", "float32", "bfloat16", "float16")
LM_HEAD_QUANT = ("auto", "none", "int8", "int4")


@dataclass(frozen=True, slots=True)
class EngineConfig:
    model: str | Path
    dtype: str = "auto"  # auto: bf16 for quantized checkpoints, else the checkpoint's dtype
    kv_cache_dtype: str = "auto"  # auto: the activation dtype; or a registered codec name (bf16, fp16, fp32, ...)
    kv_cache_memory: str | int | float = "1GiB"  # bytes ('2GiB') or a fraction of available memory
    block_size: int = 16
    max_num_seqs: int = 128
    max_num_batched_tokens: int = 512
    max_model_len: int | None = None  # None: the model config's maximum positions
    enable_prefix_caching: bool = True
    seed: int = 0
    lm_head_quant: str = "auto"  # int8 | int4 (g64): run the output head RTN-quantized; auto: int8 if quantized
    num_kv_blocks: int | None = None  # override the budget (tests force preemption with a tiny cache)
    kv_window: int = 0  # compressed KV codecs: each sequence's last N tokens also kept exact (server/kv/window.py)

    def validate(self) -> EngineConfig:
        if self.dtype not in DTYPE_NAMES:
            raise ValueError(f"dtype must be one of {DTYPE_NAMES}, got {self.dtype!r}")
        parse_memory(self.kv_cache_memory)
        for name in ("block_size", "max_num_seqs", "max_num_batched_tokens"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.lm_head_quant not in LM_HEAD_QUANT:
            raise ValueError(f"lm_head_quant must be one of {LM_HEAD_QUANT}, got {self.lm_head_quant!r}")
        if self.max_model_len is not None and self.max_model_len < 1:
            raise ValueError(f"max_model_len must be positive, got {self.max_model_len!r}")
        if not isinstance(self.kv_window, int) or self.kv_window < 0:
            raise ValueError(f"kv_window must be a non-negative int, got {self.kv_window!r}")
        if self.num_kv_blocks is not None and self.num_kv_blocks < 1:
            raise ValueError(f"num_kv_blocks must be positive, got {self.num_kv_blocks!r}")
        return self
