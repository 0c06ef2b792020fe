"""Pruning in recipes: `sparsity` validation names the field, presets load, and resolve_plan gives a Linear
one pruning and one quantizing plan (in recipe order) while first-match-wins still holds per kind."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from presso.compression.checkpoint.errors import PressoInputError
from presso.compression.recipes import load_recipe, resolve_plan

DOCS = Path(__file__).resolve().parents[2] / "docs" / "recipes"
PRUNE_PRESETS = [f"{m}-{t}" for m in ("magnitude", "wanda", "sparsegpt") for t in ("50", "2of4")]


def _write(tmp_path, text: str) -> str:
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return str(path)


class _Toy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.up = torch.nn.Linear(96, 256)
        self.down = torch.nn.Linear(256, 96)
        self.odd = torch.nn.Linear(90, 8)  # 90 is not a multiple of 4
        self.lm_head = torch.nn.Linear(96, 10)


@pytest.mark.parametrize(
    "body,field",
    [
        ("steps:\n  - {method: wanda, sparsity: 1.5}\n", "steps.0.sparsity"),
        ("steps:\n  - {method: wanda, sparsity: '4:2'}\n", "steps.0.sparsity"),
        ("steps:\n  - {method: wanda, sparsity: 'half'}\n", "steps.0.sparsity"),
        ("steps:\n  - {method: wanda}\n", "steps.0.sparsity"),
        ("steps:\n  - {method: gptq, bits: 4, sparsity: 0.5}\n", "steps.0.sparsity"),
        ("steps:\n  - {method: wanda, sparsity: 0.5, bits: 4}\n", "steps.0.bits"),
        ("steps:\n  - {method: rtn}\n", "steps.0.bits"),
        ("steps:\n  - {method: sparsegpt, sparsity: 0.5, params: {damp: 0}}\n", "steps.0.params.damp"),
    ],
)
def test_errors_name_the_field(tmp_path, body, field):
    path = _write(tmp_path, body)
    with pytest.raises(PressoInputError) as info:
        load_recipe(path)
    assert f": {field}:" in str(info.value) and path in str(info.value), str(info.value)


@pytest.mark.parametrize("name", [*PRUNE_PRESETS, "sparsegpt-2of4-w4g64"])
def test_prune_presets_load(name):
    step = load_recipe(name).steps[0]
    assert step.sparsity_spec.ratio == pytest.approx(0.5)
    assert (step.bits == 4) == name.endswith("w4g64")


def test_nm_must_divide_in_features(tmp_path):
    path = _write(tmp_path, "steps:\n  - {method: magnitude, sparsity: '2:4'}\n")
    with pytest.raises(PressoInputError, match=r"layer odd: in_features 90 is not a multiple of M=4.*steps.0.sparsity"):
        resolve_plan(load_recipe(path), _Toy())


@pytest.mark.parametrize("yaml_name,first", [("prune-then-quant-2of4-w4g64.yaml", "sparsegpt"),
                                             ("quant-then-prune-2of4-w4g64.yaml", "gptq")])
def test_two_step_recipes_give_both_plans_in_order(yaml_name, first):
    model = torch.nn.Sequential()
    model.add_module("up", torch.nn.Linear(128, 64))
    plans = resolve_plan(load_recipe(str(DOCS / yaml_name)), model)
    assert [p.method for p in plans][0] == first and len(plans) == 2
    assert {k for p in plans for k in p.kinds} == {"prune", "quantize"}
    assert plans[0].step < plans[1].step


def test_first_match_wins_per_kind(tmp_path):
    path = _write(tmp_path, "steps:\n  - {method: rtn, bits: 8, targets: [down]}\n"
                            "  - {method: magnitude, sparsity: 0.5, targets: [down, up]}\n"
                            "  - {method: rtn, bits: 4, group_size: 32, ignore: [odd, lm_head]}\n"
                            "  - {method: wanda, sparsity: '2:4', targets: [down]}\n")
    with pytest.raises(PressoInputError, match="steps.3.targets"):  # down's pruning step is taken
        resolve_plan(load_recipe(path), _Toy())
    path = _write(tmp_path, "steps:\n  - {method: rtn, bits: 8, targets: [down]}\n"
                            "  - {method: magnitude, sparsity: 0.5, targets: [down, up]}\n"
                            "  - {method: rtn, bits: 4, group_size: 32, ignore: [odd, lm_head]}\n")
    plans = resolve_plan(load_recipe(path), _Toy())
    by = {(p.name, p.step): p for p in plans}
    assert set(by) == {("up", 1), ("up", 2), ("down", 0), ("down", 1)}
    assert by[("down", 0)].spec.bits == 8 and by[("up", 2)].spec.bits == 4 and by[("up", 1)].spec is None


def test_joint_step_claims_both_kinds(tmp_path):
    path = _write(tmp_path, "steps:\n  - {method: sparsegpt, sparsity: '2:4', bits: 4, group_size: 32, "
                            "targets: [up]}\n  - {method: gptq, bits: 4, targets: [up, down]}\n")
    plans = resolve_plan(load_recipe(path), _Toy())
    assert [(p.name, p.method, sorted(p.kinds)) for p in plans] == [
        ("up", "sparsegpt", ["prune", "quantize"]), ("down", "gptq", ["quantize"])]
