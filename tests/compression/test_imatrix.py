"""The importance-weighted grid search (methods/imatrix.py) against RTN on synthetic layers."""

from __future__ import annotations

import pytest
import torch

from presso.compression.methods import LayerStats, get_method
from presso.compression.methods.grid import GridSpec
from presso.compression.methods.imatrix import importance


def _weighted_error(w, qw, imp) -> float:
    return float((imp * (w - qw.dequantize()).square()).sum())


def _layer(out_features=64, in_features=256, seed=0):
    gen = torch.Generator().manual_seed(seed)
    linear = torch.nn.Linear(in_features, out_features, bias=False)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(out_features, in_features, generator=gen) * 0.05)
    return linear, gen


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("bits,group,scale_dtype", [(4, 32, "float16"), (4, 64, "float32"), (3, 64, "float16"),
                                                    (2, 32, "float32"), (4, None, "float32")])
def test_weighted_error_never_worse_than_rtn(bits, group, scale_dtype, symmetric):
    linear, gen = _layer()
    x = torch.randn(512, 256, generator=gen) * (torch.rand(256, generator=gen) * 4 + 0.05)  # uneven columns
    stats = LayerStats(hessian=2 * x.T @ x / x.shape[0], tokens=x.shape[0])
    spec = GridSpec(bits, group, symmetric, scale_dtype)
    method = get_method("imatrix")
    qw = method.quantize(linear, stats, spec, method.params())
    rtn = get_method("rtn").quantize(linear, None, spec, get_method("rtn").params())
    imp = importance(stats.hessian, method.params().floor)
    w = linear.weight.detach()
    assert _weighted_error(w, qw, imp) <= _weighted_error(w, rtn, imp) * (1 + 1e-6)
    assert _weighted_error(w, qw, imp) < _weighted_error(w, rtn, imp) * 0.95  # and the search does find better
    assert qw.codes.dtype == torch.int8 and int(qw.codes.min()) >= spec.qmin and int(qw.codes.max()) <= spec.qmax
    if scale_dtype == "float16":  # stored in fp16 without changing the reconstruction
        assert torch.equal(qw.scale.half().float(), qw.scale)
    if symmetric:
        assert qw.zero is None or not qw.zero.any()  # the kernels type drops symmetric zeros


def test_planted_outlier_column_is_kept_accurate():
    """One input column carries 1000x the activation energy: its weights must come out more exactly
    than RTN makes them (one scale per group: the search trades the other columns for it)."""
    linear, gen = _layer(seed=1)
    with torch.no_grad():
        linear.weight[:, 100] *= 0.3  # a small-magnitude column (rounded coarsely by a min-max grid)
    x = torch.randn(1024, 256, generator=gen)
    x[:, 100] *= 30.0
    stats = LayerStats(hessian=2 * x.T @ x / x.shape[0], tokens=x.shape[0])
    spec = GridSpec(4, 64, True, "float16")
    method = get_method("imatrix")
    qw = method.quantize(linear, stats, spec, method.params())
    rtn = get_method("rtn").quantize(linear, None, spec, get_method("rtn").params())
    w = linear.weight.detach()
    col_err = (w[:, 100] - qw.dequantize()[:, 100]).square().mean()
    rtn_col_err = (w[:, 100] - rtn.dequantize()[:, 100]).square().mean()
    assert col_err < 0.7 * rtn_col_err, (float(col_err), float(rtn_col_err))
    out_err = (x @ (w - qw.dequantize()).T).square().mean()
    rtn_out_err = (x @ (w - rtn.dequantize()).T).square().mean()
    assert out_err < 0.8 * rtn_out_err  # measured 0.65


def test_imatrix_keeps_pruned_zeros():
    linear, gen = _layer(seed=2)
    x = torch.randn(256, 256, generator=gen)
    keep = torch.rand(64, 256, generator=gen) > 0.5
    stats = LayerStats(hessian=2 * x.T @ x / x.shape[0], tokens=x.shape[0], keep=keep)
    method = get_method("imatrix")
    qw = method.quantize(linear, stats, GridSpec(4, 32, False), method.params())
    assert (qw.dequantize()[~keep] == 0).all()


def test_gptq_on_imatrix_grids_beats_rtn_on_outputs():
    linear, gen = _layer(seed=3)
    x = torch.randn(1024, 256, generator=gen) * (torch.rand(256, generator=gen) * 3 + 0.1)
    stats = LayerStats(hessian=2 * x.T @ x / x.shape[0], tokens=x.shape[0])
    spec = GridSpec(3, 32, True, "float16")
    gptq = get_method("gptq")
    qw = gptq.quantize(linear, stats, spec, gptq.params(imatrix=True, actorder=True))
    rtn = get_method("rtn").quantize(linear, None, spec, get_method("rtn").params())
    w = linear.weight.detach()
    assert torch.equal(qw.scale.half().float(), qw.scale)
    assert (x @ (w - qw.dequantize()).T).square().mean() < 0.8 * (x @ (w - rtn.dequantize()).T).square().mean()
