"""Physical half of the paged KV cache, part 1: codecs (how one layer's K/V pages are stored).

A codec declares its page buffers for (num_blocks, block_size, Hkv, D), `bytes_per_token` (K and V of one
layer), how to write new tokens into their slots and how to read one sequence back as float K/V (the
reference attention path works on every codec through `read`). `plain` codecs store the values
themselves, so the fast attention kernels read their pages directly. Codecs register by name
(`--kv-cache-dtype`); the int8 / RVQ codecs of the KV-compression work plug in the same way.
"""

from __future__ import annotations

from typing import ClassVar

import torch

KV_CODECS: dict[str, type[KVCodec]] = {}


def register_codec(name: str):
    def deco(cls):
        cls.name = name
        KV_CODECS[name] = cls
        return cls
    return deco


class KVCodec:
    name: ClassVar[str] = ""
    plain: ClassVar[bool] = False
    pre_rope: bool = False  # keys are stored before RoPE: the attention layer rotates what `read` returns

    def __init__(self, num_kv_heads: int, head_dim: int, model_dir=None, layer: int = 0, block_size: int = 16):
        self.num_kv_heads, self.head_dim, self.block_size = num_kv_heads, head_dim, block_size

    def bytes_per_token(self) -> int:
        """Bytes one token's K and V take in this layer, per-block overheads amortised (rounded up)."""
        raise NotImplementedError

    def allocate(self, num_blocks: int, block_size: int) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def write(self, pages: dict[str, torch.Tensor], slots: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
        """Store k, v (T, Hkv, D) at flat slots (T,) long."""
        raise NotImplementedError

    def read(self, pages: dict[str, torch.Tensor], block_table: torch.Tensor, n: int
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """The first n tokens of one sequence as float (n, Hkv, D) K and V."""
        raise NotImplementedError


class PlainCodec(KVCodec):
    """Pages hold K and V as-is in `dtype`: (num_blocks, block_size, Hkv, D) each."""

    plain = True
    dtype: ClassVar[torch.dtype] = torch.float32

    def bytes_per_token(self) -> int:
        return 2 * self.num_kv_heads * self.head_dim * torch.finfo(self.dtype).bits // 8

    def allocate(self, num_blocks: int, block_size: int) -> dict[str, torch.Tensor]:
        shape = (num_blocks, block_size, self.num_kv_heads, self.head_dim)
        return {"k": torch.zeros(shape, dtype=self.dtype), "v": torch.zeros(shape, dtype=self.dtype)}

    def write(self, pages, slots, k, v) -> None:
        pages["k"].view(-1, self.num_kv_heads, self.head_dim).index_copy_(0, slots, k.to(self.dtype))
        pages["v"].view(-1, self.num_kv_heads, self.head_dim).index_copy_(0, slots, v.to(self.dtype))

    def read(self, pages, block_table, n):
        k = pages["k"][block_table].flatten(0, 1)[:n]
        v = pages["v"][block_table].flatten(0, 1)[:n]
        return k.float(), v.float()


@register_codec("fp32")
class Fp32Codec(PlainCodec):
    dtype = torch.float32


@register_codec("bf16")
class Bf16Codec(PlainCodec):
    dtype = torch.bfloat16


@register_codec("fp16")
class Fp16Codec(PlainCodec):
    dtype = torch.float16


_AUTO = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


def resolve_codec_name(name: str, act_dtype: torch.dtype) -> str:
    """'auto' -> the activation dtype's plain codec; else the name, if registered (ValueError otherwise)."""
    if name == "auto":
        return _AUTO[act_dtype]
    if name not in KV_CODECS:
        raise ValueError(f"kv_cache_dtype {name!r} is not one of {sorted(KV_CODECS) + ['auto']}")
    return name
