"""Compressed KV codecs for the paged cache: `int8` (per token-head scale) and `rvq` (residual VQ).

Both plug into the codec registry of codecs.py and attend by reading back (the default). `rvq` with
post-RoPE codes scores one-token queries against the codebooks directly (op kv_rvq_attend), never
decoding the cache. RVQ codebooks come from the checkpoint's
presso_kv.safetensors (calibrated offline by `presso compress ... --kv rvq`). Every numeric op comes
from presso.kernels.registry, resolved once when the codec is built (inside the engine's kernel
selection: Triton on CUDA, else the cpu op or the reference).
Page shapes: int8 k/v (NB, BS, Hkv, D) int8 + scales (NB, BS, Hkv, 1) fp16; rvq codes
(NB, BS, Hkv, ng, S) uint8|int16 + RMS (NB, BS, Hkv, 1) fp16.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from presso.compression.checkpoint.kv_codebooks import load_kv_codebooks
from presso.kernels import registry
from presso.server.kv.codecs import KVCodec, flat, register_codec


def _gather(page: torch.Tensor, block_table: torch.Tensor, n: int) -> torch.Tensor:
    return page[block_table].flatten(0, 1)[:n]


@register_codec("int8")
class Int8Codec(KVCodec):
    def __init__(self, num_kv_heads: int, head_dim: int, model_dir=None, layer: int = 0, block_size: int = 16):
        super().__init__(num_kv_heads, head_dim, model_dir, layer, block_size)
        self._encode, self._decode = registry.get("kv_int8_encode"), registry.get("kv_int8_decode")

    def bytes_per_token(self) -> int:
        return 2 * self.num_kv_heads * (self.head_dim + 2)  # int8 values + one fp16 scale per head

    def allocate(self, num_blocks: int, block_size: int) -> dict[str, torch.Tensor]:
        vals = (num_blocks, block_size, self.num_kv_heads, self.head_dim)
        scales = (num_blocks, block_size, self.num_kv_heads, 1)
        return {"k": torch.zeros(vals, dtype=torch.int8), "v": torch.zeros(vals, dtype=torch.int8),
                "k_scale": torch.zeros(scales, dtype=torch.float16),
                "v_scale": torch.zeros(scales, dtype=torch.float16)}

    def write(self, pages, slots, k, v) -> None:
        for name, x in (("k", k), ("v", v)):
            q, scale = self._encode(x)
            flat(pages[name]).index_copy_(0, slots, q)
            flat(pages[f"{name}_scale"]).index_copy_(0, slots, scale)

    def read(self, pages, block_table, n):
        return tuple(self._decode(_gather(pages[name], block_table, n),
                            _gather(pages[f"{name}_scale"], block_table, n)) for name in ("k", "v"))


@functools.lru_cache(maxsize=4)
def _codebooks(model_dir: str):
    """Read presso_kv.safetensors once per model, not once per layer."""
    return load_kv_codebooks(Path(model_dir))


@register_codec("rvq")
class RVQCodec(KVCodec):
    def __init__(self, num_kv_heads: int, head_dim: int, model_dir=None, layer: int = 0, block_size: int = 16):
        super().__init__(num_kv_heads, head_dim, model_dir, layer, block_size)
        if model_dir is None:
            raise ValueError("kv_cache_dtype 'rvq' needs a checkpoint with presso_kv.safetensors")
        spec, layers = _codebooks(str(model_dir))
        if layer >= len(layers):
            raise ValueError(f"{model_dir}/presso_kv.safetensors has {len(layers)} layers, model needs more")
        if head_dim % spec.group:
            raise ValueError(f"rvq group {spec.group} does not divide head_dim {head_dim}")
        self.spec = spec
        self.pre_rope = spec.keys == "pre_rope"  # codes of k_proj's output; RoPE is applied after decoding
        books = layers[layer]
        device = torch.get_default_device()  # the engine builds its cache under its device
        self.k_books, self.k_perm = books.k_books.float().to(device), books.k_perm.long().to(device)
        self.v_books, self.v_perm = books.v_books.float().to(device), books.v_perm.long().to(device)
        self._encode, self._decode = registry.get("kv_rvq_encode"), registry.get("kv_rvq_decode")
        self._attend = registry.get("kv_rvq_attend")
        self.code_dtype = torch.uint8 if spec.entries <= 256 else torch.int16

    def bytes_per_token(self) -> int:
        return 2 * self.num_kv_heads * self.spec.bytes_per_vector(self.head_dim)

    def allocate(self, num_blocks: int, block_size: int) -> dict[str, torch.Tensor]:
        ng = self.head_dim // self.spec.group
        codes = (num_blocks, block_size, self.num_kv_heads, ng, self.spec.stages)
        rms = (num_blocks, block_size, self.num_kv_heads, 1)
        return {"k": torch.zeros(codes, dtype=self.code_dtype), "v": torch.zeros(codes, dtype=self.code_dtype),
                "k_rms": torch.zeros(rms, dtype=torch.float16), "v_rms": torch.zeros(rms, dtype=torch.float16)}

    def write(self, pages, slots, k, v) -> None:
        for name, x, books, perm in (("k", k, self.k_books, self.k_perm), ("v", v, self.v_books, self.v_perm)):
            codes, rms = self._encode(x, books, perm)
            flat(pages[name]).index_copy_(0, slots, codes.to(self.code_dtype))
            flat(pages[f"{name}_rms"]).index_copy_(0, slots, rms)

    def read(self, pages, block_table, n):
        k = self._decode(_gather(pages["k"], block_table, n), _gather(pages["k_rms"], block_table, n),
                   self.k_books, self.k_perm)
        v = self._decode(_gather(pages["v"], block_table, n), _gather(pages["v_rms"], block_table, n),
                   self.v_books, self.v_perm)
        return k, v

    def attend_decodes(self, q, k_new, v_new, pages, batch, scale, rope, window=0, softcap=0.0):
        """Post-RoPE codes: each one-token query scored on the codes (never decoding the cache) over its
        last `window` positions (all with 0); a pre-RoPE key must be rotated to its position after
        decoding, and the code-space kernel cannot soft-cap scores, so those read back."""
        if self.pre_rope or softcap:
            return super().attend_decodes(q, k_new, v_new, pages, batch, scale, rope, window, softcap)
        out = torch.empty(q.shape, dtype=torch.float32, device=q.device)
        for i in range(q.shape[0]):
            table, n = batch.decode_block_tables[i], int(batch.decode_context_lens[i])
            out[i] = self.attend_decode(q[i], pages, table, n, scale, max(0, n - window) if window else 0)
        return out

    def attend_decode(self, q: torch.Tensor, pages, block_table, n: int, scale: float, lo: int = 0) -> torch.Tensor:
        """One query (H, D) over the sequence's cached tokens [lo, n), in code space -> (H, D) fp32 (post-RoPE
        keys only: a pre-RoPE key must be rotated to its position after decoding)."""
        bs = self.block_size
        table, n = block_table[lo // bs:], n - lo // bs * bs  # skip whole blocks before the window
        lo = lo % bs

        def rows(name):
            return _gather(pages[name], table, n)[lo:]
        return self._attend(q, rows("k"), rows("k_rms"), rows("v"), rows("v_rms"),
                            self.k_books, self.v_books, self.k_perm, self.v_perm, scale)
