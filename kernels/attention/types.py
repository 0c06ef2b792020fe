"""Where each sequence of a flattened token batch lives in the paged KV cache (built by the model runner).

`index_decodes(batch)` adds the decode rows' per-position slots and validity mask, computed once per
step (by the KV cache's prepare()) and shared by every layer's attention.
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


def decode_index(batch: PagedBatch) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(Bd, L) flat slots of every decode row's context and its (Bd, 1, 1, L) validity mask (None if full)."""
    length, bs = batch.decode_max_len, batch.block_size
    pos = torch.arange(length, device=batch.decode_block_tables.device)
    slots = batch.decode_block_tables.gather(1, (pos // bs).expand(batch.num_decodes, -1))
    slots = slots * bs + pos % bs  # (Bd, L)
    lens = batch.decode_context_lens
    if bool((lens == length).all()):
        return slots, None
    return slots, (pos[None, :] < lens[:, None])[:, None, None, :]


def index_decodes(batch: PagedBatch) -> PagedBatch:
    """The batch with decode_slots/decode_mask filled in (unchanged when it has no decode rows or has them)."""
    if not batch.num_decodes or batch.decode_slots is not None:
        return batch
    slots, mask = decode_index(batch)
    return dataclasses.replace(batch, decode_slots=slots, decode_mask=mask)
