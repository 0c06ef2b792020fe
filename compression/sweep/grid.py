"""The sweep grid file (pydantic, the user-input edge): shared calibration/eval settings and the points.

    format_version: 1
    calib: mix                    # calibration text spec, shared by every point (default: the mix)
    calib_samples: 32
    calib_len: 512
    eval: suite                   # default: every corpus's evaluation part; or one text spec
    eval_tokens: 8192             # (one text spec only: its first N tokens)
    eval_ctx: 1024
    points:
      - {name: dense, dense: true}                 # evaluates the model itself, no compression
      - {name: gptq-w4g64, recipe: gptq-w4g64}     # a preset ...
      - {name: pq, recipe: ../recipes/pq.yaml}     # ... a recipe file (relative to this grid file) ...
      - name: w3                                   # ... or an inline recipe
        recipe: {steps: [{method: gptq, bits: 3, group_size: channel}]}
      - {name: mixed-3.2, recipe: mixed-gptq-3.5, target_bits: 3.2}   # per-point overrides
      - {name: w3-kd, distill_from: w3, distill: {steps: 60}}         # KD recovery of an earlier point
                                                  # (a recipe's `distill:` keys; text defaults to calib)

Errors name the file and the field (`grid FILE: points.3.name: ...`). Whether a preset exists is
checked when its point runs, so a grid may name presets that arrive later: those points fail alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from presso.compression.checkpoint.errors import PressoInputError
from presso.compression.distill.spec import DistillSpec


class Point(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", description="also the point's directory name")
    recipe: str | dict[str, Any] | None = None  # preset name, recipe file, or an inline recipe mapping
    dense: bool = False
    target_bits: float | None = Field(None, gt=1, le=16)
    target_size: str | None = None
    calib_samples: int | None = Field(None, ge=1)
    calib_len: int | None = Field(None, ge=2)
    distill_from: str | None = None  # KD point: recover this earlier point's checkpoint (compression/distill)
    distill: DistillSpec | None = None  # a recipe's `distill:` keys; `text` defaults to the grid's calib

    @model_validator(mode="after")
    def _recipe_or_dense(self) -> Point:
        if int(self.dense) + (self.recipe is not None) + (self.distill_from is not None) != 1:
            raise ValueError("a point needs exactly one of `recipe`, `dense: true` and `distill_from`")
        if self.distill is not None and self.distill_from is None:
            raise ValueError("`distill` settings need `distill_from: POINT`")
        return self


class Grid(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    format_version: Literal[1] = 1
    calib: str | None = "mix"
    calib_samples: int = Field(128, ge=1)
    calib_len: int = Field(512, ge=2)
    calib_seed: int = 0
    eval: str = "suite"
    eval_tokens: int = Field(8192, ge=2)
    eval_ctx: int = Field(1024, ge=2)
    batch_size: int = Field(8, ge=1)
    points: list[Point] = Field(min_length=1)

    @field_validator("points")
    @classmethod
    def _unique_names(cls, value: list[Point]) -> list[Point]:
        seen: set[str] = set()
        for point in value:
            if point.name in seen:
                raise ValueError(f"point name {point.name!r} appears twice")
            if point.distill_from is not None and point.distill_from not in seen:
                raise ValueError(f"point {point.name!r}: distill_from {point.distill_from!r} must be an earlier point")
            seen.add(point.name)
        return value


def load_grid(path: Path) -> Grid:
    path = Path(path).expanduser()
    if not path.is_file():
        raise PressoInputError(f"grid {path}: file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise PressoInputError(f"grid {path}: invalid YAML{'' if mark is None else f' at line {mark.line + 1}'}") from None
    if not isinstance(data, dict):
        raise PressoInputError(f"grid {path}: (root): expected a mapping with `points`")
    try:
        return Grid.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(root)"
        raise PressoInputError(f"grid {path}: {field}: {first['msg'].removeprefix('Value error, ')}") from None
