"""presso.compression.recipes: what to quantize and how, as validated YAML (or a named preset).

`load_recipe(spec)` -> Recipe (pydantic, the edge) -> `resolve_plan(recipe, model)` -> one frozen
LayerPlan per targeted Linear (method, grid, params, any group-size fallback), consumed by calibration.
"""

from presso.compression.recipes.load import load_recipe, recipe_to_dict
from presso.compression.recipes.presets import PRESETS
from presso.compression.recipes.resolve import LayerPlan, resolve_plan
from presso.compression.recipes.schema import Recipe, Step

__all__ = ["PRESETS", "LayerPlan", "Recipe", "Step", "load_recipe", "recipe_to_dict", "resolve_plan"]
