"""EngineConfig: everything that shapes an engine instance, validated once at construction.

Imports no torch (the CLI builds its flags from these fields before anything loads a model).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from presso.kernels.registry import BACKENDS as KERNEL_BACKENDS

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
    device: str = "cpu"  # cpu | cuda | cuda:N: weights, KV pages and every step's tensors live there
    kernel_backend: str | None = None  # force one kernel backend (tests: triton under TRITON_INTERPRET=1)
    engine_process: bool = False  # serving: the EngineCore in its own process (engine/process_engine.py)

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
        if self.kernel_backend is not None and self.kernel_backend not in KERNEL_BACKENDS:
            raise ValueError(f"kernel_backend must be one of {KERNEL_BACKENDS}, got {self.kernel_backend!r}")
        check_device(self.device)
        return self


def check_device(device: str) -> None:
    """ValueError unless `device` is cpu or a CUDA device this machine has."""
    import torch

    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"device must be cpu, cuda or cuda:N, got {device!r}") from None
    if dev.type == "cpu":
        return
    if dev.type != "cuda":
        raise ValueError(f"device must be cpu, cuda or cuda:N, got {device!r}")
    if not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: no CUDA device is available here (torch {torch.__version__}, "
                         f"CUDA build: {torch.version.cuda or 'none'})")
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")


_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2, "mib": 1024**2,
          "g": 1000**3, "gb": 1000**3, "gib": 1024**3}


def parse_memory(spec: str | int | float) -> int | float:
    """'2GiB' -> 2147483648; '0.2' or 0.2 -> 0.2 (a fraction); ValueError on anything else."""
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        value = spec
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(spec))
        if not m or m.group(2).lower() not in _UNITS:
            raise ValueError(f"kv_cache_memory must be bytes like '2GiB' or a fraction like 0.2, got {spec!r}")
        value = float(m.group(1)) * _UNITS[m.group(2).lower()]
        if not m.group(2) and float(m.group(1)) <= 1.0:
            value = float(m.group(1))
    if value <= 0:
        raise ValueError(f"kv_cache_memory must be positive, got {spec!r}")
    if isinstance(value, float) and value <= 1.0:
        return value
    return int(value)
