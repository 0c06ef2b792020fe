"""Every environment variable presso reads, in one module.

It lives in the bottom layer (presso.kernels) so the server, the compression stage and the kernels can
all import it without breaking the import rules. Values are read on each call, so tests may set them.
"""

from __future__ import annotations

import os
from pathlib import Path


def presso_home() -> Path:
    """Root for pulled models, datasets and compressed checkpoints (`$PRESSO_HOME`, default ~/.cache/presso)."""
    return Path(os.environ.get("PRESSO_HOME") or Path.home() / ".cache" / "presso").expanduser()


def kernel_backend() -> str | None:
    """`PRESSO_KERNEL_BACKEND`: force one kernel backend (`reference`, `cpu`, `triton`); None = pick by device."""
    value = os.environ.get("PRESSO_KERNEL_BACKEND", "").strip().lower()
    return value or None


def hub_offline() -> bool:
    """True when the Hugging Face hub must not be contacted (`HF_HUB_OFFLINE=1`)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip() in {"1", "true", "True", "yes"}


def num_threads() -> int | None:
    """`PRESSO_NUM_THREADS`: torch intra-op threads; None leaves torch's default."""
    value = os.environ.get("PRESSO_NUM_THREADS", "").strip()
    return int(value) if value else None


def cpu_packed_max_rows() -> int:
    """`PRESSO_CPU_PACKED_MAX_ROWS`: largest activation batch (rows) sent to torch's packed int8/int4 CPU
    matmuls (default 8); larger batches use a bf16 copy of the dequantized weight, made at load,
    because the packed kernels scale linearly with rows while a dense GEMM does not. 0 = always packed."""
    value = os.environ.get("PRESSO_CPU_PACKED_MAX_ROWS", "").strip()
    return int(value) if value else 8


def native_kernels() -> bool:
    """`PRESSO_NATIVE_KERNELS`: build and use the C kernels of kernels/native (default on; 0 = torch paths)."""
    return os.environ.get("PRESSO_NATIVE_KERNELS", "").strip().lower() not in {"0", "false", "no", "off"}


def c_compiler() -> str:
    """`CC`: the C compiler that builds kernels/native (default `cc`)."""
    return os.environ.get("CC", "").strip() or "cc"
