"""Where each sequence of a flattened token batch lives in the paged KV cache (built by the model runner)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True, slots=True)
class PrefillSpan:
    """A multi-token query: rows [start, start+q_len) of the batch, context ctx_len tokens after it."""

    start: int
    q_len: int
    ctx_len: int  # tokens in the cache for this sequence including this chunk
    block_table: torch.Tensor  # (nb,) long
    window_slot: int = 0  # the sequence's row of the exact recent-window ring, when the cache has one


@dataclass(frozen=True, slots=True)
class PagedBatch:
    """Decode rows come first: rows [0, num_decodes) are one-token queries; prefill spans follow."""

    slot_mapping: torch.Tensor  # (T,) long: flat cache slot (block * block_size + offset) of each token
    num_decodes: int
    decode_block_tables: torch.Tensor  # (Bd, MB) long, padded with 0
    decode_context_lens: torch.Tensor  # (Bd,) long, including the current token
    decode_max_len: int
    prefills: tuple[PrefillSpan, ...]
    decode_slots: torch.Tensor | None = None  # (Bd, L) long flat slot of each context position (fast path)
    decode_mask: torch.Tensor | None = None  # (Bd, 1, 1, L) bool valid positions; None when all are valid
    decode_window_slots: tuple[int, ...] = ()  # (Bd,) recent-window ring row of each decode
    block_size: int = 0  # tokens per cache block (0: not given; batched reads of compressed pages need it)
