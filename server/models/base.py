"""What every presso model shares: loading its layers from a WeightSource and the step interface.

A model's forward takes the flattened token batch of one engine step (input_ids (T,), positions (T,)),
the PagedBatch telling each sequence's pages, and the KV cache; it returns hidden states (T, hidden).
`logits(hidden)` applies the (possibly tied) output head in fp32.
"""

from __future__ import annotations

import torch
from torch import nn

from presso.kernels import registry as kernels
from presso.kernels.quant.reference import quantize_int4_groups, quantize_int8_rows
from presso.server.layers.linear import LinearMethod, decode_layout


class CausalLM(nn.Module):
    impl = "native"  # which model path serves it: native (presso's layers) or generic (models/generic.py)
    max_context: int | None = None  # a context limit below the config's positions (generic: a sliding window)

    def __init__(self, cfg: dict, dtype: torch.dtype):
        super().__init__()
        self.cfg, self.dtype = cfg, dtype
        self.head_kernel = None  # set by quantize_head(): an int8 copy of the output head
        self.sliding_windows: list[int] = []  # per layer W (0: full attention); empty: every layer full

    def head_weight(self) -> torch.Tensor | None:
        """The dense (V, hidden) output-head weight, or None when the head is not dense."""
        raise NotImplementedError

    def quantize_head(self, bits: int = 8) -> bool:
        """Run the output head as int8 per-channel or int4 group-64 RTN (the largest matrix read per token).

        Weight-only int8 of the head changes logits by ~40 dB SQNR, int4 g64 by ~20 dB; both are engine options
        (EngineConfig.lm_head_quant). int4 reads half the bytes and runs torch's int4 CPU kernel.
        """
        w = self.head_weight()
        if w is None:
            return False
        if bits == 4 and w.shape[1] % 64:
            raise ValueError(f"lm_head_quant=int4 needs the hidden size ({w.shape[1]}) divisible by 64")
        qw = quantize_int8_rows(w) if bits == 8 else quantize_int4_groups(w, 64)
        self.head_kernel = kernels.get("wq_linear")(qw, self.dtype)
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
        head = self.head_weight()
        if head is not None and head.dim() == 2:  # a tied embedding doubles as the dense output head
            head.data = decode_layout(head.data)

    def plain_params(self, source) -> list[tuple[nn.Parameter, str]]:
        raise NotImplementedError

    def num_parameters(self) -> int:
        """Parameters of the original model (linear layers count in*out whatever their codec)."""
        linear_ids = {id(p) for _, m in self.linears() for p in m.parameters(recurse=False)}
        plain = sum(p.numel() for p in self.parameters() if id(p) not in linear_ids)
        return plain + sum(m.num_parameters for _, m in self.linears())
