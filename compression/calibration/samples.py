"""Calibration windows: a text spec -> (N, L) int64 token ids, spread evenly over the whole text.

The text is tokenized once without special tokens (as for evaluation); window i starts at
i * (tokens // N), so N windows of L tokens sample the beginning, middle and end of the text.
"""

from __future__ import annotations

import torch

from presso.compression.checkpoint.errors import PressoInputError
from presso.compression.data.texts import load_text


def calibration_windows(tokenizer, spec: str, samples: int, length: int) -> torch.Tensor:
    if samples < 1:
        raise PressoInputError(f"--calib-samples must be positive, got {samples}")
    if length < 2:
        raise PressoInputError(f"--calib-len must be at least 2, got {length}")
    ids = tokenizer(load_text(spec), add_special_tokens=False, return_attention_mask=False)["input_ids"]
    ids = torch.tensor(ids, dtype=torch.long)  # (T,)
    if ids.numel() < samples * length:
        raise PressoInputError(
            f"calibration text {spec!r} has {ids.numel()} tokens, fewer than --calib-samples {samples} "
            f"x --calib-len {length}"
        )
    stride = ids.numel() // samples
    starts = torch.arange(samples) * stride  # (N,)
    return torch.stack([ids[s : s + length] for s in starts.tolist()])  # (N, L)
