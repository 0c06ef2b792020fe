"""`rtn`: round-to-nearest, the calibration-free baseline (min-max grid per group or per channel).

Linear weight (out, in) fp32 -> grid.rtn_quantize -> QuantizedWeight. No calibration data is read.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict

from presso.compression.methods.grid import GridSpec, rtn_quantize, to_weight
from presso.compression.methods.registry import LayerStats, Method, QuantizedWeight, register_method


class RtnParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def quantize_rtn(
    linear: torch.nn.Linear, stats: LayerStats | None, spec: GridSpec, params: BaseModel
) -> QuantizedWeight:
    codes, scale, zero = rtn_quantize(linear.weight.detach().float(), spec)
    return to_weight(codes, scale, zero, spec)


RTN = register_method(
    Method(name="rtn", quantize=quantize_rtn, params=RtnParams, description="round to nearest, min-max grid")
)
