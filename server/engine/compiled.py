"""Compiled decode steps (EngineConfig.compile): the model's forward through torch.compile for steps whose
rows are all one-token decodes.

Eager, a SmolLM2 decode step dispatches ~40 small ops per layer from Python; compiled, Inductor fuses the
norms, rotary, residuals and attention glue into generated C++ loops and calls torch's packed int4/int8
matmuls as extern kernels, so the weights stay packed. Steps with a prefill chunk stay eager (their shapes
vary the most, and they are a small share of a long generation). The step's varying sizes (decode rows,
context length) are marked dynamic, so one graph serves every step of a batch-size class instead of a
recompile per context length; batch 1 gets its own graph (size-1 dims specialize). Inductor's SDPA pattern
rewrite is off: it turned the grouped-query decode attention into a call that failed to compile here.
The step is one graph (fullgraph): a model that would break it, or a graph that fails to compile, logs once
and the runner goes on eager.
"""

from __future__ import annotations

import itertools
import logging
import types
from collections.abc import Callable

import torch
from torch._dynamo import maybe_mark_dynamic

from presso.kernels.attention.types import PagedBatch
from presso.server.kv.cache import KVCache
from presso.server.models.base import CausalLM

log = logging.getLogger(__name__)


def _mark(batch: PagedBatch, input_ids: torch.Tensor, positions: torch.Tensor) -> None:
    """Mark this step's sizes dynamic: rows (dim 0) everywhere, context length/blocks on the last dim."""
    for t in (input_ids, positions, batch.slot_mapping, batch.decode_context_lens):
        maybe_mark_dynamic(t, 0)
    for t in (batch.decode_block_tables, batch.decode_slots, batch.decode_mask):
        if t is not None:
            maybe_mark_dynamic(t, 0)
            maybe_mark_dynamic(t, t.dim() - 1)


_KEYS = itertools.count()


def _guards(entries) -> list[bool]:
    """Which of Dynamo's guards to keep: all but those on the model's modules. They never change after
    load, and re-checking their ~9k attributes cost 1.9 ms per SmolLM2 batch-1 step. Kept: the tensor,
    KV-cache and batch guards (they pick the batch-1 or the dynamic graph)."""
    return [not e.orig_guard.source.is_unspecialized_nn_module() for e in entries]


def _forward(model: CausalLM, input_ids: torch.Tensor, positions: torch.Tensor, batch: PagedBatch,
             kv: KVCache) -> torch.Tensor:
    return model(input_ids, positions, batch, kv)


def _own_forward() -> Callable:
    """A copy of _forward with a code object of its own. Dynamo keeps compiled graphs per code object and,
    without module guards, could not tell two models apart: each CompiledDecode compiles its own copy."""
    code = _forward.__code__.replace(co_name=f"_forward_{next(_KEYS)}")
    return types.FunctionType(code, _forward.__globals__, code.co_name)


class CompiledDecode:
    """`model.forward` compiled for all-decode steps; __call__ has the forward's signature."""

    def __init__(self, model: CausalLM):
        self.model = model
        self.failed = False
        self._fn = torch.compile(_own_forward(), fullgraph=True, options={"pattern_matcher": False, "guard_filter_fn": _guards})

    def usable(self, batch: PagedBatch) -> bool:
        return not self.failed and not batch.prefills and batch.num_decodes > 0

    def __call__(self, input_ids: torch.Tensor, positions: torch.Tensor, batch: PagedBatch,
                 kv: KVCache) -> torch.Tensor:
        rotary = getattr(self.model, "rotary", None)
        if rotary is not None:  # the compiled graph reads the cos/sin table; growing it is host logic
            rotary.reserve(positions)
        _mark(batch, input_ids, positions)
        try:
            return self._fn(self.model, input_ids, positions, batch, kv)
        except (torch._dynamo.exc.BackendCompilerFailed, torch._dynamo.exc.Unsupported) as exc:
            # nothing ran yet (a graph break is an error with fullgraph): the step goes on eager
            log.warning("compiled decode step failed to compile, running eager from now on: %s", exc)
            self.failed = True
            return self.model(input_ids, positions, batch, kv)
