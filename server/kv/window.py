"""Exact recent window for compressed KV codecs: every running sequence's last W tokens in bf16.

KIVI-style residual (arXiv 2402.02750) for any non-plain codec: a query at position t reads the keys
and values of positions s in (t - W, t] exactly and every older one as the codec stored it. Recent
tokens carry most of the attention mass, so this removes most of the quantization loss at a fixed
cost per sequence (W tokens at bf16), while the codec's bytes per token still set the long-context
size. Data flow, per layer in paged_attention: codec.write (codes for every token, as without a
window) -> codec.read (decoded K/V of all cached tokens) -> prefill spans: attend() per sequence, exact
K/V for positions [max(0, n0 - W), n0) from the ring and [n0, n) from this step's fresh K/V; decode rows:
overlay() writes the exact values over the decoded ones for all rows at once -> update() / update_rows()
store each sequence's last min(q, W) new tokens in its ring.
Pages: `win_k`, `win_v` (S, W, Hkv, D) bf16 per layer, S = max running sequences; position p of the
sequence in ring row r sits at [r, p % W]. The scheduler gives each running request its row
(ScheduledSeq.window_slot) and takes it back when the request finishes or is preempted.
"""

from __future__ import annotations

import torch

RING_DTYPE = torch.bfloat16


def ring_bytes(rows: int, window: int, num_kv_heads: int, head_dim: int) -> int:
    """Bytes of one layer's K and V rings."""
    return 2 * rows * window * num_kv_heads * head_dim * torch.finfo(RING_DTYPE).bits // 8


def allocate(rows: int, window: int, num_kv_heads: int, head_dim: int) -> dict[str, torch.Tensor]:
    shape = (rows, window, num_kv_heads, head_dim)
    return {"win_k": torch.zeros(shape, dtype=RING_DTYPE), "win_v": torch.zeros(shape, dtype=RING_DTYPE)}


def _exact(ring: torch.Tensor, fresh: torch.Tensor, n0: int) -> tuple[int, torch.Tensor]:
    """ring (W, Hkv, D), fresh (q, Hkv, D) -> (lo, exact (n - lo, Hkv, D) fp32 for positions [lo, n))."""
    window = ring.shape[0]
    lo = max(0, n0 - window)
    old = ring[torch.arange(lo, n0) % window]  # (n0 - lo, Hkv, D)
    return lo, torch.cat([old.float(), fresh.to(RING_DTYPE).float()])


def attend(q: torch.Tensor, k_dec: torch.Tensor, v_dec: torch.Tensor, k_new: torch.Tensor, v_new: torch.Tensor,
           pages: dict[str, torch.Tensor], slot: int, n0: int, scale: float) -> torch.Tensor:
    """Queries q (q, H, D) at positions n0.. over n = n0 + q cached tokens -> (q, H, D) fp32.

    k_dec/v_dec (n, Hkv, D): every position as the codec stores it; k_new/v_new (q, Hkv, D): this step's."""
    window = pages["win_k"].shape[1]
    nq, n = q.shape[0], k_dec.shape[0]
    lo, k_ex = _exact(pages["win_k"][slot], k_new, n0)
    _, v_ex = _exact(pages["win_v"][slot], v_new, n0)
    rep = q.shape[1] // k_dec.shape[1]
    qh = q.float().transpose(0, 1)  # (H, q, D)
    scores = qh @ k_dec.float().repeat_interleave(rep, 1).permute(1, 2, 0) * scale  # (H, q, n)
    exact = qh @ k_ex.repeat_interleave(rep, 1).permute(1, 2, 0) * scale  # (H, q, n - lo)
    t = torch.arange(n0, n0 + nq)[:, None]  # (q, 1) query positions
    s = torch.arange(n)[None, :]  # (1, n) key positions
    causal = s <= t
    recent = causal & (s > t - window)  # (q, n): read exactly
    scores[..., lo:] = torch.where(recent[:, lo:], exact, scores[..., lo:])
    p = scores.masked_fill(~causal, float("-inf")).softmax(-1)  # (H, q, n)
    out = p.masked_fill(recent, 0.0) @ v_dec.float().repeat_interleave(rep, 1).transpose(0, 1)
    out += p[..., lo:].masked_fill(~recent[:, lo:], 0.0) @ v_ex.repeat_interleave(rep, 1).transpose(0, 1)
    return out.transpose(0, 1)  # (q, H, D)


def update(pages: dict[str, torch.Tensor], slot: int, n0: int, k_new: torch.Tensor, v_new: torch.Tensor) -> None:
    """Store the last min(q, W) of this step's tokens (positions n0..n0+q-1) in the sequence's ring row."""
    window = pages["win_k"].shape[1]
    m = min(k_new.shape[0], window)
    idx = torch.arange(n0 + k_new.shape[0] - m, n0 + k_new.shape[0]) % window
    pages["win_k"][slot, idx] = k_new[-m:].to(RING_DTYPE)
    pages["win_v"][slot, idx] = v_new[-m:].to(RING_DTYPE)


def overlay(k_dec: torch.Tensor, v_dec: torch.Tensor, k_new: torch.Tensor, v_new: torch.Tensor,
            pages: dict[str, torch.Tensor], slots: tuple[int, ...], n0: torch.Tensor) -> None:
    """Decode rows, in place: row b's query sits at position t = n0[b]; positions (t - W, t) are written
    over k_dec/v_dec (Bd, L, Hkv, D) fp32 from its ring, position t from this step's k_new/v_new (Bd, Hkv,
    D) at the ring's precision, the same values attend() reads for a one-token query."""
    window = pages["win_k"].shape[1]
    rows = torch.tensor(slots, dtype=torch.long)  # (Bd,)
    pos = n0[:, None] + torch.arange(1 - window, 0)[None, :]  # (Bd, W-1) positions before t
    ok = pos >= 0
    b, p = torch.arange(len(slots))[:, None].expand_as(pos)[ok], pos[ok]
    k_dec[b, p] = pages["win_k"][rows[b], p % window].float()
    v_dec[b, p] = pages["win_v"][rows[b], p % window].float()
    every = torch.arange(len(slots))
    k_dec[every, n0] = k_new.to(RING_DTYPE).float()
    v_dec[every, n0] = v_new.to(RING_DTYPE).float()


def update_rows(pages: dict[str, torch.Tensor], slots: tuple[int, ...], n0: torch.Tensor, k_new: torch.Tensor,
                v_new: torch.Tensor) -> None:
    """Decode rows: store each row's one new token (position n0[b]) in its ring row. k_new (Bd, Hkv, D)."""
    rows = torch.tensor(slots, dtype=torch.long)
    window = pages["win_k"].shape[1]
    pages["win_k"][rows, n0 % window] = k_new.to(RING_DTYPE)
    pages["win_v"][rows, n0 % window] = v_new.to(RING_DTYPE)
