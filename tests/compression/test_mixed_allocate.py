"""Mixed precision without a model: the knapsack allocator, the byte formula, the `mixed` schema."""

from __future__ import annotations

import itertools
import random

import pytest

from presso.compression.checkpoint.errors import PressoInputError
from presso.compression.methods.grid import GridSpec
from presso.compression.mixed import MixedSpec, Option, allocate, linear_bytes, parse_size
from presso.compression.recipes import load_recipe

NUMEL = 1000


def _table(losses: list[dict[int, float]]) -> list[list[Option]]:
    return [[Option(bits, NUMEL * bits // 8, loss) for bits, loss in layer.items()] for layer in losses]


def _brute(layers: list[list[Option]], budget: int) -> float:
    best = float("inf")
    for combo in itertools.product(*layers):
        if sum(o.nbytes for o in combo) <= budget:
            best = min(best, sum(o.loss for o in combo))
    return best


def test_upgrades_go_to_the_sensitive_layers():
    # A is very sensitive to 2 bits, C somewhat, B hardly: at 4 bits on average, each gets 4 bits;
    # at 3.33 bits on average (one 2->4 upgrade of 250 B) only A gets it.
    layers = _table([{2: 100.0, 4: 1.0, 8: 0.0}, {2: 1.0, 4: 0.2, 8: 0.0}, {2: 10.0, 4: 0.1, 8: 0.0}])
    assert [layers[i][k].key for i, k in enumerate(allocate(layers, 1500))] == [4, 4, 4]
    assert [layers[i][k].key for i, k in enumerate(allocate(layers, 1000))] == [4, 2, 2]
    assert [layers[i][k].key for i, k in enumerate(allocate(layers, 3000))] == [8, 8, 8]


def test_greedy_is_near_brute_force_and_fills_the_budget():
    rng = random.Random(0)
    for _ in range(30):
        # convex, decreasing losses per layer (error roughly halves per extra bit), random sensitivities
        layers = _table([{b: s * 4.0 ** -b for b in (2, 3, 4, 8)} for s in [rng.uniform(0.1, 10) for _ in range(5)]])
        for budget in range(1250, 5001, 125):
            choice = allocate(layers, budget)
            used = sum(layers[i][k].nbytes for i, k in enumerate(choice))
            assert used <= budget
            upgrades = [o.nbytes - layers[i][k].nbytes for i, k in enumerate(choice) for o in layers[i]
                        if o.loss < layers[i][k].loss]
            assert not upgrades or budget - used < min(upgrades)  # within one layer's granularity
            # greedy knapsack bound: within the loss span of one layer of the optimum
            loss = sum(layers[i][k].loss for i, k in enumerate(choice))
            span = max(max(o.loss for o in opts) - min(o.loss for o in opts) for opts in layers)
            assert _brute(layers, budget) <= loss <= _brute(layers, budget) + span


def test_infeasible_target_is_an_input_error():
    with pytest.raises(PressoInputError, match="smallest candidates"):
        allocate(_table([{2: 1.0, 4: 0.5}]), 100)


def test_linear_bytes_match_compressed_tensors_layout():
    # q_proj of SmolLM2 at 3 bits, group 64, fp32 scales: what report.json measured (3.50039 bits/weight)
    nbytes = linear_bytes(576, 576, GridSpec(3, 64, True))
    assert nbytes == 576 * 54 * 4 + 576 * 9 * 4 + 16
    assert abs(8 * nbytes / (576 * 576) - 3.5003858024691357) < 1e-12
    assert linear_bytes(576, 1536, GridSpec(4, None, False)) == 576 * 192 * 4 + 576 * 4 + 72 * 4 + 16


def test_schema_candidates_targets_and_sizes():
    spec = MixedSpec(target_bits=3.5, candidates=[2, "w3", "w4g128", 2], group_size=64)
    assert spec.grid_specs() == [GridSpec(2, 64, True), GridSpec(3, None, True), GridSpec(4, 128, True)]
    assert parse_size("60MB") == 60_000_000 and parse_size("1.5MiB") == 1572864 and parse_size(7) == 7
    assert load_recipe("mixed-gptq-3.0").mixed.target_bits == 3.0
    for bad, field in [({"target_bits": 3, "target_size": "1MB"}, "exactly one"),
                       ({"target_bits": 3, "candidates": ["w5"]}, "candidates"),
                       ({"target_size": "lots"}, "target_size"),
                       ({"target_bits": 3, "params": {"damp": -1}}, "params.damp")]:
        with pytest.raises(ValueError, match=field):
            MixedSpec(**bad)


def test_recipe_with_steps_and_mixed_is_rejected(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("mixed: {target_bits: 3}\nsteps:\n  - {method: rtn, bits: 4}\n")
    with pytest.raises(PressoInputError, match="steps.*not both"):
        load_recipe(str(path))
