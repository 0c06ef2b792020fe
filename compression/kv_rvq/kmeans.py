"""Residual k-means: S stages, each a C-entry codebook fitted by Lloyd's algorithm to the residual
left by the previous stages. x (N, G) fp32 -> codebooks (S, C, G) fp32.
"""

from __future__ import annotations

import torch


def _assign(x: torch.Tensor, book: torch.Tensor, chunk: int = 65536) -> torch.Tensor:
    """Nearest codeword per row: x (N, G), book (C, G) -> (N,) long, chunked to bound memory."""
    norms = book.pow(2).sum(-1)  # (C,)
    out = torch.empty(x.shape[0], dtype=torch.long)
    for start in range(0, x.shape[0], chunk):
        part = x[start : start + chunk]
        out[start : start + chunk] = (norms - 2 * part @ book.t()).argmin(-1)
    return out


def kmeans(x: torch.Tensor, entries: int, iters: int, generator: torch.Generator) -> torch.Tensor:
    """Lloyd's algorithm from random data points; empty clusters are re-seeded from random points."""
    n = x.shape[0]
    book = x[torch.randperm(n, generator=generator)[:entries]].clone()
    if book.shape[0] < entries:  # fewer points than entries: pad with jittered copies
        extra = book[torch.randint(0, book.shape[0], (entries - book.shape[0],), generator=generator)]
        book = torch.cat([book, extra + 1e-3 * torch.randn(extra.shape, generator=generator)])
    for _ in range(iters):
        idx = _assign(x, book)
        sums = torch.zeros_like(book).index_add_(0, idx, x)
        counts = torch.bincount(idx, minlength=entries).float()
        empty = counts == 0
        book = torch.where(empty[:, None], book, sums / counts.clamp_min(1)[:, None])
        if empty.any():
            book[empty] = x[torch.randint(0, n, (int(empty.sum()),), generator=generator)]
    return book


def residual_kmeans(x: torch.Tensor, stages: int, entries: int, iters: int = 12, seed: int = 0):
    """Fit S codebooks on x (N, G); returns (codebooks (S, C, G), final residual (N, G))."""
    generator = torch.Generator().manual_seed(seed)
    residual = x.float().clone()
    books = []
    for _ in range(stages):
        book = kmeans(residual, entries, iters, generator)
        residual = residual - book[_assign(residual, book)]
        books.append(book)
    return torch.stack(books), residual
