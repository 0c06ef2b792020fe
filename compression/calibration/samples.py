"""Calibration windows: a text spec -> (N, L) int64 token ids.

`mix[...]` (the default): windows drawn per corpus at seeded offsets (mix.py). Any other spec: the text is
tokenized once without special tokens (as for evaluation); window i starts at i * (tokens // N), so N
windows of L tokens sample the beginning, middle and end of the text (the seed is not used).
"""

from __future__ import annotations

import torch

from presso.compression.calibration.mix import is_mix, mix_windows
from presso.compression.checkpoint.errors import PressoInputError
from presso.compression.data.texts import load_text


def calibration_windows(tokenizer, spec: str, samples: int, length: int, seed: int = 0) -> torch.Tensor:
    if samples < 1:
        raise PressoInputError(f"--calib-samples must be positive, got {samples}")
    if length < 2:
        raise PressoInputError(f"--calib-len must be at least 2, got {length}")
    if is_mix(spec):
        return mix_windows(tokenizer, spec, samples, length, seed)
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
