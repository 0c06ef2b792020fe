"""Compiled decode steps (EngineConfig.compile): the model's forward through torch.compile for steps whose
rows are all one-token decodes.

Eager, a SmolLM2 decode step dispatches ~40 small ops per layer from Python; compiled, Inductor fuses the
norms, rotary, residuals and attention glue into generated C++ loops and calls torch's packed int4/int8
matmuls as extern kernels, so the weights stay packed. Steps with a prefill chunk stay eager (their shapes
vary the most, and they are a small share of a long generation). The step's varying sizes (decode rows,
context length) are marked dynamic, so one graph serves every step of a batch-size class instead of a
recompile per context length; batch 1 gets its own graph (size-1 dims specialize). Inductor's SDPA pattern
rewrite is off: it turned the grouped-query decode attention into a call that failed to compile here.
A graph that fails to compile logs once and the runner goes on eager.
"""

from __future__ import annotations

import logging

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


class CompiledDecode:
    """`model.forward` compiled for all-decode steps; __call__ has the forward's signature."""

    def __init__(self, model: CausalLM):
        self.model = model
        self.failed = False
        self._fn = torch.compile(model.forward, options={"pattern_matcher": False})

    def usable(self, batch: PagedBatch) -> bool:
        return not self.failed and not batch.prefills and batch.num_decodes > 0

    def __call__(self, input_ids: torch.Tensor, positions: torch.Tensor, batch: PagedBatch,
                 kv: KVCache) -> torch.Tensor:
        rotary = getattr(self.model, "rotary", None)
        if rotary is not None:  # the compiled graph reads the cos/sin table; growing it is host logic
            rotary.reserve(positions)
        _mark(batch, input_ids, positions)
        try:
            return self._fn(input_ids, positions, batch, kv)
        except torch._dynamo.exc.BackendCompilerFailed as exc:  # nothing ran yet: the step goes on eager
            log.warning("compiled decode step failed to compile, running eager from now on: %s", exc)
            self.failed = True
            return self.model(input_ids, positions, batch, kv)
