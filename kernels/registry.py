"""Kernel registry and dispatcher: (op name, backend) -> function.

Each op family registers its `reference` (the readable spec), `cpu` (fast torch) and `triton` (GPU)
implementations here when its module is imported. `get(op, device)` picks the backend for a device:
a forced backend (an explicit `backend=`, else the enclosing `select(...)`'s, else PRESSO_KERNEL_BACKEND)
wins, falling back to the reference when the op lacks it; otherwise CUDA tensors get triton, then cpu,
then reference; CPU tensors get cpu, then reference. The engine resolves every kernel once, at load,
inside `select(device, backend)`, which also records which backend each op got.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from presso.kernels import envs

BACKENDS = ("reference", "cpu", "triton")
_OPS: dict[str, dict[str, Callable]] = {}
_loaded = False
# (device, forced backend or None, {op: backend} resolved so far) of the innermost select()
_SELECTION: ContextVar[tuple[str, str | None, dict[str, str]] | None] = ContextVar("kernel_selection", default=None)


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


@contextmanager
def select(device: str = "cpu", backend: str | None = None) -> Iterator[dict[str, str]]:
    """Within the block, `get(op)` defaults to `device` and forces `backend` (None: pick by device).
    Yields {op: backend name} of every op resolved inside, for logs and tests."""
    if backend is not None and backend not in BACKENDS:
        raise ValueError(f"kernel backend must be one of {BACKENDS}, got {backend!r}")
    resolved: dict[str, str] = {}
    token = _SELECTION.set((device, backend, resolved))
    try:
        yield resolved
    finally:
        _SELECTION.reset(token)


def get(op: str, device: str | None = None, backend: str | None = None) -> Callable:
    """The implementation of `op` for `device` (or exactly `backend` when given)."""
    load_all()
    impls = _OPS.get(op)
    if not impls:
        raise KeyError(f"unknown kernel op {op!r}")
    if backend is not None:
        return impls[backend]
    selection = _SELECTION.get()
    device = device if device is not None else (selection[0] if selection else "cpu")
    forced = (selection[1] if selection else None) or envs.kernel_backend()
    if forced is not None:
        if forced not in BACKENDS:
            raise ValueError(f"PRESSO_KERNEL_BACKEND must be one of {BACKENDS}, got {forced!r}")
        name = forced if forced in impls else "reference"
    else:
        order = ("triton", "cpu", "reference") if str(device).startswith("cuda") else ("cpu", "reference")
        name = next(b for b in order if b in impls)
    if selection is not None:
        selection[2][op] = name
    return impls[name]
