"""The integer grid every scalar method shares: scales/zero points, quantize, dequantize.

Conventions match compressed-tensors (so its packer re-derives exactly our codes): signed codes in
[-2^(b-1), 2^(b-1)-1]; q = clamp(round(w / scale) + zero, qmin, qmax); w_hat = (q - zero) * scale.
Symmetric grids have zero = 0 and scale = absmax / (2^(b-1) - 0.5) (GPTQ's convention);
asymmetric grids map [min(w,0), max(w,0)] onto the full code range. A method's result is the kernels'
QuantizedWeight (presso.kernels.quant.types, packed once by `to_weight`); `spec_of` / `zero_of` read a
grid back from one. `scale_dtype` float16 stores scales
in half precision (4.25 instead of 4.5 bits per weight at group 64): every grid rounds its scales to fp16
values (kept in fp32 tensors), so the stored scales reproduce the quantizer's reconstruction exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from presso.kernels.quant.types import QuantizedWeight

FP16_TINY = 2.0**-14  # smallest normal fp16: smaller scales lose precision (weights that small are ~0 anyway)
FP16_MAX = 65504.0


@dataclass(frozen=True, slots=True)
class GridSpec:
    """How one Linear is quantized: bit width, group size along in-features (None = per channel)."""

    bits: int
    group_size: int | None
    symmetric: bool
    scale_dtype: str = "float32"  # "float32" | "float16": how the checkpoint stores the scales

    @property
    def qmin(self) -> int:
        return -(2 ** (self.bits - 1))

    @property
    def qmax(self) -> int:
        return 2 ** (self.bits - 1) - 1

    def groups(self, in_features: int) -> int:
        return 1 if self.group_size is None else in_features // self.group_size

    def width(self, in_features: int) -> int:
        return in_features if self.group_size is None else self.group_size

    def round_scale(self, scale: torch.Tensor) -> torch.Tensor:
        """scale (...) fp32 > 0 -> the nearest value the checkpoint can store (fp32; normal fp16 values)."""
        if self.scale_dtype == "float32":
            return scale
        assert self.scale_dtype == "float16", self.scale_dtype
        return scale.clamp(min=FP16_TINY, max=FP16_MAX).half().float()


def grid_params(w: torch.Tensor, spec: GridSpec, shrink: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale and zero point for rows of `w`. w (R, C) fp32 -> scale (R,), zero (R,) (integral fp32).

    Each row is one quantization group; `shrink` < 1 clips the range (used by clip searches).
    """
    lo = w.amin(dim=1).clamp(max=0) * shrink  # (R,)
    hi = w.amax(dim=1).clamp(min=0) * shrink  # (R,)
    if spec.symmetric:
        absmax = torch.maximum(hi, -lo)
        scale = absmax / (spec.qmax + 0.5)
        scale = spec.round_scale(torch.where(scale > 0, scale, torch.ones_like(scale)))
        return scale, torch.zeros_like(scale)
    scale = (hi - lo) / (spec.qmax - spec.qmin)
    scale = spec.round_scale(torch.where(scale > 0, scale, torch.ones_like(scale)))
    zero = torch.clamp(torch.round(spec.qmin - lo / scale), spec.qmin, spec.qmax)
    return scale, zero


def quantize_codes(w: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, spec: GridSpec) -> torch.Tensor:
    """w (R, C), scale/zero broadcastable to it -> codes (R, C) fp32 holding integers in [qmin, qmax]."""
    return torch.clamp(torch.round(w / scale) + zero, spec.qmin, spec.qmax)


def group_view(w: torch.Tensor, spec: GridSpec) -> torch.Tensor:
    """w (out, in) -> (out * groups, width): one row per quantization group."""
    return w.reshape(-1, spec.width(w.shape[1]))


def rtn_quantize(
    w: torch.Tensor, spec: GridSpec, shrink: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Round-to-nearest. w (out, in) fp32 -> codes (out, in) int8, scale (out, G) fp32, zero (out, G) int8."""
    out_features, in_features = w.shape
    rows = group_view(w.float(), spec)  # (out*G, width)
    scale, zero = grid_params(rows, spec, shrink)
    codes = quantize_codes(rows, scale[:, None], zero[:, None], spec)
    groups = spec.groups(in_features)
    return (
        codes.reshape(out_features, in_features).to(torch.int8),
        scale.reshape(out_features, groups),
        zero.reshape(out_features, groups).to(torch.int8),
    )


def dequantize(codes: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, spec: GridSpec) -> torch.Tensor:
    """codes (out, in) int8, scale/zero (out, G) -> w_hat (out, in) in scale's dtype."""
    out_features, in_features = codes.shape
    width = spec.width(in_features)
    q = codes.to(scale.dtype).reshape(out_features, -1, width)  # (out, G, width)
    w = (q - zero.to(scale.dtype)[..., None]) * scale[..., None]
    return w.reshape(out_features, in_features)


def to_weight(codes: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, spec: GridSpec) -> QuantizedWeight:
    """codes (out, in) integral, scale (out, G) fp32, zero (out, G) integral on `spec` -> QuantizedWeight
    (zero dropped when the grid is symmetric: it is all 0 there)."""
    return QuantizedWeight.from_codes(codes.to(torch.int8), scale, None if spec.symmetric else zero,
                                      spec.bits, spec.group_size)


def spec_of(qw: QuantizedWeight) -> GridSpec:
    return GridSpec(qw.num_bits, qw.group_size, qw.symmetric)


def zero_of(qw: QuantizedWeight) -> torch.Tensor:
    """(out, G) int8 zero points, zeros for a symmetric grid."""
    return torch.zeros(qw.scale.shape, dtype=torch.int8) if qw.zero is None else qw.zero
