"""Quantize one linear layer with AQLM: weight (N, K) + input Hessian H (K, K) -> codes, codebooks, scales.

The alternation (AQLM, arXiv 2401.06118, Sec. 3): residual k-means init (init.py), then `rounds` times
[codebooks by least squares, scales by least squares (update.py), codes by beam search (beam.py)],
finishing with one more codebook and scale update. Every step is a monotone descent on the output
error ||X W^T - X W_hat^T||^2. The result (AQLMWeight) is what the `aqlm` method (method.py) returns to
the shared sequential calibration, which swaps in its dequantized weight and later exports the tensors.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from presso.compression.aqlm.beam import beam_search
from presso.compression.aqlm.config import AQLMConfig
from presso.compression.aqlm.init import initialise
from presso.compression.aqlm.objective import damped, decode, layer_loss
from presso.compression.aqlm.update import update_codebooks, update_scales
from presso.compression.calibration.sequential import sqnr_db
from presso.kernels.aqlm.reference import dequantize, signed_codes


@dataclass(frozen=True, slots=True)
class AQLMWeight:
    """One Linear in AQLM's Hugging Face layout (the tensors the checkpoint stores under the module name)."""

    codes: torch.Tensor  # (N, G, M) int8/int16, AQLM's signed storage
    codebooks: torch.Tensor  # (M, C, 1, 8) fp16
    scales: torch.Tensor  # (N, 1, 1, 1) fp16
    output_sqnr_db: float  # 10 log10(tr(W H W^T) / tr(E H E^T)) with the damped calibration H
    loss_history: tuple[float, ...]  # objective after init and after each step, non-increasing

    @property
    def out_features(self) -> int:
        return self.codes.shape[0]

    @property
    def in_features(self) -> int:
        return self.codes.shape[1] * self.codebooks.shape[3]

    def dequantize(self) -> torch.Tensor:
        """-> w_hat (N, K) fp32, decoded by the kernel spec from the stored fp16 tensors."""
        return dequantize(self.codes, self.codebooks, self.scales)


def quantize_layer(weight: torch.Tensor, hessian: torch.Tensor, cfg: AQLMConfig, seed: int = 0) -> AQLMWeight:
    """weight (N, K) any float dtype, hessian (K, K) proportional to X^T X over calibration tokens (its
    scale is irrelevant: it is normalised). Run it single-threaded (the shared calibration does): the
    search is thousands of small ops, for which 2 OpenMP threads on a shared 2-core machine were measured
    10-100x slower than 1."""
    if weight.shape[1] % cfg.in_group:
        raise ValueError(f"in_features {weight.shape[1]} is not a multiple of in_group_size {cfg.in_group}")
    w = weight.detach().float()
    h = damped(hessian.float(), cfg.damp)
    h = h / h.diagonal().mean()  # the objective's scale is irrelevant; keeps fp32 sums tame
    codes, books, scales = initialise(w, cfg.num_codebooks, cfg.nbits, cfg.kmeans_iters, seed)

    def total() -> float:
        return float(layer_loss(w, decode(codes, books, scales), h).sum())

    history = [total()]
    for _ in range(cfg.rounds):
        books = update_codebooks(w, codes, books, scales, h, cfg.cg_iters)
        scales = update_scales(w, codes, books, h)
        history.append(total())
        codes = beam_search(w, codes, books, scales, h, cfg.beam_width, cfg.row_chunk)
        history.append(total())
    books = update_codebooks(w, codes, books, scales, h, cfg.cg_iters)
    scales = update_scales(w, codes, books, h)
    books16, scales16 = books.half(), scales.half()  # what is stored; SQNR measured on it
    approx = decode(codes, books16.float(), scales16.float())
    history.append(float(layer_loss(w, approx, h).sum()))
    signal = float(((w @ h) * w).sum())
    return AQLMWeight(
        codes=signed_codes(codes, cfg.nbits),
        codebooks=books16.view(cfg.num_codebooks, cfg.codebook_size, 1, cfg.in_group),
        scales=scales16.view(-1, 1, 1, 1),
        output_sqnr_db=sqnr_db(signal, history[-1]),
        loss_history=tuple(history),
    )
