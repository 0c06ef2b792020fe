"""`kivi2`: KIVI-style 2-bit KV codec for the paged cache (keys per channel, values per token).

Keys are quantized per channel over the BS tokens of one cache block (the block is KIVI's key group),
values per token over groups of G channels; both asymmetric 2-bit with fp16 scale and minimum.
Per-channel key statistics need the whole block, so a block that is still filling keeps its keys
exact (fp16) in a small staging pool, like KIVI's full-precision residual: the last `n % BS` tokens
of every sequence are served uncompressed, and the block is quantized from its exact keys the moment
it fills. The pool is budgeted at one block per STAGE_RATIO cache blocks. When it is full, the least
recently written slot is reused if no write touched it in the last step (a finished or stalled
sequence: its block is quantized with the statistics of the tokens it has, and any later tokens reuse
that grid, clamped); otherwise the pool doubles. Prefix-cached blocks are always full, hence quantized.
Page shapes (NB blocks, BS tokens, H heads, D channels, ng = D // G):
k, v (NB, BS, H, D/4) uint8 packed; k_scale, k_lo (NB, H, D) fp16; v_scale, v_lo (NB, BS, H, ng) fp16;
stage (P, BS, H, D) fp16; stage_block (P,), stage_fill (P,), stage_tick (P,), block_stage (NB,) int64.
"""

from __future__ import annotations

import torch

from presso.kernels import registry
from presso.kernels.kvcache import reference as kvref
from presso.server.kv.codecs import KVCodec, flat, register_codec

STAGE_RATIO = 16  # cache blocks per staging block
VALUE_GROUP = 32  # channels per value quantization group (KIVI's default), or D when it does not divide



@register_codec("kivi2")
class Kivi2Codec(KVCodec):
    def __init__(self, num_kv_heads: int, head_dim: int, model_dir=None, layer: int = 0, block_size: int = 16):
        super().__init__(num_kv_heads, head_dim, model_dir, layer, block_size)
        if head_dim % 4:
            raise ValueError(f"kivi2 packs 4 codes per byte: head_dim {head_dim} must be a multiple of 4")
        self.group = VALUE_GROUP if head_dim % VALUE_GROUP == 0 else head_dim
        self._tick = 0
        self._keys_decode = registry.get("kv_kivi_keys_decode")  # resolved once, for the engine's device
        self._values_decode = registry.get("kv_kivi_values_decode")

    def bytes_per_token(self) -> int:
        h, d, bs = self.num_kv_heads, self.head_dim, self.block_size
        codes = 2 * h * d // 4  # K and V codes
        key_stats = -(-2 * 2 * h * d // bs)  # fp16 scale + min per channel, once per block
        value_stats = 2 * 2 * h * (d // self.group)  # fp16 scale + min per token-head-group
        staging = -(-(bs * h * d * 2 + 24) // (STAGE_RATIO * bs))  # pool + its index, amortised
        return codes + key_stats + value_stats + staging + -(-8 // bs)

    def allocate(self, num_blocks: int, block_size: int) -> dict[str, torch.Tensor]:
        assert block_size == self.block_size, "codec built for another block size"
        h, d, ng = self.num_kv_heads, self.head_dim, self.head_dim // self.group
        pool = max(1, -(-num_blocks // STAGE_RATIO))
        u8 = dict(dtype=torch.uint8)
        f16 = dict(dtype=torch.float16)
        return {
            "k": torch.zeros(num_blocks, block_size, h, d // 4, **u8),
            "v": torch.zeros(num_blocks, block_size, h, d // 4, **u8),
            "k_scale": torch.zeros(num_blocks, h, d, **f16), "k_lo": torch.zeros(num_blocks, h, d, **f16),
            "v_scale": torch.zeros(num_blocks, block_size, h, ng, **f16),
            "v_lo": torch.zeros(num_blocks, block_size, h, ng, **f16),
            "stage": torch.zeros(pool, block_size, h, d, **f16),
            "stage_block": torch.full((pool,), -1, dtype=torch.long),
            "stage_fill": torch.zeros(pool, dtype=torch.long),
            "stage_tick": torch.zeros(pool, dtype=torch.long),
            "block_stage": torch.full((num_blocks,), -1, dtype=torch.long),
        }

    # ---- write -------------------------------------------------------------------------------------
    def write(self, pages, slots, k, v) -> None:
        """k, v (T, H, D) at flat slots (T,); a block's slots within one write are contiguous, ascending."""
        self._tick += 1
        codes, scale, lo = kvref.kivi_encode(v.unflatten(-1, (-1, self.group)), dim=-1)  # (T, H, ng, G)
        flat(pages["v"]).index_copy_(0, slots, kvref.pack2(codes.flatten(-2)))
        flat(pages["v_scale"]).index_copy_(0, slots, scale[..., 0])
        flat(pages["v_lo"]).index_copy_(0, slots, lo[..., 0])

        bs = self.block_size
        blk, off = slots // bs, slots % bs
        uniq, inv = torch.unique(blk, return_inverse=True)
        first = torch.zeros(len(uniq), dtype=torch.bool).index_fill_(0, inv[off == 0], True)
        last = torch.zeros(len(uniq), dtype=torch.bool).index_fill_(0, inv[off == bs - 1], True)
        whole = first & last
        if whole.any():  # blocks written in full by this call: quantize straight from k
            rows = whole[inv]
            # in write order (a block table need not be ascending): block ids from each block's first row
            # through fp16 like staged keys, so a block's codes do not depend on how it was written
            keys = k[rows].to(torch.float16).float().view(-1, bs, *k.shape[1:])
            self._quantize_blocks(pages, blk[rows][::bs], keys)
        for b in uniq[first & ~last].tolist():  # blocks started by this call: stage their keys
            self._stage(pages, b)
        rest = ~whole[inv]
        if rest.any():
            self._write_partial(pages, blk[rest], off[rest], k[rest])
        done = uniq[last & ~whole]
        if len(done):
            self._finish(pages, done)

    def _quantize_blocks(self, pages, blocks: torch.Tensor, keys: torch.Tensor) -> None:
        """keys (F, BS, H, D) of full blocks -> codes and per-channel statistics; drops their staging."""
        codes, scale, lo = kvref.kivi_encode(keys, dim=1)
        pages["k"].index_copy_(0, blocks, kvref.pack2(codes))
        pages["k_scale"].index_copy_(0, blocks, scale[:, 0])
        pages["k_lo"].index_copy_(0, blocks, lo[:, 0])
        st = pages["block_stage"][blocks]
        held = st[st >= 0]
        pages["stage_block"][held] = -1
        pages["block_stage"][blocks] = -1

    def _stage(self, pages, block: int) -> None:
        """Give `block` a staging slot: its own stale one, a free one, the least recently written one
        when no write touched it last step (its block is quantized as it stands), else a grown pool."""
        slot = int(pages["block_stage"][block])
        if slot < 0:
            free = (pages["stage_block"] < 0).nonzero()
            oldest = int(pages["stage_tick"].argmin())
            if len(free):
                slot = int(free[0])
            elif int(pages["stage_tick"][oldest]) < self._tick - 1:
                slot = oldest
                self._freeze(pages, int(pages["stage_block"][slot]), slot)
            else:
                slot = self._grow(pages)
        pages["stage_block"][slot] = block
        pages["block_stage"][block] = slot
        pages["stage_fill"][slot] = 0
        pages["stage_tick"][slot] = self._tick

    def _grow(self, pages) -> int:
        """Double the staging pool (every slot is in use by a block written in the last step); returns
        the first new slot. Beyond the budgeted pool: more sequences are filling blocks than planned."""
        old = pages["stage"].shape[0]
        pages["stage"] = torch.cat([pages["stage"], torch.zeros_like(pages["stage"])])
        pages["stage_block"] = torch.cat([pages["stage_block"], torch.full((old,), -1, dtype=torch.long)])
        pages["stage_fill"] = torch.cat([pages["stage_fill"], torch.zeros(old, dtype=torch.long)])
        pages["stage_tick"] = torch.cat([pages["stage_tick"], torch.zeros(old, dtype=torch.long)])
        return old

    def _freeze(self, pages, block: int, slot: int) -> None:
        """Quantize a partial block from the tokens it has; later tokens reuse its (clamped) grid."""
        fill = max(int(pages["stage_fill"][slot]), 1)
        keys = pages["stage"][slot, :fill].float()  # (fill, H, D)
        codes, scale, lo = kvref.kivi_encode(keys, dim=0)
        pages["k"][block, :fill] = kvref.pack2(codes)
        pages["k_scale"][block], pages["k_lo"][block] = scale[0], lo[0]
        pages["stage_block"][slot] = -1
        pages["block_stage"][block] = -1

    def _write_partial(self, pages, blk: torch.Tensor, off: torch.Tensor, k: torch.Tensor) -> None:
        st = pages["block_stage"][blk]
        staged = st >= 0
        if staged.any():
            s, o = st[staged], off[staged]
            pages["stage"][s, o] = k[staged].to(torch.float16)
            pages["stage_fill"].scatter_reduce_(0, s, o + 1, "amax")
            pages["stage_tick"][s] = self._tick
        if (~staged).any():  # blocks pushed out of the pool: their frozen grid
            b, o = blk[~staged], off[~staged]
            codes = kvref.kivi_codes(k[~staged], pages["k_scale"][b], pages["k_lo"][b])
            pages["k"][b, o] = kvref.pack2(codes)

    def _finish(self, pages, blocks: torch.Tensor) -> None:
        """Blocks whose last slot was just written: quantize the staged ones from their exact keys."""
        st = pages["block_stage"][blocks]
        staged = st >= 0
        if staged.any():
            self._quantize_blocks(pages, blocks[staged], pages["stage"][st[staged]].float())

    # ---- read --------------------------------------------------------------------------------------
    def read(self, pages, block_table, n):
        k = self._keys_decode(pages["k"][block_table], pages["k_scale"][block_table],
                        pages["k_lo"][block_table])  # (nb, BS, H, D)
        st = pages["block_stage"][block_table]
        staged = st >= 0
        if staged.any():  # the filling block: exact keys
            k[staged] = pages["stage"][st[staged]].float()
        v = self._values_decode(pages["v"][block_table].flatten(0, 1)[:n],
                          pages["v_scale"][block_table].flatten(0, 1)[:n],
                          pages["v_lo"][block_table].flatten(0, 1)[:n])
        return k.flatten(0, 1)[:n], v
