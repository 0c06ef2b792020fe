"""Kernel registry and dispatcher: (op name, backend) -> function.

Each op family registers its `reference` (the readable spec), `cpu` (fast torch) and `triton` (GPU)
implementations here when its module is imported. `get(op, device)` picks the backend for a device:
PRESSO_KERNEL_BACKEND forces one everywhere (falling back to the reference when that op lacks it);
otherwise CUDA tensors get triton, then cpu, then reference; CPU tensors get cpu, then reference.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from pathlib import Path

from presso.kernels import envs

BACKENDS = ("reference", "cpu", "triton")
_OPS: dict[str, dict[str, Callable]] = {}
_loaded = False


def register(op: str, backend: str) -> Callable[[Callable], Callable]:
    assert backend in BACKENDS, backend

    def deco(fn: Callable) -> Callable:
        _OPS.setdefault(op, {})[backend] = fn
        return fn

    return deco


def load_all() -> None:
    """Import every op family once: each subpackage of presso.kernels registers its ops on import."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if info.ispkg:
            importlib.import_module(f"presso.kernels.{info.name}")


def registered() -> dict[str, tuple[str, ...]]:
    load_all()
    return {op: tuple(impls) for op, impls in sorted(_OPS.items())}


def get(op: str, device: str = "cpu", backend: str | None = None) -> Callable:
    """The implementation of `op` for `device` (or exactly `backend` when given)."""
    load_all()
    impls = _OPS.get(op)
    if not impls:
        raise KeyError(f"unknown kernel op {op!r}")
    if backend is not None:
        return impls[backend]
    forced = envs.kernel_backend()
    if forced is not None:
        if forced not in BACKENDS:
            raise ValueError(f"PRESSO_KERNEL_BACKEND must be one of {BACKENDS}, got {forced!r}")
        return impls.get(forced, impls["reference"])
    order = ("triton", "cpu", "reference") if str(device).startswith("cuda") else ("cpu", "reference")
    return next(impls[b] for b in order if b in impls)
