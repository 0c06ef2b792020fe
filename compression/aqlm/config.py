"""AQLM settings: the code scheme ("2x8" = 2 codebooks of 2^8 entries) and the optimisation budget.

Parsed once from the CLI (`presso aqlm --config 2x8 ...`) and passed down to compression/aqlm/layer.py;
`hf_quantization_config` turns it into the `quantization_config` block of AQLM's Hugging Face layout.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from presso.compression.checkpoint.errors import PressoInputError

IN_GROUP = 8
OUT_GROUP = 1
_SCHEME = re.compile(r"^(\d+)x(\d+)$")


@dataclass(frozen=True, slots=True)
class AQLMConfig:
    num_codebooks: int = 2
    nbits: int = 8
    in_group: int = IN_GROUP
    out_group: int = OUT_GROUP
    beam_width: int = 1  # hypotheses kept per output row during the code search
    rounds: int = 2  # alternations of (codebook least squares, scale least squares, code beam search)
    kmeans_iters: int = 8  # Lloyd iterations per codebook of the residual k-means initialisation
    cg_iters: int = 15  # conjugate-gradient iterations of each codebook least-squares update
    damp: float = 0.01  # Hessian damping, fraction of mean(diag(X^T X))
    row_chunk: int = 256  # output rows searched at once (bounds beam-search memory)

    @property
    def scheme(self) -> str:
        return f"{self.num_codebooks}x{self.nbits}"

    @property
    def codebook_size(self) -> int:
        return 1 << self.nbits

    def to_dict(self) -> dict:
        return asdict(self)

    def hf_quantization_config(self, not_quantized: list[str]) -> dict:
        return {
            "quant_method": "aqlm",
            "in_group_size": self.in_group,
            "out_group_size": self.out_group,
            "num_codebooks": self.num_codebooks,
            "nbits_per_codebook": self.nbits,
            "linear_weights_not_to_quantize": sorted(not_quantized),
        }


def parse_scheme(text: str, **overrides) -> AQLMConfig:
    """'1x16' | '2x8' | '1x8' (any MxB with 1 <= B <= 16) -> AQLMConfig."""
    match = _SCHEME.match(text.strip())
    if not match:
        raise PressoInputError(f"--config must look like 2x8 (codebooks x bits), got {text!r}")
    num_codebooks, nbits = int(match[1]), int(match[2])
    if not 1 <= nbits <= 16 or not 1 <= num_codebooks <= 8:
        raise PressoInputError(f"--config {text}: need 1-8 codebooks of 1-16 bits")
    for key, value in overrides.items():
        if value is not None and isinstance(value, int) and value < 1:
            raise PressoInputError(f"--{key.replace('_', '-')} must be positive, got {value}")
    return AQLMConfig(num_codebooks=num_codebooks, nbits=nbits, **{k: v for k, v in overrides.items() if v is not None})
