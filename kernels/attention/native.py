"""Decode attention on the native kernel (kernels/native/paged_decode.c): the fast CPU path for the
one-token rows of a step, reading K/V straight from the pages.

`decode(...)` returns None when the kernel is not available (no compiler, PRESSO_NATIVE_KERNELS=0) or
the inputs are not its layout, and the caller keeps the torch path. Eager calls go to the library
directly; under torch.compile the call is the custom op `presso::paged_decode` (opaque to the graph,
with a shape-only fake). Its readable twin is attend_padded() in cpu.py (tests/kernels compares them).
"""

from __future__ import annotations

import ctypes

import torch

from presso.kernels.native.build import library

_P, _I64, _F = ctypes.c_void_p, ctypes.c_int64, ctypes.c_float
_DTYPES = {torch.bfloat16: 1, torch.float32: 0}


def _lib():
    lib = library("paged_decode")
    if lib is not None and not getattr(lib, "_presso_typed", False):
        lib.presso_paged_decode.argtypes = [_P, _P, _P, ctypes.c_int, _P, _P, _I64, _I64, _I64, _I64, _I64,
                                            _F, _F, _P, ctypes.c_int]
        lib.presso_paged_decode.restype = ctypes.c_int
        lib._presso_typed = True
    return lib


def _run(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, slots: torch.Tensor,
         mask: torch.Tensor | None, scale: float, softcap: float) -> torch.Tensor:
    """q (Bd, H, D) fp32 contiguous, pages (NB, BS, Hkv, D) contiguous, slots (Bd, L) int64 contiguous,
    mask (Bd, L) uint8/bool contiguous or None -> (Bd, H, D) fp32."""
    bd, h, d = q.shape
    hkv = k_cache.shape[2]
    out = torch.empty_like(q)
    rc = _lib().presso_paged_decode(
        q.data_ptr(), k_cache.data_ptr(), v_cache.data_ptr(), _DTYPES[k_cache.dtype], slots.data_ptr(),
        None if mask is None else mask.data_ptr(), bd, h, hkv, d, slots.shape[1], scale, softcap,
        out.data_ptr(), torch.get_num_threads())
    if rc != 0:
        raise MemoryError("presso_paged_decode: scratch allocation failed")
    return out


@torch.library.custom_op("presso::paged_decode", mutates_args=())
def paged_decode(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, slots: torch.Tensor,
                 mask: torch.Tensor | None, scale: float, softcap: float) -> torch.Tensor:
    return _run(q, k_cache, v_cache, slots, mask, scale, softcap)


@paged_decode.register_fake
def _(q, k_cache, v_cache, slots, mask, scale, softcap):
    return torch.empty_like(q)


@torch.compiler.assume_constant_result
def available() -> bool:
    """The library is built and loaded (a constant to torch.compile: the check never enters a graph)."""
    return _lib() is not None


def usable(q: torch.Tensor, k_cache: torch.Tensor) -> bool:
    """The kernel exists and handles these inputs (CPU, bf16/fp32 pages, up to 64 query heads per KV head)."""
    return (q.device.type == "cpu" and k_cache.dtype in _DTYPES and k_cache.is_contiguous()
            and q.shape[1] // k_cache.shape[2] <= 64 and available())


def decode(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, slots: torch.Tensor,
           mask: torch.Tensor | None, scale: float, softcap: float = 0.0) -> torch.Tensor:
    """q (Bd, H, D) any float dtype, slots (Bd, L), mask (Bd, 1, 1, L) bool or None -> (Bd, H, D) fp32."""
    q = q.float().contiguous()
    slots = slots.contiguous()
    flat = None if mask is None else mask.reshape(mask.shape[0], -1).contiguous()
    if torch.compiler.is_compiling():
        return paged_decode(q, k_cache, v_cache, slots, flat, scale, softcap)
    return _run(q, k_cache, v_cache, slots, flat, scale, softcap)
