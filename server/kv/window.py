"""Exact recent window for compressed KV codecs: every running sequence's last W tokens in bf16.

KIVI-style residual (arXiv 2402.02750) for any non-plain codec: a query at position t reads the keys
and values of positions s in (t - W, t] exactly and every older one as the codec stored it. Recent
tokens carry most of the attention mass, so this removes most of the quantization loss at a fixed
cost per sequence (W tokens at bf16), while the codec's bytes per token still set the long-context
size. `WindowedCodec` wraps the codec: write() stores codes for every token, as without a window;
attend() reads the decoded K/V of all cached tokens, then prefill spans: attend() per sequence, exact K/V
for positions [max(0, n0 - W), n0) from the ring and [n0, n) from this step's fresh K/V; decode rows:
overlay() writes the exact values over the decoded ones for all rows at once; last, update() /
update_rows() store each sequence's last min(q, W) new tokens in its ring. Independent of a model's
sliding-window layers (which limit what a query sees at all): both compose, attend() takes the layer's.
Rings: ring_k, ring_v (S, W, Hkv, D) bf16 per layer, S = max running sequences; position p of the
sequence in ring row r sits at [r, p % W]. The scheduler gives each running request its row
(PagedBatch.decode_seq_slots / PrefillSpan.seq_slot) and takes it back when the request finishes or is
preempted.
"""

from __future__ import annotations

import torch

from presso.kernels.attention.reference import softcap_scores
from presso.server.kv.attend import decode_rows
from presso.server.kv.codecs import KVCodec

RING_DTYPE = torch.bfloat16


def ring_bytes(rows: int, window: int, num_kv_heads: int, head_dim: int) -> int:
    """Bytes of one layer's K and V rings."""
    return 2 * rows * window * num_kv_heads * head_dim * torch.finfo(RING_DTYPE).bits // 8


def _exact(ring: torch.Tensor, fresh: torch.Tensor, n0: int) -> tuple[int, torch.Tensor]:
    """ring (W, Hkv, D), fresh (q, Hkv, D) -> (lo, exact (n - lo, Hkv, D) fp32 for positions [lo, n))."""
    window = ring.shape[0]
    lo = max(0, n0 - window)
    old = ring[torch.arange(lo, n0, device=ring.device) % window]  # (n0 - lo, Hkv, D)
    return lo, torch.cat([old.float(), fresh.to(RING_DTYPE).float()])


def attend(q: torch.Tensor, k_dec: torch.Tensor, v_dec: torch.Tensor, k_new: torch.Tensor, v_new: torch.Tensor,
           ring_k: torch.Tensor, ring_v: torch.Tensor, n0: int, scale: float, lo: int = 0, sliding: int = 0,
           softcap: float = 0.0) -> torch.Tensor:
    """Queries q (q, H, D) at positions n0.. over cached positions [lo, n), n = n0 + q -> (q, H, D) fp32.

    k_dec/v_dec (n - lo, Hkv, D): those positions as the codec stores them; k_new/v_new (q, Hkv, D): this
    step's; ring_k/ring_v (W, Hkv, D): the sequence's ring row. `sliding` is the layer's own sliding
    window (0: full attention; lo > 0 only with one), `softcap` its score cap (0: none)."""
    window = ring_k.shape[0]
    nq, n = q.shape[0], lo + k_dec.shape[0]
    lo_ex, k_ex = _exact(ring_k, k_new, n0)
    _, v_ex = _exact(ring_v, v_new, n0)
    cut = max(lo, lo_ex)  # exact values are needed from here on: earlier ones are out of the layer's window
    k_ex, v_ex, off = k_ex[cut - lo_ex:], v_ex[cut - lo_ex:], cut - lo
    rep = q.shape[1] // k_dec.shape[1]
    qh = q.float().transpose(0, 1)  # (H, q, D)
    scores = softcap_scores(qh @ k_dec.float().repeat_interleave(rep, 1).permute(1, 2, 0) * scale, softcap)
    exact = softcap_scores(qh @ k_ex.repeat_interleave(rep, 1).permute(1, 2, 0) * scale, softcap)  # (H, q, n - cut)
    t = torch.arange(n0, n0 + nq, device=q.device)[:, None]  # (q, 1) query positions
    s = torch.arange(lo, n, device=q.device)[None, :]  # (1, n - lo) key positions
    causal = s <= t
    if sliding:
        causal &= s > t - sliding
    recent = causal & (s > t - window)  # (q, n - lo): read exactly
    scores[..., off:] = torch.where(recent[:, off:], exact, scores[..., off:])
    p = scores.masked_fill(~causal, float("-inf")).softmax(-1)  # (H, q, n - lo)
    out = p.masked_fill(recent, 0.0) @ v_dec.float().repeat_interleave(rep, 1).transpose(0, 1)
    out += p[..., off:].masked_fill(~recent[:, off:], 0.0) @ v_ex.repeat_interleave(rep, 1).transpose(0, 1)
    return out.transpose(0, 1)  # (q, H, D)


def update(ring_k: torch.Tensor, ring_v: torch.Tensor, n0: int, k_new: torch.Tensor, v_new: torch.Tensor) -> None:
    """Store the last min(q, W) of this step's tokens (positions n0..n0+q-1) in one ring row (W, Hkv, D)."""
    window = ring_k.shape[0]
    m = min(k_new.shape[0], window)
    idx = torch.arange(n0 + k_new.shape[0] - m, n0 + k_new.shape[0], device=ring_k.device) % window
    ring_k[idx] = k_new[-m:].to(RING_DTYPE)
    ring_v[idx] = v_new[-m:].to(RING_DTYPE)


def overlay(k_dec: torch.Tensor, v_dec: torch.Tensor, k_new: torch.Tensor, v_new: torch.Tensor,
            ring_k: torch.Tensor, ring_v: torch.Tensor, slots: tuple[int, ...], n0: torch.Tensor,
            base: torch.Tensor | None = None) -> None:
    """Decode rows, in place: row b's query sits at position t = n0[b]; positions (t - W, t) are written
    over k_dec/v_dec (Bd, L, Hkv, D) fp32 (column j holds position base[b] + j; base 0 by default) from
    its ring row slots[b] of ring_k/ring_v (S, W, Hkv, D), position t from this step's k_new/v_new
    (Bd, Hkv, D) at the ring's precision, the same values attend() reads for a one-token query. Positions
    before base[b] were not read (out of a sliding window) and are skipped."""
    window, dev = ring_k.shape[1], ring_k.device
    base = torch.zeros_like(n0) if base is None else base
    rows = torch.tensor(slots, dtype=torch.long, device=dev)  # (Bd,)
    pos = n0[:, None] + torch.arange(1 - window, 0, device=dev)[None, :]  # (Bd, W-1) positions before t
    ok = (pos >= 0) & (pos >= base[:, None])
    b, p = torch.arange(len(slots), device=dev)[:, None].expand_as(pos)[ok], pos[ok]
    k_dec[b, p - base[b]] = ring_k[rows[b], p % window].float()
    v_dec[b, p - base[b]] = ring_v[rows[b], p % window].float()
    every = torch.arange(len(slots), device=dev)
    k_dec[every, n0 - base] = k_new.to(RING_DTYPE).float()
    v_dec[every, n0 - base] = v_new.to(RING_DTYPE).float()


def update_rows(ring_k: torch.Tensor, ring_v: torch.Tensor, slots: tuple[int, ...], n0: torch.Tensor,
                k_new: torch.Tensor, v_new: torch.Tensor) -> None:
    """Decode rows: store each row's one new token (position n0[b]) in its ring row. k_new (Bd, Hkv, D)."""
    rows = torch.tensor(slots, dtype=torch.long, device=ring_k.device)
    window = ring_k.shape[1]
    ring_k[rows, n0 % window] = k_new.to(RING_DTYPE)
    ring_v[rows, n0 % window] = v_new.to(RING_DTYPE)


class WindowedCodec(KVCodec):
    """`inner`'s pages and codes, plus each running sequence's last `window` tokens exact in bf16 rings
    (rows = the most sequences running at once). The rings are this wrapper's state, not pages."""

    plain = False

    def __init__(self, inner: KVCodec, window: int, rows: int):
        super().__init__(inner.num_kv_heads, inner.head_dim, block_size=inner.block_size)
        if inner.plain:
            raise ValueError(f"kv_window applies to compressed KV codecs; {inner.name!r} already stores exact values")
        self.inner, self.window, self.name, self.pre_rope = inner, window, inner.name, inner.pre_rope
        shape = (rows, window, inner.num_kv_heads, inner.head_dim)
        self.ring_k, self.ring_v = torch.zeros(shape, dtype=RING_DTYPE), torch.zeros(shape, dtype=RING_DTYPE)

    def bytes_per_token(self) -> int:
        return self.inner.bytes_per_token()

    def state_bytes(self) -> int:
        return ring_bytes(self.ring_k.shape[0], self.window, self.num_kv_heads, self.head_dim)

    def allocate(self, num_blocks: int, block_size: int) -> dict[str, torch.Tensor]:
        return self.inner.allocate(num_blocks, block_size)

    def write(self, pages, slots, k, v) -> None:
        self.inner.write(pages, slots, k, v)

    def read(self, pages, block_table, n):
        return self.inner.read(pages, block_table, n)

    def attend(self, q, k, v, pages, batch, scale, rope=None, window=0, softcap=0.0):
        out = super().attend(q, k, v, pages, batch, scale, rope, window, softcap)
        # after every read: the rings hold the positions before this step
        nd = batch.num_decodes
        if nd:
            update_rows(self.ring_k, self.ring_v, batch.decode_seq_slots, batch.decode_context_lens - 1, k[:nd], v[:nd])
        for span in batch.prefills:
            rows = slice(span.start, span.start + span.q_len)
            update(self.ring_k[span.seq_slot], self.ring_v[span.seq_slot], span.ctx_len - span.q_len,
                   k[rows], v[rows])
        return out

    def attend_decodes(self, q, k_new, v_new, pages, batch, scale, rope, window=0, softcap=0.0):
        def exact(kk: torch.Tensor, vv: torch.Tensor, base: torch.Tensor) -> None:
            overlay(kk, vv, k_new, v_new, self.ring_k, self.ring_v, batch.decode_seq_slots,
                    batch.decode_context_lens - 1, base)
        return decode_rows(q, self, rope, pages, batch, scale, exact, window, softcap)

    def attend_span(self, q, k, v, k_new, v_new, span, scale, lo=0, window=0, softcap=0.0):
        return attend(q, k, v, k_new, v_new, self.ring_k[span.seq_slot], self.ring_v[span.seq_slot],
                      span.ctx_len - span.q_len, scale, lo, window, softcap)
