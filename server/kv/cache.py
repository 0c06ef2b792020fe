"""Physical half of the paged KV cache, part 2: every layer's pages, sized from a memory budget.

`num_blocks = budget // (block_size * layers * codec.bytes_per_token())`, so a smaller codec means more
blocks, hence more concurrent sequences. An exact recent window (window.py) takes its rings out of the
budget first. The budget is bytes (`2GiB`, `512MiB`, an int) or a fraction
in (0, 1] of the memory available when the engine starts (the GPU's free memory on CUDA). Pages are
allocated on the default device: the engine builds the cache under torch.device(its device).
Each layer carries its sliding window (0: full attention), so one model may mix window sizes; prepare()
indexes the decode rows once per step for every distinct window.
"""

from __future__ import annotations

from dataclasses import dataclass

import psutil
import torch

from presso.kernels.attention.types import PagedBatch, index_decodes
from presso.server.engine.config import parse_memory
from presso.server.kv import kivi_codec, quant_codecs  # noqa: F401  (register the int8, kivi2, rvq codecs)
from presso.server.kv.attend import Rope
from presso.server.kv.codecs import KV_CODECS, KVCodec
from presso.server.kv.window import WindowedCodec


def budget_bytes(spec: str | int | float, device: torch.device | None = None) -> int:
    """Bytes for the pages: as given, or a fraction of the free memory of `device` (host RAM on CPU)."""
    value = parse_memory(spec)
    if isinstance(value, float):
        if device is not None and device.type == "cuda":
            return int(value * torch.cuda.mem_get_info(device)[0])
        return int(value * psutil.virtual_memory().available)
    return value


@dataclass(frozen=True, slots=True)
class LayerKV:
    """One layer's handle on the cache, what a model layer attends through: its codec and its pages."""

    codec: KVCodec
    pages: dict[str, torch.Tensor]
    window: int = 0  # sliding window of this layer's attention (a query at t sees t - W < s <= t); 0: full

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, batch: PagedBatch, scale: float,
               k_pre: torch.Tensor | None = None, rope: Rope | None = None, softcap: float = 0.0) -> torch.Tensor:
        """Store this step's K/V (T, Hkv, D), then q (T, H, D) attends over the cache -> (T, H, D).

        Codecs that code keys before RoPE store `k_pre` (k_proj's output) and rotate what they read
        with `rope`; `k` is the post-RoPE key either way. `softcap` caps scores (Gemma 2; 0: none)."""
        if self.codec.pre_rope:
            assert k_pre is not None and rope is not None, "pre-RoPE keys need the model's rotary embedding"
        self.codec.write(self.pages, batch.slot_mapping, k_pre if self.codec.pre_rope else k, v)
        return self.codec.attend(q, k, v, self.pages, batch, scale, rope, self.window, softcap)


class KVCache:
    """Every layer's codec and pages (`layers[i]`, a LayerKV), sized from one memory budget."""

    def __init__(self, codec_name: str, num_layers: int, num_kv_heads: int, head_dim: int, block_size: int,
                 memory: str | int | float, model_dir=None, num_blocks: int | None = None, window: int = 0,
                 max_seqs: int = 1, sliding_windows: list[int] | None = None):
        self.codec_name = codec_name
        codecs: list[KVCodec] = [KV_CODECS[codec_name](num_kv_heads, head_dim, model_dir, i, block_size)
                                 for i in range(num_layers)]
        if window:  # the exact recent window wraps the codec; its rings come out of the same budget
            codecs = [WindowedCodec(c, window, max_seqs) for c in codecs]
        self.block_size = block_size
        self.bytes_per_token = sum(c.bytes_per_token() for c in codecs)
        per_block = block_size * self.bytes_per_token
        self.window_bytes = sum(c.state_bytes() for c in codecs)
        if num_blocks is None:
            num_blocks = (budget_bytes(memory, torch.get_default_device()) - self.window_bytes) // per_block
        if num_blocks < 1:
            raise ValueError(f"kv_cache_memory {memory!r} is too small for one block of {per_block} bytes"
                             + (f" plus {self.window_bytes} bytes of recent-window rings" if window else ""))
        self.num_blocks = int(num_blocks)
        self.sliding_windows = list(sliding_windows or [0] * num_layers)  # per layer, 0: full attention
        assert len(self.sliding_windows) == num_layers, "one sliding window (or 0) per layer"
        self.layers = [LayerKV(c, c.allocate(self.num_blocks, block_size), w)
                       for c, w in zip(codecs, self.sliding_windows, strict=True)]

    @property
    def codec(self) -> KVCodec:
        """Layer 0's codec (every layer has the same kind)."""
        return self.layers[0].codec

    def prepare(self, batch: PagedBatch) -> PagedBatch:
        """Per-step attention metadata, built once for every layer: the decode rows' slots and mask (one
        set per distinct sliding window)."""
        return index_decodes(batch, tuple(w for w in self.sliding_windows if w))

    @property
    def nbytes(self) -> int:
        pages = sum(t.numel() * t.element_size() for layer in self.layers for t in layer.pages.values())
        return pages + self.window_bytes
