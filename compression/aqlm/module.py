"""AQLMLinear: an nn.Linear replacement holding AQLM's `codes`, `codebooks`, `scales` (+ optional bias).

Its buffer names are the tensor names of AQLM's Hugging Face layout, so `state_dict()` is what the
checkpoint writer stores and the loader fills. forward() calls presso.kernels.aqlm.aqlm_matmul, whose
backend (reference / cpu / triton) the kernel registry picks.
"""

from __future__ import annotations

import torch

from presso.kernels.aqlm import aqlm_matmul


class AQLMLinear(torch.nn.Module):
    def __init__(
        self, in_features: int, out_features: int, num_codebooks: int, nbits: int,
        in_group: int = 8, bias: bool = False,
    ) -> None:
        super().__init__()
        if in_features % in_group:
            raise ValueError(f"in_features {in_features} is not a multiple of in_group_size {in_group}")
        self.in_features, self.out_features = in_features, out_features
        self.num_codebooks, self.nbits, self.in_group = num_codebooks, nbits, in_group
        code_dtype = torch.int8 if nbits <= 8 else torch.int16
        self.register_buffer("codes", torch.zeros(out_features, in_features // in_group, num_codebooks, dtype=code_dtype))
        self.register_buffer("codebooks", torch.zeros(num_codebooks, 1 << nbits, 1, in_group, dtype=torch.float16))
        self.register_buffer("scales", torch.ones(out_features, 1, 1, 1, dtype=torch.float16))
        self.bias = torch.nn.Parameter(torch.zeros(out_features), requires_grad=False) if bias else None

    @classmethod
    def from_tensors(cls, codes: torch.Tensor, codebooks: torch.Tensor, scales: torch.Tensor,
                     bias: torch.Tensor | None = None) -> AQLMLinear:
        """Build from a quantized layer: codes (N, G, M), codebooks (M, C, 1, 8), scales (N, 1, 1, 1)."""
        num_codebooks, size, _, in_group = codebooks.shape
        layer = cls(codes.shape[1] * in_group, codes.shape[0], num_codebooks, size.bit_length() - 1,
                    in_group, bias is not None)
        layer.codes.copy_(codes)
        layer.codebooks.copy_(codebooks)
        layer.scales.copy_(scales)
        if bias is not None:
            layer.bias.data.copy_(bias)
        return layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return aqlm_matmul(x, self.codes, self.codebooks, self.scales, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"scheme={self.num_codebooks}x{self.nbits}, in_group={self.in_group}, bias={self.bias is not None}")
