"""Model runner: turns a SchedulerOutput into one forward pass over a flattened token batch + sampling.

Sequences are reordered decodes-first (the attention kernel batches all one-token queries), their tokens
concatenated into input_ids/positions (T,), each token's KV slot computed from its block table, then the
model runs once and logits are taken only at the rows that sample (and at prompt positions whose
logprobs were requested). Data flow: SchedulerOutput -> execute() -> RunnerOutput.
With `compile`, steps of decodes only run the model's compiled forward. On a CUDA device the step's index tensors are built there (the forward runs under torch.device(dev))
and only the sampled rows' logits come back to the host, where the sampler and its generator live.
"""

from __future__ import annotations

import contextlib

import torch

from presso.kernels.attention.types import PagedBatch, PrefillSpan
from presso.server.engine import sampler
from presso.server.engine.compiled import CompiledDecode
from presso.server.engine.guided import GuidedDecoding
from presso.server.engine.outputs import RunnerOutput, SampledToken, ScheduledSeq, SchedulerOutput
from presso.server.engine.types import TokenLogprob
from presso.server.kv.cache import KVCache
from presso.server.models.base import CausalLM


class ModelRunner:
    def __init__(self, model: CausalLM, kv: KVCache, seed: int = 0, device: torch.device | str = "cpu",
                 guided: GuidedDecoding | None = None, compile: bool = False):
        self.model, self.kv, self.guided = model, kv, guided
        # all-decode steps through torch.compile (server/engine/compiled.py); CPU only, where it was measured
        self.compiled = CompiledDecode(model) if compile and torch.device(device).type == "cpu" else None
        self.block_size = kv.block_size
        self.device = torch.device(device)
        self.generator = torch.Generator().manual_seed(seed)  # host-side: sampling runs on CPU

    def _on_device(self):
        """Factory calls inside the step default to the engine's device (a no-op scope on CPU)."""
        return contextlib.nullcontext() if self.device.type == "cpu" else torch.device(self.device)

    def prepare_inputs(self, seqs: list[ScheduledSeq]) -> tuple[torch.Tensor, torch.Tensor, PagedBatch]:
        """Decodes first: input_ids (T,), positions (T,) long and the step's PagedBatch."""
        bs = self.block_size
        decodes = [s for s in seqs if s.num_tokens == 1]
        ids: list[int] = []
        pos: list[int] = []
        slots: list[int] = []
        for s in decodes:
            p = s.start_pos
            ids.append(s.token_ids[0])
            pos.append(p)
            slots.append(s.block_ids[p // bs] * bs + p % bs)
        max_blocks = max((len(s.block_ids) for s in decodes), default=0)
        tables = torch.tensor([list(s.block_ids) + [0] * (max_blocks - len(s.block_ids)) for s in decodes],
                              dtype=torch.long).reshape(len(decodes), max_blocks)  # (Bd, MB)
        ctx = torch.tensor([s.start_pos + 1 for s in decodes], dtype=torch.long)  # (Bd,)
        slot_t = torch.tensor(slots, dtype=torch.long)
        spans = []
        parts_ids, parts_pos, parts_slots = [torch.tensor(ids, dtype=torch.long)], [torch.tensor(pos)], [slot_t]
        start = len(decodes)
        for s in seqs:
            if s.num_tokens == 1:
                continue
            table = torch.tensor(s.block_ids, dtype=torch.long)
            p = torch.arange(s.start_pos, s.start_pos + s.num_tokens)
            parts_ids.append(torch.tensor(s.token_ids, dtype=torch.long))
            parts_pos.append(p)
            parts_slots.append(table[p // bs] * bs + p % bs)
            spans.append(PrefillSpan(start, s.num_tokens, s.start_pos + s.num_tokens, table, s.window_slot))
            start += s.num_tokens
        batch = PagedBatch(
            slot_mapping=torch.cat(parts_slots), num_decodes=len(decodes), decode_block_tables=tables,
            decode_context_lens=ctx, decode_max_len=int(ctx.max()) if decodes else 0, prefills=tuple(spans),
            block_size=bs, decode_seq_slots=tuple(s.window_slot for s in decodes),
        )
        batch = self.kv.prepare(batch)  # per-step attention metadata, shared by every layer
        return torch.cat(parts_ids), torch.cat(parts_pos).long(), batch

    @torch.inference_mode()
    def forward_logits(self, seqs: list[ScheduledSeq]) -> torch.Tensor:
        """Logits (T, V) fp32 on the host at every position of the scheduled tokens (checks, not serving)."""
        with self._on_device():
            ids, pos, batch = self.prepare_inputs(seqs)
            return self.model.logits(self.model(ids, pos, batch, self.kv)).cpu()

    @torch.inference_mode()
    def execute(self, out: SchedulerOutput) -> RunnerOutput:
        seqs = sorted(out.seqs, key=lambda s: s.num_tokens != 1)  # stable: decodes first
        with self._on_device():
            input_ids, positions, batch = self.prepare_inputs(seqs)
            forward = self.compiled if self.compiled is not None and self.compiled.usable(batch) else self.model
            hidden = forward(input_ids, positions, batch, self.kv)  # (T, hidden)
        ends, row = [], 0
        plp_rows: list[tuple[ScheduledSeq, int]] = []
        for s in seqs:
            if s.sample:
                ends.append((s, row + s.num_tokens - 1))
            if s.prompt_logprob_targets:
                plp_rows.append((s, row + s.prompt_logprobs_from - 1 - s.start_pos))
            row += s.num_tokens
        sampled: list[SampledToken] = []
        if ends:
            rows = torch.tensor([r for _, r in ends], device=hidden.device)
            logits = self.model.logits(hidden[rows]).cpu()  # (B, V) fp32
            sample_seqs = [s for s, _ in ends]
            allowed = self.guided.mask(logits, sample_seqs) if self.guided else logits  # structured outputs
            tokens = sampler.sample(allowed, sample_seqs, self.generator)
            if self.guided:
                self.guided.advance(sample_seqs, tokens)
            lps = sampler.token_logprobs(logits, tokens, [s.params.logprobs for s in sample_seqs])
            sampled = [SampledToken(s.request_id, t, lp) for s, t, lp in zip(sample_seqs, tokens, lps, strict=True)]
        return RunnerOutput(tuple(sampled), tuple(self._prompt_logprobs(hidden, plp_rows)))

    def _prompt_logprobs(self, hidden, plp_rows) -> list[tuple[str, tuple[TokenLogprob, ...]]]:
        out = []
        for s, first in plp_rows:
            n = len(s.prompt_logprob_targets)
            logits = self.model.logits(hidden[first:first + n]).cpu()  # (n, V) fp32
            lps = sampler.token_logprobs(logits, list(s.prompt_logprob_targets), [s.params.prompt_logprobs] * n)
            out.append((s.request_id, tuple(lps)))
        return out
