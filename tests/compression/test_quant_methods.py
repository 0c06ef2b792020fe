"""Quantizer numerics on synthetic layers: the grid, GPTQ vs RTN output error, AWQ's clip search."""

from __future__ import annotations

import pytest
import torch

from presso.compression.methods import LayerStats, get_method
from presso.compression.methods.grid import GridSpec, rtn_quantize


def _layer_and_inputs(in_features=256, out_features=96, tokens=2048, seed=0):
    """A Linear and correlated, unevenly scaled inputs (like LLM activations). -> (linear, x (T, in))."""
    gen = torch.Generator().manual_seed(seed)
    linear = torch.nn.Linear(in_features, out_features, bias=False)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(out_features, in_features, generator=gen) * 0.05)
    mix = torch.randn(in_features, in_features, generator=gen) / in_features**0.5
    scales = torch.rand(in_features, generator=gen) * 3 + 0.1
    x = (torch.randn(tokens, in_features, generator=gen) @ mix + 0.3 * torch.randn(tokens, in_features,
                                                                                     generator=gen)) * scales
    return linear, x


def _output_error(linear, qw, x) -> float:
    return float((x @ (linear.weight.detach() - qw.dequantize()).T).pow(2).mean())


@pytest.mark.parametrize("bits,group", [(4, 64), (3, 64), (2, 64), (4, None), (8, None)])
@pytest.mark.parametrize("actorder,clip", [(False, False), (True, False), (True, True)])
def test_gptq_output_error_below_rtn(bits, group, actorder, clip):
    linear, x = _layer_and_inputs()
    stats = LayerStats(hessian=2 * x.T @ x / x.shape[0], tokens=x.shape[0])
    spec = GridSpec(bits, group, symmetric=True)
    gptq = get_method("gptq")
    params = gptq.params(actorder=actorder, clip=clip)
    q_gptq = gptq.quantize(linear, stats, spec, params)
    q_rtn = get_method("rtn").quantize(linear, None, spec, get_method("rtn").params())
    ratio = _output_error(linear, q_gptq, x) / _output_error(linear, q_rtn, x)
    assert ratio < (0.7 if actorder and clip else 0.98), ratio  # the presets use actorder + clip
    assert q_gptq.codes.dtype == torch.int8
    assert int(q_gptq.codes.min()) >= spec.qmin and int(q_gptq.codes.max()) <= spec.qmax


def test_gptq_handles_dead_inputs():
    linear, x = _layer_and_inputs()
    x[:, :7] = 0  # inputs that never fire: H has zero rows/cols
    stats = LayerStats(hessian=2 * x.T @ x / x.shape[0], tokens=x.shape[0])
    gptq = get_method("gptq")
    qw = gptq.quantize(linear, stats, GridSpec(4, 64, True), gptq.params())
    assert torch.isfinite(qw.dequantize()).all()


def test_awq_clip_never_worse_than_rtn():
    linear, x = _layer_and_inputs(seed=1)
    stats = LayerStats(hessian=2 * x.T @ x / x.shape[0], tokens=x.shape[0])
    spec = GridSpec(3, 64, symmetric=False)
    awq = get_method("awq")
    q_awq = awq.quantize(linear, stats, spec, awq.params())
    q_rtn = get_method("rtn").quantize(linear, None, spec, get_method("rtn").params())
    assert _output_error(linear, q_awq, x) <= _output_error(linear, q_rtn, x) * (1 + 1e-6)


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_rtn_grid_is_the_nearest_point(bits, symmetric):
    w = torch.randn(8, 128)
    spec = GridSpec(bits, 32, symmetric)
    codes, scale, zero = rtn_quantize(w, spec)
    assert scale.shape == zero.shape == (8, 4)
    if symmetric:
        assert not zero.any()
    # each weight is within half a step of its reconstruction (no clipping at min-max range)
    w_hat = ((codes.float().view(8, 4, 32) - zero[..., None]) * scale[..., None]).view(8, 128)
    step = scale.repeat_interleave(32, dim=1)
    assert ((w - w_hat).abs() <= step / 2 + 1e-6).all()


def test_registry_lists_builtins_and_refuses_duplicates():
    from presso.compression.methods import available_methods, register_method
    from presso.compression.methods.rtn import RTN

    assert {"rtn", "gptq", "awq"} <= set(available_methods())
    register_method(RTN)  # the same object again is a no-op
    with pytest.raises(ValueError, match="already registered"):
        register_method(type(RTN)(name="rtn", quantize=RTN.quantize, params=RTN.params))
