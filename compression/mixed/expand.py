"""Turn a recipe's `mixed` section into ordinary steps: measure, allocate, emit one step per bit width.

Recipe(mixed=...) + dense model + calibration windows -> targeted Linears (the step resolver's own
matching) -> candidate grids valid per Linear -> sensitivity.measure -> budget from target_bits
(targeted Linears) or target_size (whole checkpoint) -> allocate -> Recipe(steps=[one step per chosen
grid, targets = exact module names]) and a JSON summary (per-layer bits, bytes, sensitivities) that goes
into presso.json and report.json. The generated recipe reproduces the checkpoint without re-measuring.
"""

from __future__ import annotations

import math

import torch

from presso.compression.checkpoint.errors import PressoInputError
from presso.compression.methods.grid import GridSpec
from presso.compression.mixed.allocate import Option, allocate
from presso.compression.mixed.budget import HEADER_ENTRY_BYTES, fixed_bytes, linear_bytes, linear_tensor_count
from presso.compression.mixed.schema import MixedSpec, candidate_label, parse_size
from presso.compression.mixed.sensitivity import SensitivityResult, measure
from presso.compression.recipes.load import method_params
from presso.compression.recipes.resolve import resolve_plan
from presso.compression.recipes.schema import Recipe, Step


def targeted_linears(mixed: MixedSpec, model: torch.nn.Module) -> list[str]:
    probe = {"method": mixed.method, "bits": 8}
    if mixed.targets is not None:
        probe["targets"] = mixed.targets
    if mixed.ignore is not None:
        probe["ignore"] = mixed.ignore
    try:
        plans = resolve_plan(Recipe(steps=[Step(**probe)]), model)
    except PressoInputError as exc:
        raise PressoInputError(str(exc).replace("recipe steps.0.", "recipe mixed.")) from None
    return [p.name for p in plans]


def _valid_specs(mixed: MixedSpec, linear: torch.nn.Linear) -> list[GridSpec]:
    return [s for s in mixed.grid_specs() if s.group_size is None or linear.in_features % s.group_size == 0]


def _embedding_saving(recipe: Recipe, model: torch.nn.Module) -> tuple[int, int]:
    """(bytes the recipe's `embeddings` RTN saves vs the fp32 table, extra tensors it writes) for target_size."""
    if recipe.embeddings is None:
        return 0, 0
    weight = model.get_input_embeddings().weight  # (V, hidden) fp32
    group = None if recipe.embeddings.group_size == "channel" else recipe.embeddings.group_size
    spec = GridSpec(recipe.embeddings.bits, group, recipe.embeddings.symmetric)
    packed = linear_bytes(weight.shape[0], weight.shape[1], spec)
    return weight.numel() * weight.element_size() - packed, linear_tensor_count(spec) - 1


def _budget(recipe: Recipe, mixed: MixedSpec, model: torch.nn.Module, names: list[str],
            specs: dict[str, list[GridSpec]]) -> dict:
    modules = dict(model.named_modules())
    numel = sum(modules[n].weight.numel() for n in names)
    if mixed.target_bits is not None:
        return {"kind": "target_bits", "target_bits": mixed.target_bits,
                "linears_bytes": math.floor(mixed.target_bits * numel / 8), "numel": numel}
    target = parse_size(mixed.target_size)
    fixed, tensors = fixed_bytes(model, set(names))
    saving, extra = _embedding_saving(recipe, model)  # the embedding is quantized after the Linears
    fixed, tensors = fixed - saving, tensors + extra
    entries = tensors + sum(max(linear_tensor_count(s) for s in specs[n]) for n in names) + 1
    header = 8 + HEADER_ENTRY_BYTES * entries
    return {"kind": "target_size", "target_size": mixed.target_size, "target_bytes": target,
            "fixed_bytes": fixed, "header_bytes_max": header,
            "linears_bytes": target - fixed - header, "numel": numel}


def expand_mixed(recipe: Recipe, model: torch.nn.Module, windows: torch.Tensor, target_bits: float | None = None,
                 target_size: str | None = None, progress: bool = True) -> tuple[Recipe, dict]:
    """-> (recipe with generated steps, summary for presso.json / report.json)."""
    if recipe.mixed is None:
        raise PressoInputError("--target-bits/--target-size need a recipe with a `mixed` section "
                               "(e.g. --recipe mixed-gptq-3.5)")
    mixed = recipe.mixed.with_target(target_bits, target_size)
    params = method_params(mixed.method, mixed.params)
    error_method = mixed.error_method or mixed.method
    if mixed.error_params is not None:
        error_params = method_params(error_method, mixed.error_params)
    else:
        error_params = params if error_method == mixed.method else method_params(error_method, {})
    modules = dict(model.named_modules())
    names = targeted_linears(mixed, model)
    specs = {n: _valid_specs(mixed, modules[n]) for n in names}
    if bad := [n for n in names if not specs[n]]:
        raise PressoInputError(f"recipe mixed.candidates: no candidate group size divides the in-features of {bad[0]}")
    budget = _budget(recipe, mixed, model, names, specs)
    if budget["linears_bytes"] <= 0:
        raise PressoInputError(f"recipe mixed.target_size {mixed.target_size}: the parts that are not mixed "
                               f"already take {budget['fixed_bytes'] + budget['header_bytes_max']} bytes")
    pick = torch.linspace(0, windows.shape[0] - 1, min(mixed.samples, windows.shape[0])).round().long()
    sens = measure(model, names, specs, windows[pick], error_method, error_params, progress)
    options = [[Option(s, linear_bytes(layer.out_features, layer.in_features, s), layer.loss[s]) for s in specs[layer.name]]
               for layer in sens.layers]
    choice = allocate(options, budget["linears_bytes"])
    chosen = {layer.name: options[i][k] for i, (layer, k) in enumerate(zip(sens.layers, choice, strict=True))}
    return _recipe(recipe, mixed, chosen), _summary(mixed, budget, sens, chosen)


def _recipe(recipe: Recipe, mixed: MixedSpec, chosen: dict[str, Option]) -> Recipe:
    by_spec: dict[GridSpec, list[str]] = {}
    for name, option in chosen.items():
        by_spec.setdefault(option.key, []).append(name)
    steps = [Step(method=mixed.method, targets=names, ignore=[], bits=spec.bits,
                  group_size="channel" if spec.group_size is None else spec.group_size,
                  symmetric=spec.symmetric, params=mixed.params)
             for spec, names in sorted(by_spec.items(), key=lambda kv: (kv[0].bits, kv[0].group_size or 0))]
    return recipe.model_copy(update={"mixed": None, "steps": steps})  # embeddings/structured/distill kept


def _summary(mixed: MixedSpec, budget: dict, sens: SensitivityResult, chosen: dict[str, Option]) -> dict:
    used = sum(o.nbytes for o in chosen.values())
    counts: dict[str, int] = {}
    for option in chosen.values():
        counts[candidate_label(option.key)] = counts.get(candidate_label(option.key), 0) + 1
    return {
        "spec": mixed.model_dump(mode="json"),
        "budget": budget,
        "predicted": {"linears_bytes": used, "bits_per_weight_linears": 8.0 * used / budget["numel"],
                      "delta_nll_per_token": sum(o.loss for o in chosen.values())},
        "counts": counts,
        "sensitivity": {"tokens": sens.tokens, "seconds": sens.seconds,
                        "error_method": mixed.error_method or mixed.method,
                        "proxy": "0.5 * sum_o E[g_o^2] * (D A D^T)_oo (K-FAC diagonal Fisher), nats/token"},
        "layers": [{"name": layer.name, "choice": candidate_label(chosen[layer.name].key),
                    "bits": chosen[layer.name].key.bits, "bytes": chosen[layer.name].nbytes,
                    "sensitivity": {candidate_label(s): v for s, v in layer.loss.items()}}
                   for layer in sens.layers],
    }
