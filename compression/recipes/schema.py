"""Pydantic schema of a quantization recipe: an ordered list of steps (the user-input edge).

A step names a method (`rtn`, `gptq`, `awq`, ...), which Linears it targets and ignores, the integer grid
(bits, group size, symmetry, what to do when a group does not divide a layer's in-features) and the
method's own params (validated later against the method's schema, see load.py). Example:

    format_version: 1
    steps:
      - method: gptq
        targets: ["re:.*layers\\..*_proj"]   # `re:` regex (full match), glob, exact name or class name
        ignore: [lm_head]
        bits: 4
        group_size: 64                       # 32 | 64 | 128 | channel
        symmetric: true
        scale_dtype: float32                 # float32 | float16 (4.25 instead of 4.5 bits at group 64)
        group_fallback: error                # error | largest-divisor | channel
        params: {damp: 0.01, actorder: true}
      - method: wanda                        # pruning: magnitude | wanda | sparsegpt
        sparsity: "2:4"                      # ratio in (0, 1) or "N:M"; sparsegpt + bits = joint pass
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from presso.compression.distill.spec import DistillSpec
from presso.compression.mixed.schema import MixedSpec
from presso.compression.recipes.embeddings import EmbeddingQuant
from presso.compression.structured.spec import Structured

# The output head, embeddings and a multimodal model's vision encoder and projector (Gemma 3): presso
# calibrates and serves the text decoder.
DEFAULT_IGNORE = ["lm_head", "re:.*embed_tokens", "re:.*wte", "re:.*wpe", "re:.*vision_tower\\..*",
                  "re:.*multi_modal_projector\\..*"]
GROUP_SIZES = (32, 64, 128)


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    method: str = Field(description="registered method name (rtn, gptq, awq, ...)")
    targets: list[str] = Field(default_factory=lambda: ["Linear"], min_length=1)
    ignore: list[str] = Field(default_factory=lambda: list(DEFAULT_IGNORE))
    # sparsity before bits: the bits check reads it. A step sets bits (quantize), sparsity (prune) or both
    # (joint methods such as sparsegpt); see presso.compression.prune.
    sparsity: float | str | None = Field(None, validate_default=True,
                                         description='unstructured ratio in (0, 1) or "N:M" such as "2:4"')
    bits: Literal[2, 3, 4, 8] | None = Field(None, validate_default=True)
    group_size: Literal[32, 64, 128, "channel"] = "channel"
    symmetric: bool = True
    scale_dtype: Literal["float32", "float16"] = Field("float32", description="how scales are stored")
    group_fallback: Literal["error", "largest-divisor", "channel"] = "error"
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("sparsity")
    @classmethod
    def _sparsity_fits_method(cls, value, info: ValidationInfo):
        from presso.compression.methods.registry import available_methods, get_method
        from presso.compression.prune.spec import parse_sparsity

        method = info.data.get("method")
        prunes = method in available_methods() and get_method(method).prunes
        if value is None:
            if prunes:
                raise ValueError(f"method {method} prunes: set a sparsity (ratio in (0, 1) or 'N:M')")
            return value
        if method in available_methods() and not prunes:
            raise ValueError(f"method {method} does not prune (pruning methods: magnitude, wanda, sparsegpt)")
        parse_sparsity(value)
        return value

    @field_validator("bits")
    @classmethod
    def _bits_fit_method(cls, value, info: ValidationInfo):
        from presso.compression.methods.registry import available_methods, get_method

        method = info.data.get("method")
        codebook = method in available_methods() and get_method(method).codebook
        if codebook and value is not None:
            raise ValueError(f"method {method} sets its bits in params.scheme (e.g. 2x8), not in `bits`")
        if value is None and not codebook and "sparsity" in info.data and info.data["sparsity"] is None:
            raise ValueError("a step needs bits (quantize), sparsity (prune) or both")
        if value is not None and method in available_methods() and not get_method(method).quantizes:
            raise ValueError(f"method {method} prunes only; quantize in a separate step (or use sparsegpt)")
        return value

    @property
    def sparsity_spec(self):
        """-> presso.compression.prune.SparsitySpec or None."""
        from presso.compression.prune.spec import parse_sparsity

        return None if self.sparsity is None else parse_sparsity(self.sparsity)

    @field_validator("method")
    @classmethod
    def _known_method(cls, value: str) -> str:
        from presso.compression.methods.registry import available_methods

        if value not in available_methods():
            raise ValueError(f"unknown method {value!r} (known: {', '.join(available_methods())})")
        return value

    @field_validator("targets", "ignore")
    @classmethod
    def _patterns_compile(cls, value: list[str]) -> list[str]:
        for pattern in value:
            if not pattern.strip():
                raise ValueError("empty module pattern")
            if pattern.startswith("re:"):
                try:
                    re.compile(pattern[3:])
                except re.error as exc:
                    raise ValueError(f"bad regex {pattern!r}: {exc}") from None
        return value


class Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    format_version: Literal[1] = 1
    name: str | None = None
    structured: Structured | None = None  # applied first, before the steps (compression/structured)
    embeddings: EmbeddingQuant | None = None  # RTN of the (tied) input embedding (compression/quantize/embedding)
    mixed: MixedSpec | None = None  # generates the steps: one bit width per Linear (compression/mixed)
    steps: list[Step] = Field(default_factory=list, validate_default=True)
    distill: DistillSpec | None = None  # KD against the dense source, after the steps (compression/distill)

    @field_validator("steps")
    @classmethod
    def _steps_or_structured(cls, value: list[Step], info: ValidationInfo) -> list[Step]:
        mixed = info.data.get("mixed", "invalid")  # absent: mixed failed validation
        if value and isinstance(mixed, MixedSpec):
            raise ValueError("`mixed` generates the steps: give `steps` or `mixed`, not both")
        if not value and info.data.get("structured", "invalid") is None and mixed is None:
            raise ValueError("at least one step is required (or a top-level `structured` or `mixed` block)")
        return value

    @model_validator(mode="after")
    def _codebook_steps_alone(self) -> Recipe:
        """AQLM's Hugging Face layout holds codebook-quantized and dense Linears only, with one scheme."""
        from presso.compression.methods.registry import get_method

        codebook = [s for s in self.steps if get_method(s.method).codebook]
        if not codebook:
            return self
        if len(codebook) != len(self.steps) or self.embeddings is not None:
            raise ValueError(f"method {codebook[0].method} writes AQLM's Hugging Face layout, which has no "
                             "integer-grid, pruned or quantized-embedding tensors: use it in every step, "
                             "without `embeddings`")
        try:
            schemes = {get_method(s.method).params.model_validate(s.params).scheme for s in codebook}
        except ValidationError:
            return self  # the step's own params error is reported when its params are read
        if len(schemes) > 1:
            raise ValueError(f"the aqlm steps use different schemes {sorted(schemes)}; AQLM's layout has one")
        return self
