"""Physical half of the paged KV cache, part 2: every layer's pages, sized from a memory budget.

`num_blocks = budget // (block_size * layers * codec.bytes_per_token())`, so a smaller codec means more
blocks, hence more concurrent sequences. An exact recent window (window.py) takes its rings out of the
budget first. The budget is bytes (`2GiB`, `512MiB`, an int) or a fraction
in (0, 1] of the memory available when the engine starts.
"""

from __future__ import annotations

import re

import psutil
import torch

from presso.server.kv import kivi_codec, quant_codecs  # noqa: F401  (register the int8, kivi2, rvq codecs)
from presso.server.kv.codecs import KV_CODECS, KVCodec
from presso.server.kv.window import allocate as allocate_window
from presso.server.kv.window import ring_bytes

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


def budget_bytes(spec: str | int | float) -> int:
    value = parse_memory(spec)
    if isinstance(value, float):
        return int(value * psutil.virtual_memory().available)
    return value


class KVCache:
    """Pages for every layer: `layers[i]` is the dict of page buffers the codec declared."""

    def __init__(self, codec_name: str, num_layers: int, num_kv_heads: int, head_dim: int, block_size: int,
                 memory: str | int | float, model_dir=None, num_blocks: int | None = None, window: int = 0,
                 max_seqs: int = 1):
        self.codec_name = codec_name
        self.codecs: list[KVCodec] = [KV_CODECS[codec_name](num_kv_heads, head_dim, model_dir, i, block_size)
                                      for i in range(num_layers)]
        self.block_size = block_size
        per_block = block_size * sum(c.bytes_per_token() for c in self.codecs)
        self.bytes_per_token = sum(c.bytes_per_token() for c in self.codecs)
        if window and self.codecs[0].plain:
            raise ValueError(f"kv_window applies to compressed KV codecs; {codec_name!r} already stores exact values")
        # the recent-window rings come out of the same budget: W tokens at bf16 per running sequence and layer
        self.window_bytes = num_layers * ring_bytes(max_seqs, window, num_kv_heads, head_dim) if window else 0
        if num_blocks is None:
            num_blocks = (budget_bytes(memory) - self.window_bytes) // per_block
        if num_blocks < 1:
            raise ValueError(f"kv_cache_memory {memory!r} is too small for one block of {per_block} bytes"
                             + (f" plus {self.window_bytes} bytes of recent-window rings" if window else ""))
        self.num_blocks = int(num_blocks)
        self.layers: list[dict[str, torch.Tensor]] = [c.allocate(self.num_blocks, block_size) for c in self.codecs]
        if window:
            for pages in self.layers:
                pages.update(allocate_window(max_seqs, window, num_kv_heads, head_dim))

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for pages in self.layers for t in pages.values())
