"""What every presso model shares: loading its layers from a WeightSource and the step interface.

A model's forward takes the flattened token batch of one engine step (input_ids (T,), positions (T,)),
the PagedBatch telling each sequence's pages, and the KV cache; it returns hidden states (T, hidden).
`logits(hidden)` applies the (possibly tied) output head in fp32.
"""

from __future__ import annotations

import torch
from torch import nn

from presso.kernels import registry as kernels
from presso.kernels.quant.reference import quantize_int8_rows
from presso.server.layers.linear import LinearMethod


class CausalLM(nn.Module):
    def __init__(self, cfg: dict, dtype: torch.dtype):
        super().__init__()
        self.cfg, self.dtype = cfg, dtype
        self.attn_kernel = kernels.get("paged_attention")
        self.head_kernel = None  # set by quantize_head(): an int8 copy of the output head

    def head_weight(self) -> torch.Tensor | None:
        """The dense (V, hidden) output-head weight, or None when the head is not dense."""
        raise NotImplementedError

    def quantize_head(self) -> bool:
        """Run the output head as int8 per-channel RTN (the largest matrix read per decoded token).

        Weight-only int8 of the head changes logits by ~40 dB SQNR; it is opt-in (EngineConfig.lm_head_quant).
        """
        w = self.head_weight()
        if w is None:
            return False
        self.head_kernel = kernels.get("wq_linear")(quantize_int8_rows(w), self.dtype)
        return True

    def linears(self) -> list[tuple[str, LinearMethod]]:
        return [(n, m) for n, m in self.named_modules() if isinstance(m, LinearMethod)]

    def load(self, source) -> None:
        """Read every linear through its method, every other parameter by its checkpoint name."""
        for _, linear in self.linears():
            linear.load(source)
            linear.finalize()
        for param, name in self.plain_params(source):
            param.data = source.get(name).to(self.dtype).contiguous()

    def plain_params(self, source) -> list[tuple[nn.Parameter, str]]:
        raise NotImplementedError

    def num_parameters(self) -> int:
        """Parameters of the original model (linear layers count in*out whatever their codec)."""
        linear_ids = {id(p) for _, m in self.linears() for p in m.parameters(recurse=False)}
        plain = sum(p.numel() for p in self.parameters() if id(p) not in linear_ids)
        return plain + sum(m.num_parameters for _, m in self.linears())
