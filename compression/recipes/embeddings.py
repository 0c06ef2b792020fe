"""The recipe's top-level `embeddings:` block: round-to-nearest quantization of the input embedding.

    embeddings: {bits: 4, group_size: 64, symmetric: true}   # or {bits: 8, group_size: channel}

The embedding (V, hidden) is quantized per row (or per row group along hidden) like a Linear's weight
and written in compressed-tensors' pack-quantized layout under `model.embed_tokens`; with tied word
embeddings the output head reads the same quantized tensor (compression/quantize/embedding.py).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class EmbeddingQuant(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    bits: Literal[4, 8]
    group_size: Literal[32, 64, 128, "channel"] = "channel"
    symmetric: bool = True
