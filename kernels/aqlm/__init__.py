"""AQLM (additive quantization) kernels, entered in presso.kernels.registry like every op family.

Ops (same signatures for every backend; the layout is specified in reference.py):
- "aqlm_matmul" (reference, cpu, triton): (x, codes, codebooks, scales, bias) -> x @ W^T in x's dtype;
- "aqlm_dequantize" (reference, cpu): (codes, codebooks, scales) -> W (out_features, in_features) fp32.
Layers resolve them once at load with `registry.get(op)` (the engine inside `registry.select`); backend
choice and `PRESSO_KERNEL_BACKEND` are the registry's. `aqlm_matmul` / `aqlm_dequantize` below are
conveniences for one-off calls (tests, compression) that resolve per call.
"""

from __future__ import annotations

import torch

from presso.kernels import registry
from presso.kernels.aqlm import cpu, reference
from presso.kernels.aqlm import triton as triton_kernel

registry.register("aqlm_matmul", "reference")(reference.matmul)
registry.register("aqlm_matmul", "cpu")(cpu.matmul)
if triton_kernel.available():
    registry.register("aqlm_matmul", "triton")(triton_kernel.matmul)
registry.register("aqlm_dequantize", "reference")(reference.dequantize)


@registry.register("aqlm_dequantize", "cpu")
def _cpu_dequantize(codes: torch.Tensor, codebooks: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """The CPU kernel's fast full decode; it covers out_group_size 1 (codebooks (M, C, 1, 8)) only."""
    if codebooks.shape[2] != 1:
        return reference.dequantize(codes, codebooks, scales)
    return cpu.dequantize(codes, codebooks, scales)


def aqlm_matmul(
    x: torch.Tensor, codes: torch.Tensor, codebooks: torch.Tensor, scales: torch.Tensor,
    bias: torch.Tensor | None = None, backend: str | None = None,
) -> torch.Tensor:
    """x (..., in_features) -> (..., out_features) in x's dtype, on the backend the registry picks."""
    return registry.get("aqlm_matmul", x.device.type, backend)(x, codes, codebooks, scales, bias)


def aqlm_dequantize(
    codes: torch.Tensor, codebooks: torch.Tensor, scales: torch.Tensor, backend: str | None = None
) -> torch.Tensor:
    """The dense weight (out_features, in_features), fp32 (see reference.dequantize)."""
    return registry.get("aqlm_dequantize", codes.device.type, backend)(codes, codebooks, scales)


__all__ = ["aqlm_dequantize", "aqlm_matmul"]
