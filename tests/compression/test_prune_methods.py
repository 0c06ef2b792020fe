"""Pruning methods on synthetic layers: masks exactly as requested, and Wanda/SparseGPT beat magnitude.

Unstructured masks are exact per row (magnitude and Wanda prune round(ratio * in) weights of every row;
SparseGPT round(ratio * 128) of every row of each 128-column block); N:M keeps exactly N of every group of
M columns of every row. Output error = tr(D H D^T) / tr(W H W^T) with D = W - W_hat, H = 2/n X^T X.
"""

from __future__ import annotations

import pytest
import torch

from presso.compression.methods import get_method
from presso.compression.methods.grid import GridSpec
from presso.compression.methods.registry import LayerStats
from presso.compression.prune import parse_sparsity
from presso.compression.prune.obs import sparsegpt

OUT, IN, TOKENS = 64, 256, 2048


@pytest.fixture(scope="module")
def layer():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(TOKENS, IN, generator=g) * (torch.rand(IN, generator=g) * 3)  # uneven input norms
    x[:, :8] += 5 * torch.randn(TOKENS, 8, generator=g)  # a few outlier features, as in LLMs
    linear = torch.nn.Linear(IN, OUT, bias=False)
    linear.weight.data = torch.randn(OUT, IN, generator=g) * 0.05
    return linear, LayerStats(hessian=2.0 / TOKENS * x.T @ x, tokens=TOKENS)


def _prune(method, layer, sparsity, grid=None):
    linear, stats = layer
    m = get_method(method)
    return m.prune(linear, stats, parse_sparsity(sparsity), grid, m.params())


def _error(layer, w_hat) -> float:
    linear, stats = layer
    w, h = linear.weight.detach(), stats.hessian
    d = w - w_hat
    return float(((d @ h) * d).sum() / ((w @ h) * w).sum())


@pytest.mark.parametrize("method", ["magnitude", "wanda", "sparsegpt"])
@pytest.mark.parametrize("sparsity", [0.5, 0.3, "2:4", "4:8", "1:4"])
def test_mask_is_exactly_as_requested(layer, method, sparsity):
    res = _prune(method, layer, sparsity)
    assert res.keep.dtype == torch.bool and res.keep.shape == (OUT, IN)
    assert torch.all(res.weight[~res.keep] == 0)  # pruned weights are exactly zero
    spec = parse_sparsity(sparsity)
    if spec.m is not None:
        per_group = res.keep.reshape(OUT, IN // spec.m, spec.m).sum(-1)  # kept per group of M, every row
        assert torch.all(per_group == spec.n)
    else:
        pruned_per_row = (~res.keep).sum(1)
        width = 128 if method == "sparsegpt" else IN
        assert torch.all(pruned_per_row == (IN // width) * round(spec.ratio * width))
    assert res.sparsity == pytest.approx(spec.ratio, abs=0.5 / 128)  # rounding to whole weights


@pytest.mark.parametrize("sparsity", [0.5, "2:4"])
def test_wanda_and_sparsegpt_beat_magnitude(layer, sparsity):
    err = {m: _error(layer, _prune(m, layer, sparsity).weight) for m in ("magnitude", "wanda", "sparsegpt")}
    assert err["wanda"] < err["magnitude"] and err["sparsegpt"] < err["magnitude"], err
    assert err["sparsegpt"] <= err["wanda"] * 1.001, err  # the weight update can only help here
    m = get_method("sparsegpt")
    shared = m.prune(layer[0], layer[1], parse_sparsity(sparsity), None, m.params(exact_rows=False))
    assert err["sparsegpt"] < _error(layer, shared.weight)  # row-exact compensation beats the shared-H updates
    assert torch.equal(shared.keep, _prune("sparsegpt", layer, sparsity).keep)  # same adaptive mask


def test_joint_pass_codes_and_error(layer):
    """Joint prune+quantize: pruned codes are the zero point (exact 0), kept weights lie on the grid, and
    the error is no worse than pruning then quantizing with GPTQ (which honours the mask)."""
    linear, stats = layer
    spec = GridSpec(4, 64, True)
    joint = _prune("sparsegpt", layer, "2:4", spec)
    qw = joint.quantized
    assert qw is not None and torch.equal(qw.dequantize(), joint.weight)
    assert torch.all(qw.codes[~joint.keep] == 0)
    pruned = _prune("sparsegpt", layer, "2:4")
    after = torch.nn.Linear(IN, OUT, bias=False)
    after.weight.data = pruned.weight.clone()
    gptq = get_method("gptq")
    params = gptq.params(actorder=True, clip=True)
    seq = gptq.quantize(after, LayerStats(stats.hessian, stats.tokens, pruned.keep), spec, params)
    assert torch.all(seq.dequantize()[~pruned.keep] == 0)  # GPTQ kept the mask
    # Measured here (2:4, w4g64): row-exact joint (the default) 0.08253, prune (row-exact) -> gptq(actorder,
    # clip) 0.08253; with SparseGPT's shared-Hessian updates (exact_rows: false): act-order joint 0.08487,
    # column-order joint 0.08426, prune -> gptq 0.08420. On SmolLM2's real layers the row-exact joint pass is
    # 1-1.5 % below row-exact prune -> gptq and 20-25 % below the shared-Hessian variants.
    params = get_method("sparsegpt").params
    column = get_method("sparsegpt").prune(linear, stats, parse_sparsity("2:4"), spec, params(actorder=False))
    shared = [get_method("sparsegpt").prune(linear, stats, parse_sparsity("2:4"), spec,
                                            params(actorder=a, exact_rows=False)) for a in (True, False)]
    assert torch.equal(joint.keep, pruned.keep)  # the joint pass keeps SparseGPT's adaptive mask
    for res in (joint, column, *shared):
        assert torch.equal(res.quantized.dequantize(), res.weight) and torch.all(res.weight[~res.keep] == 0)
    for res in (joint, column):
        assert _error(layer, res.weight) <= 1.01 * _error(layer, seq.dequantize()), "joint worse than prune->gptq"
    assert _error(layer, joint.weight) < min(_error(layer, r.weight) for r in shared)
    plain = gptq.quantize(after, LayerStats(stats.hessian, stats.tokens, pruned.keep), spec, gptq.params())
    assert _error(layer, joint.weight) < _error(layer, plain.dequantize())


def test_quantize_then_prune_stays_on_grid(layer):
    linear, stats = layer
    spec = GridSpec(4, 64, True)
    gptq = get_method("gptq")
    q0 = gptq.quantize(linear, stats, spec, gptq.params())
    on_grid = torch.nn.Linear(IN, OUT, bias=False)
    on_grid.weight.data = q0.dequantize()
    for method in ("wanda", "sparsegpt"):
        m = get_method(method)
        res = m.prune(on_grid, stats, parse_sparsity("2:4"), q0, m.params())
        assert torch.equal(res.quantized.scale, q0.scale)  # the step-1 grid is kept
        assert torch.equal(res.quantized.dequantize(), res.weight) and torch.all(res.weight[~res.keep] == 0)
        if method == "wanda":  # no update: kept codes unchanged
            assert torch.equal(res.quantized.codes[res.keep], q0.codes[res.keep])


def test_no_update_variant_keeps_codes(layer):
    linear, stats = layer
    spec = GridSpec(4, 64, True)
    q0 = get_method("rtn").quantize(linear, None, spec, get_method("rtn").params())
    res = sparsegpt(q0.dequantize(), stats.hessian, parse_sparsity(0.5), q0, propagate=False)
    assert torch.equal(res.quantized.codes[res.keep], q0.codes[res.keep])
