"""Exact byte accounting of a mixed-precision checkpoint, before anything is quantized.

A Linear (out, in) written by compressed-tensors' pack-quantized format holds: `weight_packed`
int32 (out, ceil(in * bits / 32)), `weight_scale` (out, G) in the model's dtype (fp32 here),
`weight_shape` int64 (2,), and for asymmetric grids `weight_zero_point` int32 (ceil(out * bits / 32), G).
These are exactly the tensors quantize/report.py sums for report.json's bits_per_weight, so a target in
bits per weight means the same thing before and after. The whole checkpoint adds every other parameter
at its stored size (fp32) and the safetensors header, estimated from above per tensor entry.
"""

from __future__ import annotations

import math

import torch

from presso.compression.methods.grid import GridSpec

SCALE_BYTES = 4  # weight_scale is written in the model's dtype; compress loads fp32
HEADER_ENTRY_BYTES = 160  # upper bound of one safetensors header entry {"name":{dtype,shape,data_offsets}}


def linear_bytes(out_features: int, in_features: int, spec: GridSpec) -> int:
    groups = spec.groups(in_features)
    packed = out_features * math.ceil(in_features * spec.bits / 32) * 4
    scale = out_features * groups * SCALE_BYTES
    zero = 0 if spec.symmetric else math.ceil(out_features * spec.bits / 32) * groups * 4
    return packed + scale + zero + 16  # + weight_shape (2,) int64


def linear_tensor_count(spec: GridSpec) -> int:
    return 3 if spec.symmetric else 4


def fixed_bytes(model: torch.nn.Module, targeted: set[str]) -> tuple[int, int]:
    """-> (bytes of every parameter outside the targeted Linears' weights, number of such tensors).

    named_parameters() lists a tied embedding/lm_head once, as save_pretrained writes it.
    """
    total, count = 0, 0
    for name, param in model.named_parameters():
        if name.removesuffix(".weight") in targeted and name.endswith(".weight"):
            continue
        total += param.numel() * param.element_size()
        count += 1
    return total, count
