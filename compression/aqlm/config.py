"""AQLM settings: the recipe step's `params` (AQLMParams, the user-input edge) and the frozen AQLMConfig
the algorithm reads (compression/aqlm/layer.py).

A recipe step `{method: aqlm, params: {scheme: 2x8, rounds: 2}}` ("2x8" = 2 codebooks of 2^8 entries)
is validated here; the checkpoint writer (compression/aqlm/checkpoint.py) reads the scheme back from the
codebooks' shapes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, field_validator

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


def parse_scheme(text: str) -> tuple[int, int]:
    """'1x16' | '2x8' | '1x8' (any MxB with 1 <= M <= 8, 1 <= B <= 16) -> (codebooks, bits)."""
    match = _SCHEME.match(str(text).strip())
    if not match:
        raise ValueError(f"scheme must look like 2x8 (codebooks x bits), got {text!r}")
    num_codebooks, nbits = int(match[1]), int(match[2])
    if not 1 <= nbits <= 16 or not 1 <= num_codebooks <= 8:
        raise ValueError(f"scheme {text}: need 1-8 codebooks of 1-16 bits")
    return num_codebooks, nbits


class AQLMParams(BaseModel):
    """`params` of an `aqlm` recipe step."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scheme: str = Field("2x8", description="codebooks x bits: 1x16 (~2 bit), 2x8 (~2 bit), 1x8 (~1 bit)")
    rounds: int = Field(2, ge=1, description="codebook/scale/code alternations")
    beam_width: int = Field(1, ge=1, description="hypotheses kept per row in the code search")
    kmeans_iters: int = Field(8, ge=1, description="k-means iterations at init")
    cg_iters: int = Field(15, ge=1, description="CG iterations per codebook update")
    damp: float = Field(0.01, gt=0, description="Hessian damping, fraction of mean(diag H)")
    row_chunk: int = Field(256, ge=1, description="output rows searched at once")
    seed: int = Field(0, description="k-means initialisation seed")

    @field_validator("scheme")
    @classmethod
    def _scheme(cls, value: str) -> str:
        parse_scheme(value)
        return value

    def config(self) -> AQLMConfig:
        num_codebooks, nbits = parse_scheme(self.scheme)
        return AQLMConfig(num_codebooks=num_codebooks, nbits=nbits, beam_width=self.beam_width, rounds=self.rounds,
                          kmeans_iters=self.kmeans_iters, cg_iters=self.cg_iters, damp=self.damp,
                          row_chunk=self.row_chunk)
