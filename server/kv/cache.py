"""Physical half of the paged KV cache, part 2: every layer's pages, sized from a memory budget.

`num_blocks = budget // (block_size * layers * codec.bytes_per_token())`, so a smaller codec means more
blocks, hence more concurrent sequences. An exact recent window (window.py) takes its rings out of the
budget first. The budget is bytes (`2GiB`, `512MiB`, an int) or a fraction
in (0, 1] of the memory available when the engine starts (the GPU's free memory on CUDA). Pages are
allocated on the default device: the engine builds the cache under torch.device(its device).
"""

from __future__ import annotations

import psutil
import torch

from presso.server.engine.config import parse_memory
from presso.server.kv import kivi_codec, quant_codecs  # noqa: F401  (register the int8, kivi2, rvq codecs)
from presso.server.kv.codecs import KV_CODECS, KVCodec
from presso.server.kv.window import allocate as allocate_window
from presso.server.kv.window import ring_bytes


def budget_bytes(spec: str | int | float, device: torch.device | None = None) -> int:
    """Bytes for the pages: as given, or a fraction of the free memory of `device` (host RAM on CPU)."""
    value = parse_memory(spec)
    if isinstance(value, float):
        if device is not None and device.type == "cuda":
            return int(value * torch.cuda.mem_get_info(device)[0])
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
            num_blocks = (budget_bytes(memory, torch.get_default_device()) - self.window_bytes) // per_block
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
