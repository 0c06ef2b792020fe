"""Registry of weight-quantization and pruning methods, keyed by the name a recipe step uses.

A method turns one Linear (+ its calibration statistics) into a QuantizedWeight (`quantize`; the kernels'
type, see methods/grid.py), or prunes
it (`prune`, presso.compression.prune: -> PrunedWeight with a keep-mask; `joint` methods also quantize
the kept weights when the step sets bits). Methods that need a
layer-level transform first (AWQ folds per-channel scales into the previous op) also supply
`prepare_layer`, which gets the whole decoder layer and a callback that replays the calibration inputs.
A `codebook` method (presso.compression.aqlm) quantizes without the integer grid: its steps set no
bits, and `quantize` returns its own weight type (AQLMWeight), which also has `dequantize()`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from pydantic import BaseModel

from presso.compression.checkpoint.errors import PressoInputError
from presso.compression.methods.grid import GridSpec
from presso.kernels.quant.types import QuantizedWeight

# Modules imported on first lookup; each registers its methods at import time.
BUILTIN_MODULES = [
    "presso.compression.methods.rtn",
    "presso.compression.methods.gptq",
    "presso.compression.methods.awq",
    "presso.compression.methods.imatrix",
    "presso.compression.prune.methods",
    "presso.compression.aqlm.method",
]


@dataclass(frozen=True, slots=True)
class LayerStats:
    """Calibration statistics of one Linear's inputs."""

    hessian: torch.Tensor | None  # (in, in) fp32, 2/n * sum_t x_t x_t^T over n calibration tokens
    tokens: int
    keep: torch.Tensor | None = None  # (out, in) bool mask of an earlier pruning step; quantizers keep 0 there


@dataclass(frozen=True, slots=True)
class LayerContext:
    """What `prepare_layer` sees: one decoder layer, its targeted Linears, a replay of its inputs."""

    layer: torch.nn.Module
    linears: dict[str, torch.nn.Linear]  # name relative to the layer -> module
    specs: dict[str, GridSpec]  # same keys
    replay: Callable[[], None]  # runs the layer on every calibration batch (outputs discarded)
    batches: int  # calibration batches one replay runs


QuantizeFn = Callable[[torch.nn.Linear, "LayerStats | None", GridSpec, BaseModel], QuantizedWeight]
PrepareFn = Callable[[LayerContext, BaseModel], dict]
PruneFn = Callable[..., Any]  # (linear, stats, SparsitySpec, grid, params) -> prune.types.PrunedWeight


@dataclass(frozen=True, slots=True)
class Method:
    name: str
    quantize: QuantizeFn | None  # None for prune-only methods
    params: type[BaseModel]  # pydantic schema of the recipe step's `params` (validated at the edge)
    needs_hessian: bool = False  # whether `quantize` reads LayerStats.hessian
    prepare_layer: PrepareFn | None = None  # returns a JSON-able summary for the report
    description: str = field(default="")
    prune: PruneFn | None = None  # set by pruning methods
    joint: bool = False  # `prune` also quantizes the kept weights when the step sets bits
    codebook: bool = False  # quantizes into its own codebook format (no bits/group_size; see module doc)

    @property
    def prunes(self) -> bool:
        return self.prune is not None

    @property
    def quantizes(self) -> bool:
        return self.quantize is not None or self.joint

    @property
    def needs_calibration(self) -> bool:
        return self.needs_hessian or self.prepare_layer is not None


_METHODS: dict[str, Method] = {}
_LOADED: list[bool] = []


def register_method(method: Method) -> Method:
    if method.name in _METHODS and _METHODS[method.name] is not method:
        raise ValueError(f"quantization method {method.name!r} is already registered")
    _METHODS[method.name] = method
    return method


def _load_builtins() -> None:
    if not _LOADED:
        _LOADED.append(True)
        for module in BUILTIN_MODULES:
            importlib.import_module(module)


def available_methods() -> list[str]:
    _load_builtins()
    return sorted(_METHODS)


def get_method(name: str) -> Method:
    _load_builtins()
    if name not in _METHODS:
        raise PressoInputError(f"unknown method {name!r} (known: {', '.join(available_methods())})")
    return _METHODS[name]
