"""Load a recipe from a preset name or a YAML file; every error names the file and the field.

spec -> dict (preset or yaml.safe_load) -> Recipe (pydantic) -> each step's params checked against its
method's schema. Errors become one PressoInputError line: `recipe FILE: steps.0.bits: Input should be ...`.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError

from presso.compression.checkpoint.errors import PressoInputError
from presso.compression.methods.registry import get_method
from presso.compression.recipes.presets import PRESETS
from presso.compression.recipes.schema import Recipe


def _field(loc) -> str:
    return ".".join(str(part) for part in loc) or "(root)"


def _fail(source: str, exc: ValidationError, prefix: tuple = ()) -> PressoInputError:
    first = exc.errors()[0]
    more = f" (+{len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    msg = first["msg"].removeprefix("Value error, ")
    return PressoInputError(f"recipe {source}: {_field((*prefix, *first['loc']))}: {msg}{more}")


def _read(spec: str) -> tuple[str, object]:
    if spec in PRESETS:
        return f"preset {spec!r}", PRESETS[spec]
    path = Path(spec).expanduser()
    if not path.is_file():
        raise PressoInputError(
            f"recipe {spec!r} is neither a preset ({', '.join(sorted(PRESETS))}) nor a YAML file"
        )
    try:
        return str(path), yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise PressoInputError(f"recipe {path}: invalid YAML{line}") from None


def load_recipe(spec: str) -> Recipe:
    source, data = _read(spec)
    if not isinstance(data, dict):
        raise PressoInputError(f"recipe {source}: (root): expected a mapping with `steps`")
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as exc:
        raise _fail(source, exc) from None
    for i, step in enumerate(recipe.steps):
        method_params(step.method, step.params, source, i)
    return recipe


def method_params(method: str, params: dict, source: str = "", index: int = 0) -> BaseModel:
    """Validate one step's `params` against its method's schema -> the method's params object."""
    try:
        return get_method(method).params.model_validate(params)
    except ValidationError as exc:
        raise _fail(source, exc, ("steps", index, "params")) from None


def recipe_to_dict(recipe: Recipe) -> dict:
    """JSON-able form with defaults filled in (recorded in presso.json)."""
    data = recipe.model_dump(mode="json")
    for step, raw in zip(data["steps"], recipe.steps, strict=True):
        step["params"] = method_params(raw.method, raw.params).model_dump(mode="json")
    return data
