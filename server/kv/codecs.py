"""Physical half of the paged KV cache, part 1: codecs (how one layer's K/V pages are stored and read).

A codec declares its page buffers for (num_blocks, block_size, Hkv, D), `bytes_per_token` (K and V of one
layer), how to write new tokens into their slots, how to read one sequence back as float K/V, and how
this step's queries attend over its pages (`attend`). The default attend reads back, then attends
(server/kv/attend.py: all decode rows in one read, each prefill span on its own); `plain` codecs store
the values themselves and hand their pages to the `paged_attention` kernel; a codec may also override
only its decode rows (RVQ scores queries on its codes) or its prefill spans (the exact window).
A layer's attention may be sliding-window (`window` W: a query at t sees keys t - W < s <= t; prefill
spans read from their first query's window on, block-aligned, decode rows only their last W positions)
and soft-capped (`softcap`, Gemma 2); every path honours both.
Codecs register by name (`--kv-cache`); kernels are resolved once, when the codec is built.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from presso.kernels import registry
from presso.kernels.attention.reference import attend_one
from presso.kernels.attention.types import PagedBatch, PrefillSpan, window_start
from presso.server.kv.attend import Rope, decode_rows, rotated_reader

KV_CODECS: dict[str, type[KVCodec]] = {}


def flat(page: torch.Tensor) -> torch.Tensor:
    """(NB, BS, ...) page -> (NB*BS, ...) view addressed by flat slot."""
    return page.view(-1, *page.shape[2:])


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

    def state_bytes(self) -> int:
        """Bytes this layer holds besides its pages (per-sequence state, e.g. an exact window's rings)."""
        return 0

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, pages: dict[str, torch.Tensor],
               batch: PagedBatch, scale: float, rope: Rope | None = None, window: int = 0,
               softcap: float = 0.0) -> torch.Tensor:
        """q (T, H, D) over the cache, after write(); k, v (T, Hkv, D) are this step's post-RoPE K/V.
        Decode rows first (attend_decodes), then every prefill span read back from its window's first
        block (attend_span) -> (T, H, D)."""
        out = torch.empty_like(q)
        nd = batch.num_decodes
        if nd:
            out[:nd] = self.attend_decodes(q[:nd], k[:nd], v[:nd], pages, batch, scale, rope, window,
                                           softcap).to(q.dtype)
        read = rotated_reader(self, rope) if self.pre_rope else None
        bs = batch.block_size
        for span in batch.prefills:
            rows = slice(span.start, span.start + span.q_len)
            lo = window_start(span.ctx_len, span.q_len, window, bs)
            table, n = span.block_table[lo // bs:], span.ctx_len - lo
            kk, vv = read(pages, table, n, lo) if read else self.read(pages, table, n)
            out[rows] = self.attend_span(q[rows], kk, vv, k[rows], v[rows], span, scale, lo, window,
                                         softcap).to(q.dtype)
        return out

    def attend_decodes(self, q: torch.Tensor, k_new: torch.Tensor, v_new: torch.Tensor,
                       pages: dict[str, torch.Tensor], batch: PagedBatch, scale: float,
                       rope: Rope | None, window: int = 0, softcap: float = 0.0) -> torch.Tensor:
        """The one-token queries q (Bd, H, D) -> (Bd, H, D) fp32."""
        return decode_rows(q, self, rope, pages, batch, scale, window=window, softcap=softcap)

    def attend_span(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, k_new: torch.Tensor,
                    v_new: torch.Tensor, span: PrefillSpan, scale: float, lo: int = 0, window: int = 0,
                    softcap: float = 0.0) -> torch.Tensor:
        """One prefill span's queries q (q, H, D) over its read-back positions [lo, ctx_len): k, v (n, Hkv, D)."""
        return attend_one(q, k, v, scale, window, softcap)


class PlainCodec(KVCodec):
    """Pages hold K and V as-is in `dtype`: (num_blocks, block_size, Hkv, D) each."""

    plain = True
    dtype: ClassVar[torch.dtype] = torch.float32

    def __init__(self, num_kv_heads: int, head_dim: int, model_dir=None, layer: int = 0, block_size: int = 16):
        super().__init__(num_kv_heads, head_dim, model_dir, layer, block_size)
        self._kernel = registry.get("paged_attention")

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

    def attend(self, q, k, v, pages, batch, scale, rope=None, window=0, softcap=0.0):
        return self._kernel(q, pages["k"], pages["v"], batch, scale, window, softcap)  # the pages hold the values


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
