"""Where each sequence of a flattened token batch lives in the paged KV cache (built by the model runner).

`index_decodes(batch, windows)` adds the decode rows' per-position slots and validity mask, computed once
per step (by the KV cache's prepare()) and shared by every layer's attention: one index over each row's
whole context for full-attention layers, and one per sliding-window size W over only each row's last W
positions (right-aligned: column j of a row of context n is position n - L + j), so a sliding layer
reads W tokens per decode however long the sequence is.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch


@dataclass(frozen=True, slots=True)
class PrefillSpan:
    """A multi-token query: rows [start, start+q_len) of the batch, context ctx_len tokens after it."""

    start: int
    q_len: int
    ctx_len: int  # tokens in the cache for this sequence including this chunk
    block_table: torch.Tensor  # (nb,) long
    seq_slot: int = 0  # the sequence's row of per-sequence cache state (e.g. an exact recent window)


@dataclass(frozen=True, slots=True)
class PagedBatch:
    """Decode rows come first: rows [0, num_decodes) are one-token queries; prefill spans follow."""

    slot_mapping: torch.Tensor  # (T,) long: flat cache slot (block * block_size + offset) of each token
    num_decodes: int
    decode_block_tables: torch.Tensor  # (Bd, MB) long, padded with 0
    decode_context_lens: torch.Tensor  # (Bd,) long, including the current token
    decode_max_len: int
    prefills: tuple[PrefillSpan, ...]
    block_size: int  # tokens per cache block
    decode_seq_slots: tuple[int, ...] = ()  # (Bd,) per-sequence state row of each decode (see PrefillSpan)
    decode_slots: torch.Tensor | None = None  # (Bd, L) long flat slot of each context position
    decode_mask: torch.Tensor | None = None  # (Bd, 1, 1, L) bool valid positions; None when all are valid
    # (W, (Bd, Lw) slots, (Bd, 1, 1, Lw) mask or None) per sliding window W < decode_max_len, Lw = W
    window_index: tuple[tuple[int, torch.Tensor, torch.Tensor | None], ...] = ()


def decode_index(batch: PagedBatch, window: int = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(Bd, L) flat slots of every decode row's context and its (Bd, 1, 1, L) validity mask (None if full).

    window 0: L = decode_max_len, left-aligned (column j is position j). window W < decode_max_len: L = W,
    right-aligned (column j of a row of context n is position n - W + j), the positions a query at n - 1
    sees through a window of W (s > t - W)."""
    length, bs = batch.decode_max_len, batch.block_size
    lens = batch.decode_context_lens
    if window and window < length:
        pos = lens[:, None] - window + torch.arange(window, device=lens.device)[None, :]  # (Bd, W)
        valid = pos >= 0
        pos = pos.clamp(min=0)
        slots = batch.decode_block_tables.gather(1, pos // bs) * bs + pos % bs
        return slots, None if bool(valid.all()) else valid[:, None, None, :]
    pos = torch.arange(length, device=batch.decode_block_tables.device)
    slots = batch.decode_block_tables.gather(1, (pos // bs).expand(batch.num_decodes, -1))
    slots = slots * bs + pos % bs  # (Bd, L)
    if bool((lens == length).all()):
        return slots, None
    return slots, (pos[None, :] < lens[:, None])[:, None, None, :]


def index_decodes(batch: PagedBatch, windows: tuple[int, ...] = ()) -> PagedBatch:
    """The batch with decode_slots/decode_mask (and each sliding window's index) filled in; unchanged when
    it has no decode rows or is already indexed."""
    if not batch.num_decodes or batch.decode_slots is not None:
        return batch
    slots, mask = decode_index(batch)
    wins = tuple((w, *decode_index(batch, w)) for w in sorted(set(windows)) if 0 < w < batch.decode_max_len)
    return dataclasses.replace(batch, decode_slots=slots, decode_mask=mask, window_index=wins)


def decode_view(batch: PagedBatch, window: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The decode rows' (slots, mask) for a layer with this window (0: full attention)."""
    if window and window < batch.decode_max_len:
        for w, slots, mask in batch.window_index:
            if w == window:
                return slots, mask
        return decode_index(batch, window)
    batch = index_decodes(batch)
    return batch.decode_slots, batch.decode_mask


def window_start(ctx_len: int, q_len: int, window: int, block_size: int) -> int:
    """First position a prefill span must read (block-aligned): its first query at ctx_len - q_len sees
    positions s > t - window, so whole blocks before that are never read (and may be freed)."""
    if not window:
        return 0
    return max(0, ctx_len - q_len - window + 1) // block_size * block_size
