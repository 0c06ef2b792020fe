"""A packed-integer input embedding that doubles as the tied output head.

Checkpoint: `model.embed_tokens.weight_packed/_scale/[_zero_point]/_shape` in compressed-tensors'
pack-quantized layout (written by presso.compression.quantize.embedding). Read like a (V, hidden)
PackedIntLinear: the head (hidden -> V logits) runs through the wq_linear kernel dispatcher, and
`lookup(ids)` unpacks and dequantizes only the looked-up rows, so the fp32 table never exists.
"""

from __future__ import annotations

import torch

from presso.kernels.quant import QuantizedWeight
from presso.kernels.quant.reference import group_index, unpack_int32
from presso.server.layers.linear import PackedIntLinear


class QuantizedEmbedding(PackedIntLinear):
    """in_features = hidden, out_features = vocab; one checkpoint prefix (the embedding's name)."""

    def finalize(self) -> None:
        (qw,) = self.shards
        self.table: QuantizedWeight = qw  # kept packed for lookups: (V, hidden*bits/32) int32
        self.columns = group_index(qw)  # (hidden,) scale column of each feature
        super().finalize()

    def lookup(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (T,) int64 -> (T, hidden) in the model dtype."""
        qw = self.table
        q = unpack_int32(qw.packed[ids], qw.num_bits, qw.in_features).float()  # (T, hidden)
        if qw.zero is not None:
            q = q - qw.zero[ids].float()[:, self.columns]
        return (q * qw.scale[ids].float()[:, self.columns]).to(self.dtype)
