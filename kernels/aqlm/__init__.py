"""AQLM (additive quantization) kernels and their dispatcher: the API callers use.

`aqlm_matmul(x, codes, codebooks, scales, bias=None, backend=None)` -> x @ W^T and
`aqlm_dequantize(codes, codebooks, scales)` -> W, for the layout specified in reference.py. The
backend is, in order: the `backend` argument, `PRESSO_KERNEL_BACKEND`, else by device (CUDA with
triton -> "triton", otherwise "cpu"). The linear layers of presso.server and presso.compression call
these functions; the conformance test compares every entry of BACKENDS with "reference". The
backends are also entered in presso.kernels.registry as op "aqlm_matmul" (same signature).
"""

from __future__ import annotations

import os

import torch

from presso.kernels import envs, registry
from presso.kernels.aqlm import cpu, reference
from presso.kernels.aqlm import triton as triton_kernel

BACKENDS = {"reference": reference.matmul, "cpu": cpu.matmul, "triton": triton_kernel.matmul}
for _name, _fn in BACKENDS.items():
    if _name != "triton" or triton_kernel.available():
        registry.register("aqlm_matmul", _name)(_fn)


def pick_backend(device: torch.device, backend: str | None = None) -> str:
    """The backend name for tensors on `device` (see module docstring)."""
    name = backend or envs.kernel_backend()
    if name is None:
        return "triton" if device.type == "cuda" and triton_kernel.available() else "cpu"
    if name not in BACKENDS:
        raise ValueError(f"unknown AQLM kernel backend {name!r}; choose one of {', '.join(BACKENDS)}")
    if name == "triton" and device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
        raise ValueError("the triton backend needs CUDA tensors (or TRITON_INTERPRET=1 on CPU)")
    if name == "cpu" and device.type != "cpu":
        raise ValueError(f"the cpu backend needs CPU tensors, got {device}")
    return name


def aqlm_matmul(
    x: torch.Tensor,
    codes: torch.Tensor,
    codebooks: torch.Tensor,
    scales: torch.Tensor,
    bias: torch.Tensor | None = None,
    backend: str | None = None,
) -> torch.Tensor:
    """x (..., in_features) -> (..., out_features) in x's dtype."""
    return BACKENDS[pick_backend(x.device, backend)](x, codes, codebooks, scales, bias)


def aqlm_dequantize(
    codes: torch.Tensor, codebooks: torch.Tensor, scales: torch.Tensor, backend: str | None = None
) -> torch.Tensor:
    """The dense weight (out_features, in_features), fp32 (see reference.dequantize)."""
    if pick_backend(codes.device, backend) == "cpu" and codebooks.shape[2] == 1:
        return cpu.dequantize(codes, codebooks, scales)
    return reference.dequantize(codes, codebooks, scales)


__all__ = ["BACKENDS", "aqlm_dequantize", "aqlm_matmul", "pick_backend"]
