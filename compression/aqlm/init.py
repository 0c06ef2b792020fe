"""Initialisation of one layer's AQLM parameters: per-row scales and residual k-means codebooks.

weight (N, K) -> scales s (N,) = RMS of each row; the normalised groups (N*G, 8) are clustered by
codebook 0, the residual by codebook 1, and so on (AQLM's residual k-means). Codebooks with more
entries than there are groups (1x16 on small layers) start from the data points plus noise. The beam
search and least-squares updates in compression/aqlm/layer.py refine all three against H.
"""

from __future__ import annotations

import torch


def _assign(points: torch.Tensor, centroids: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
    """Nearest centroid (L2) for each point: points (P, 8), centroids (C, 8) -> (P,) int64."""
    c_norm = (centroids * centroids).sum(-1)  # (C,)
    out = torch.empty(points.shape[0], dtype=torch.int64)
    for start in range(0, points.shape[0], chunk):
        block = points[start : start + chunk]
        out[start : start + chunk] = (c_norm - 2 * block @ centroids.t()).argmin(dim=1)
    return out


def kmeans(points: torch.Tensor, size: int, iters: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means. points (P, 8) fp32 -> (centroids (size, 8), assignment (P,) int64)."""
    count = points.shape[0]
    pick = torch.randperm(count, generator=gen)[: min(size, count)]
    centroids = points[pick].clone()
    if size > count:  # more codewords than groups: fill the rest with jittered copies
        extra = points[torch.randint(0, count, (size - count,), generator=gen)]
        centroids = torch.cat([centroids, extra + 0.01 * extra.std() * torch.randn(extra.shape, generator=gen)])
    assign = _assign(points, centroids)
    for _ in range(iters):
        sums = torch.zeros_like(centroids).index_add_(0, assign, points)
        counts = torch.bincount(assign, minlength=size).to(points.dtype)  # (size,)
        used = counts > 0
        centroids[used] = sums[used] / counts[used].unsqueeze(1)
        assign = _assign(points, centroids)
    return centroids, assign


def initialise(
    weight: torch.Tensor, num_codebooks: int, nbits: int, iters: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """weight (N, K) fp32 -> codes (N, G, M) int64, books (M, 2**nbits, 8) fp32, scales (N,) fp32."""
    num_out, num_in = weight.shape
    gen = torch.Generator().manual_seed(seed)
    scales = weight.pow(2).mean(dim=1).sqrt().clamp_min(1e-8)  # (N,)
    residual = (weight / scales.unsqueeze(1)).reshape(-1, 8)  # (N*G, 8)
    books, codes = [], []
    for _ in range(num_codebooks):
        centroids, assign = kmeans(residual, 1 << nbits, iters, gen)
        books.append(centroids)
        codes.append(assign)
        residual = residual - centroids[assign]
    codes_t = torch.stack(codes, dim=1).view(num_out, num_in // 8, num_codebooks)
    return codes_t, torch.stack(books), scales
