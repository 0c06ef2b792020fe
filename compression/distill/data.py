"""Training batches for distillation: a text spec -> one token stream -> (B, L) windows per step.

The text is tokenized once without special tokens (as calibration and eval do). The windows of step i
are drawn from a generator seeded by (seed, i) alone, so a run is reproducible under --seed and a
resumed run sees exactly the batches the uninterrupted run would have seen.
"""

from __future__ import annotations

import torch

from presso.compression.checkpoint.errors import PressoInputError
from presso.compression.data.texts import load_text


def token_stream(tokenizer, spec: str, seq_len: int) -> torch.Tensor:
    """-> (T,) int64 token ids of the whole text; refuses texts shorter than one window."""
    ids = tokenizer(load_text(spec), add_special_tokens=False, return_attention_mask=False)["input_ids"]
    ids = torch.tensor(ids, dtype=torch.long)
    if ids.numel() < seq_len:
        raise PressoInputError(f"--text {spec!r} has {ids.numel()} tokens, fewer than --seq-len {seq_len}")
    return ids


def batch_for_step(ids: torch.Tensor, step: int, seed: int, batch_size: int, seq_len: int) -> torch.Tensor:
    """ids (T,) -> (batch_size, seq_len) int64 windows at random offsets fixed by (seed, step)."""
    gen = torch.Generator().manual_seed((seed * 1_000_003 + step) % (1 << 63))
    starts = torch.randint(0, ids.numel() - seq_len + 1, (batch_size,), generator=gen)  # (B,)
    return torch.stack([ids[s : s + seq_len] for s in starts.tolist()])
