"""AQLM layer algorithm: every step is a descent on the output error, and 2x8 beats RTN 2-bit.

Small random layers (out 48, in 64) with a correlated input Hessian, so the output-error objective
differs from the plain weight error.
"""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from presso.compression.aqlm.beam import beam_search
from presso.compression.aqlm.config import AQLMConfig, AQLMParams
from presso.compression.aqlm.init import initialise
from presso.compression.aqlm.layer import quantize_layer
from presso.compression.aqlm.objective import decode, layer_loss
from presso.compression.aqlm.update import update_codebooks, update_scales
from presso.kernels.aqlm.reference import dequantize


def problem(seed: int = 0, out_f: int = 48, in_f: int = 64):
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randn(out_f, in_f, generator=gen)
    mix = torch.eye(in_f) + 0.4 * torch.randn(in_f, in_f, generator=gen)
    x = torch.randn(512, in_f, generator=gen) @ mix  # correlated calibration inputs
    hessian = x.t() @ x
    return weight, hessian / hessian.diagonal().mean()


def total(weight, codes, books, scales, hessian) -> float:
    return float(layer_loss(weight, decode(codes, books, scales), hessian).sum())


@pytest.mark.parametrize("beam", [1, 3])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_search_never_increases_the_objective(beam, seed):
    weight, hessian = problem(seed)
    codes, books, scales = initialise(weight, 2, 4, iters=2, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, 16, codes.shape, generator=gen)  # a bad start leaves room to improve
    before = layer_loss(weight, decode(codes, books, scales), hessian)
    new = beam_search(weight, codes, books, scales, hessian, beam=beam, row_chunk=16)
    after = layer_loss(weight, decode(new, books, scales), hessian)
    assert torch.all(after <= before + 1e-4 * before.abs())  # row by row
    assert after.sum() < 0.9 * before.sum()  # and it does improve from a random start


def test_wider_beam_is_not_worse_on_average():
    gains = []
    for seed in range(3):
        weight, hessian = problem(seed)
        codes, books, scales = initialise(weight, 2, 4, iters=2, seed=seed)
        one = total(weight, beam_search(weight, codes, books, scales, hessian, beam=1), books, scales, hessian)
        four = total(weight, beam_search(weight, codes, books, scales, hessian, beam=4), books, scales, hessian)
        gains.append(one - four)
    assert sum(gains) >= 0


def test_least_squares_updates_never_increase_the_objective():
    weight, hessian = problem(3)
    codes, books, scales = initialise(weight, 2, 4, iters=2)
    start = total(weight, codes, books, scales, hessian)
    books2 = update_codebooks(weight, codes, books, scales, hessian, iters=10)
    mid = total(weight, codes, books2, scales, hessian)
    scales2 = update_scales(weight, codes, books2, hessian)
    end = total(weight, codes, books2, scales2, hessian)
    assert mid <= start and end <= mid * (1 + 1e-5)
    assert end < 0.95 * start


def rtn_2bit(weight: torch.Tensor) -> torch.Tensor:
    """Round-to-nearest, 2 bits, asymmetric min-max per output channel (4 levels per row)."""
    lo, hi = weight.min(dim=1, keepdim=True).values, weight.max(dim=1, keepdim=True).values
    step = (hi - lo) / 3
    return torch.round((weight - lo) / step).clamp(0, 3) * step + lo


def test_decode_of_encode_beats_rtn_2bit_on_the_same_tensor():
    weight, hessian = problem(4, out_f=64, in_f=128)
    q = quantize_layer(weight, hessian, AQLMConfig(num_codebooks=2, nbits=8, rounds=2))
    approx = dequantize(q.codes, q.codebooks, q.scales)  # (64, 128) fp32, through the kernel spec
    rtn = rtn_2bit(weight)
    assert layer_loss(weight, approx, hessian).sum() < 0.5 * layer_loss(weight, rtn, hessian).sum()
    assert (weight - approx).pow(2).sum() < (weight - rtn).pow(2).sum()


def test_quantize_layer_history_and_layout():
    weight, hessian = problem(5)
    q = quantize_layer(weight, hessian, AQLMConfig(num_codebooks=1, nbits=8, rounds=2, kmeans_iters=2))
    assert all(b <= a * (1 + 1e-3) for a, b in zip(q.loss_history, q.loss_history[1:], strict=False))
    assert q.codes.shape == (48, 8, 1) and q.codes.dtype == torch.int8
    assert q.codebooks.shape == (1, 256, 1, 8) and q.codebooks.dtype == torch.float16
    assert q.scales.shape == (48, 1, 1, 1) and q.output_sqnr_db > 3


def test_recipe_params_give_the_config():
    assert AQLMParams(scheme="1x16").config().codebook_size == 65536
    cfg = AQLMParams(scheme="2x8", rounds=3).config()
    assert (cfg.num_codebooks, cfg.nbits, cfg.rounds, cfg.scheme) == (2, 8, 3, "2x8")
    for bad in ("2-8", "0x8", "1x17", "9x8", ""):
        with pytest.raises(ValidationError, match="scheme"):
            AQLMParams(scheme=bad)
    with pytest.raises(ValidationError, match="rounds"):
        AQLMParams(rounds=0)
