"""Row-exact OBS (compression/prune/rowobs.py) against a readable per-row twin.

The twin solves each row alone: w_K* = w_K + H_KK^-1 H_KP w_P with an explicit inverse, then GPTQ's update
w[j:] -= (w_j - q_j) / U_jj * U[j, j:] with U the upper Cholesky factor of H_KK^-1. The fast path (batched
rows, Babai's nearest-plane form from one Cholesky of the reversed H_KK) must give the same weights and
codes; its compensation must be the least-squares optimum for the mask (zero gradient on kept coordinates).
"""

from __future__ import annotations

import pytest
import torch

from presso.compression.methods.gptq import damped
from presso.compression.methods.grid import GridSpec, quantize_codes
from presso.compression.prune.rowobs import GridFit, exact_rows

OUT, IN, TOKENS = 24, 96, 512


@pytest.fixture(scope="module")
def layer():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(TOKENS, IN, generator=g) @ (torch.eye(IN) + 0.3 * torch.randn(IN, IN, generator=g) / IN**0.5)
    x[:, :4] *= 6  # a few outlier features
    w = torch.randn(OUT, IN, generator=g) * 0.05
    keep = torch.rand(OUT, IN, generator=g) > torch.linspace(0.3, 0.7, OUT)[:, None]  # uneven counts per row
    return w, damped(2.0 / TOKENS * x.T @ x, 0.01), keep


def twin(w, h, keep, grid: GridFit | None, actorder: bool):
    """One row at a time, float64, written as the math reads."""
    w, h = w.double(), h.double()
    out = torch.zeros_like(w)
    codes = torch.zeros_like(w)
    width = grid.spec.width(IN) if grid else IN
    for r in range(w.shape[0]):
        kept = keep[r].nonzero()[:, 0]
        if actorder:
            kept = kept[torch.argsort(-h.diagonal()[kept], stable=True)]
        pruned = (~keep[r]).nonzero()[:, 0]
        h_kk = h[kept][:, kept]
        wk = w[r, kept] + torch.linalg.inv(h_kk) @ h[kept][:, pruned] @ w[r, pruned]
        if grid is not None:
            scale, zero = (t[r].double() for t in grid.fixed)
            u = torch.linalg.cholesky(torch.linalg.inv(h_kk), upper=True)
            for j in range(len(kept)):
                g = int(kept[j]) // width
                q = quantize_codes(wk[j], scale[g], zero[g], grid.spec)
                codes[r, kept[j]] = q
                err = (wk[j] - (q - zero[g]) * scale[g]) / u[j, j]
                wk[j:] = wk[j:] - err * u[j, j:]
        out[r, kept] = wk
    return out.float(), codes


@pytest.mark.parametrize("actorder", [True, False])
def test_compensation_is_the_masked_least_squares_optimum(layer, actorder):
    w, h, keep = layer
    res = exact_rows(w, h, keep, None, actorder, budget=5 * 4 * 70**2)  # chunks of ~5 rows, padded
    assert res.quantized is None and torch.all(res.weight[~keep] == 0)
    torch.testing.assert_close(res.weight, twin(w, h, keep, None, actorder)[0], atol=1e-5, rtol=1e-4)
    grad = (res.weight - w) @ h  # d/dw_hat of (w_hat - w) H (w_hat - w)^T / 2, per row
    assert grad[keep].abs().max() < 1e-4 * grad[~keep].abs().max()  # zero on kept coordinates only


@pytest.mark.parametrize("actorder", [True, False])
def test_quantization_pass_matches_the_twin(layer, actorder):
    w, h, keep = layer
    spec = GridSpec(4, 32, True)
    comp = exact_rows(w, h, keep).weight
    scale, zero = GridFit(spec, clip=(10, 0.6)).grids(comp, h, slice(None))
    grid = GridFit(spec, fixed=(scale, zero))
    res = exact_rows(w, h, keep, grid, actorder, budget=5 * 4 * 70**2)
    ref_w, ref_codes = twin(w, h, keep, grid, actorder)
    qw = res.quantized
    assert torch.all(qw.codes[~keep] == 0)  # symmetric grid: zero point 0, so pruned weights are exact 0
    assert torch.equal(qw.dequantize() * keep, res.weight)
    same = (qw.codes.double() == ref_codes)[keep].float().mean()
    assert same > 0.995, f"only {same:.4f} of codes agree with the float64 twin"
    d_fast, d_ref = w - res.weight, w - ref_w
    err_fast, err_ref = float(((d_fast @ h) * d_fast).sum()), float(((d_ref @ h) * d_ref).sum())
    assert err_fast == pytest.approx(err_ref, rel=1e-3)


def test_pass_beats_rounding_the_compensated_weights():
    """On strongly correlated inputs (a rank-16 signal plus noise) the per-row OBS pass must do clearly
    better than rounding the optimal kept weights to nearest."""
    g = torch.Generator().manual_seed(2)
    x = torch.randn(TOKENS, 16, generator=g) @ torch.randn(16, IN, generator=g) + 0.2 * torch.randn(TOKENS, IN, generator=g)
    h = damped(2.0 / TOKENS * x.T @ x, 0.01)
    w = torch.randn(OUT, IN, generator=g) * 0.05
    keep = torch.rand(OUT, IN, generator=g) > 0.5
    spec = GridSpec(3, 32, True)
    comp = exact_rows(w, h, keep).weight
    grid = GridFit(spec, fixed=GridFit(spec).grids(comp, h, slice(None)))
    joint = exact_rows(w, h, keep, grid).weight
    s, z = (t.repeat_interleave(spec.width(IN), 1) for t in grid.fixed)
    nearest = (quantize_codes(comp, s, z, spec) - z) * s * keep

    def err(w_hat):
        d = w - w_hat
        return float(((d @ h) * d).sum())

    assert err(joint) < 0.5 * err(nearest), (err(joint), err(nearest))
