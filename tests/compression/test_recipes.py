"""Recipe validation: every error names the field (or the layer); presets load; fallbacks resolve."""

from __future__ import annotations

import pytest
import torch

from presso.compression.checkpoint.errors import PressoInputError
from presso.compression.recipes import PRESETS, load_recipe, resolve_plan


def _write(tmp_path, text: str):
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_load(name):
    """Every preset validates and does something: quantize or prune steps (AQLM: a codebook scheme), a
    mixed budget, or structured pruning."""
    recipe = load_recipe(name)
    assert recipe.steps or recipe.mixed is not None or recipe.structured is not None
    for step in recipe.steps:
        assert step.bits in (2, 3, 4, 8) or step.sparsity is not None or step.params["scheme"] == name[5:]


@pytest.mark.parametrize(
    "body,field",
    [
        ("steps:\n  - {method: rtn, bits: 5}\n", "steps.0.bits"),
        ("steps:\n  - {method: nope, bits: 4}\n", "steps.0.method"),
        ("steps:\n  - {method: rtn, bits: 4, group_size: 48}\n", "steps.0.group_size"),
        ("steps:\n  - {method: rtn, bits: 4, colour: red}\n", "steps.0.colour"),
        ("steps:\n  - {method: rtn, bits: 4}\n  - {method: gptq, bits: 4, params: {damp: -1}}\n",
         "steps.1.params.damp"),
        ("steps:\n  - {method: gptq, bits: 4, params: {speed: 3}}\n", "steps.0.params.speed"),
        ("steps:\n  - {method: rtn, bits: 4, targets: ['re:(']}\n", "steps.0.targets"),
        ("steps:\n  - {method: rtn, bits: 4, group_fallback: maybe}\n", "steps.0.group_fallback"),
        ("steps: []\n", "steps"),
        ("format_version: 9\nsteps:\n  - {method: rtn, bits: 4}\n", "format_version"),
        ("steps:\n  - {method: aqlm, bits: 2}\n", "steps.0.bits"),
        ("mixed: {target_bits: 3, method: aqlm}\n", "mixed.method"),
        ("steps:\n  - {method: aqlm, params: {scheme: 2y8}}\n", "steps.0.params.scheme"),
        ("steps:\n  - {method: aqlm, params: {scheme: 0x8}}\n", "steps.0.params.scheme"),
        ("steps:\n  - {method: aqlm}\n  - {method: rtn, bits: 4}\n", "(root)"),
        ("steps:\n  - {method: aqlm, targets: [q_proj]}\n  - {method: aqlm, params: {scheme: 1x8}}\n", "(root)"),
        ("steps:\n  - {bits: 4}\n", "steps.0.method"),
    ],
)
def test_validation_errors_name_the_field(tmp_path, body, field):
    path = _write(tmp_path, body)
    with pytest.raises(PressoInputError) as info:
        load_recipe(path)
    message = str(info.value)
    assert f": {field}:" in message and path in message, message


def test_bad_yaml_and_unknown_spec(tmp_path):
    with pytest.raises(PressoInputError, match="invalid YAML at line"):
        load_recipe(_write(tmp_path, "steps: [\n  - {method: rtn"))
    with pytest.raises(PressoInputError, match="neither a preset"):
        load_recipe("w5g7")


class _Toy(torch.nn.Module):
    """in_features 96: 64 and 128 do not divide it, 32 does."""

    def __init__(self):
        super().__init__()
        self.up = torch.nn.Linear(96, 256)
        self.down = torch.nn.Linear(256, 96)
        self.lm_head = torch.nn.Linear(96, 10)


def test_group_not_dividing_names_the_layer():
    with pytest.raises(PressoInputError, match=r"layer up: group_size 128 does not divide in_features 96"):
        resolve_plan(load_recipe("w4g128"), _Toy())


@pytest.mark.parametrize("fallback,expected", [("largest-divisor", 96), ("channel", None)])
def test_group_fallback_is_recorded(tmp_path, fallback, expected):
    path = _write(tmp_path, f"steps:\n  - {{method: rtn, bits: 4, group_size: 128, group_fallback: {fallback}}}\n")
    plans = {p.name: p for p in resolve_plan(load_recipe(path), _Toy())}
    assert set(plans) == {"up", "down"}  # lm_head is ignored by default
    assert plans["up"].spec.group_size == expected and "does not divide in_features 96" in plans["up"].fallback
    assert plans["down"].spec.group_size == 128 and plans["down"].fallback is None


def test_ordered_steps_first_match_wins(tmp_path):
    path = _write(tmp_path, "steps:\n  - {method: rtn, bits: 8, targets: [down]}\n"
                            "  - {method: rtn, bits: 4, group_size: 32}\n")
    plans = {p.name: p for p in resolve_plan(load_recipe(path), _Toy())}
    assert plans["down"].spec.bits == 8 and plans["up"].spec.bits == 4


def test_step_matching_nothing_is_an_error(tmp_path):
    path = _write(tmp_path, "steps:\n  - {method: rtn, bits: 8, targets: ['re:.*attn.*']}\n")
    with pytest.raises(PressoInputError, match=r"steps.0.targets"):
        resolve_plan(load_recipe(path), _Toy())
