"""Recipe + model -> one LayerPlan per targeted Linear (which step, method, grid, params, fallback).

Patterns: `re:<regex>` (full match on the module name), a glob (`*` `?`), or a plain string equal to the
module name or its class name (`Linear`). A Linear gets at most one quantizing and one pruning step: the first
step of each kind whose targets match (and ignore does not) claims it, later steps of that kind skip it (a
joint prune+quantize step claims both kinds). A Linear with two plans runs them in recipe order (prune ->
quantize or quantize -> prune); N:M patterns must divide in_features (error naming the layer). A group size that does not divide a layer's in-features is an error naming
the layer unless the step sets `group_fallback` (largest dividing size, or per channel), recorded here.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

import torch
from pydantic import BaseModel

from presso.compression.checkpoint.errors import PressoInputError
from presso.compression.methods.grid import GridSpec
from presso.compression.methods.registry import get_method
from presso.compression.prune.masks import check_divisible
from presso.compression.prune.spec import SparsitySpec
from presso.compression.recipes.load import method_params
from presso.compression.recipes.schema import Recipe, Step


@dataclass(frozen=True, slots=True)
class LayerPlan:
    name: str  # full module name, e.g. model.layers.3.mlp.down_proj
    step: int  # index into recipe.steps
    method: str
    spec: GridSpec | None  # None: the step prunes only, or its method is a codebook method (aqlm)
    params: BaseModel
    fallback: str | None  # e.g. "group_size 128 -> 96: 128 does not divide in_features 576"
    sparsity: SparsitySpec | None = None  # None: the step quantizes only

    @property
    def kinds(self) -> frozenset[str]:
        quantizes = self.spec is not None or get_method(self.method).codebook
        return frozenset(k for k, on in (("quantize", quantizes), ("prune", self.sparsity is not None)) if on)


def matches(pattern: str, name: str, module: torch.nn.Module) -> bool:
    if pattern.startswith("re:"):
        return re.fullmatch(pattern[3:], name) is not None
    if any(ch in pattern for ch in "*?["):
        return fnmatch.fnmatchcase(name, pattern)
    return pattern == name or pattern == type(module).__name__


def _largest_divisor(n: int, limit: int) -> int:
    return max(d for d in range(1, min(n, limit) + 1) if n % d == 0)


def _grid(step: Step, index: int, name: str, in_features: int) -> tuple[GridSpec, str | None]:
    if step.group_size == "channel" or in_features % step.group_size == 0:
        group = None if step.group_size == "channel" else step.group_size
        return GridSpec(step.bits, group, step.symmetric, step.scale_dtype), None
    why = f"{step.group_size} does not divide in_features {in_features}"
    if step.group_fallback == "error":
        raise PressoInputError(
            f"layer {name}: group_size {why} (recipe steps.{index}.group_size; set "
            f"steps.{index}.group_fallback to largest-divisor or channel to fall back)"
        )
    if step.group_fallback == "channel":
        return GridSpec(step.bits, None, step.symmetric, step.scale_dtype), f"group_size {step.group_size} -> channel: {why}"
    size = _largest_divisor(in_features, step.group_size)
    return GridSpec(step.bits, size, step.symmetric, step.scale_dtype), f"group_size {step.group_size} -> {size}: {why}"


def resolve_plan(recipe: Recipe, model: torch.nn.Module) -> list[LayerPlan]:
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    claimed: dict[tuple[str, str], LayerPlan] = {}  # (module name, "quantize" | "prune") -> plan
    for index, step in enumerate(recipe.steps):
        params = method_params(step.method, step.params, "", index)
        sparsity = step.sparsity_spec
        quantizes = step.bits is not None or get_method(step.method).codebook
        kinds = [k for k, on in (("quantize", quantizes), ("prune", sparsity is not None)) if on]
        hits = 0
        for name, module in linears:
            if not any(matches(p, name, module) for p in step.targets):
                continue
            if any(matches(p, name, module) for p in step.ignore) or any((name, k) in claimed for k in kinds):
                continue
            if sparsity is not None and (why := check_divisible(name, module.in_features, sparsity)):
                raise PressoInputError(f"{why} (recipe steps.{index}.sparsity {step.sparsity!r})")
            spec, fallback = _grid(step, index, name, module.in_features) if step.bits is not None else (None, None)
            plan = LayerPlan(name, index, step.method, spec, params, fallback, sparsity)
            claimed.update({(name, k): plan for k in kinds})
            hits += 1
        if hits == 0:
            raise PressoInputError(
                f"recipe steps.{index}.targets: {step.targets} matched no Linear module that is not ignored "
                f"or claimed by an earlier step"
            )
    order = {name: i for i, (name, _) in enumerate(linears)}
    plans = {id(p): p for p in claimed.values()}.values()  # a joint plan is claimed under both kinds
    return sorted(plans, key=lambda p: (order[p.name], p.step))
