"""Code search: beam search over one codebook position at a time, under the output-error objective.

Rows are independent (loss = sum_o e_o H e_o^T, e_o = w_o - s_o * sum_m C_m[codes_o]), so rows are
searched in chunks. Per row we keep `beam` hypotheses, each with its error e (K,) and He = e H (K,).
Visiting group g and codebook m, a hypothesis with current codeword `old` that switches to codeword c
changes e on the 8 columns of g by -delta, delta = s (C_c - old), and the loss by
    -2 delta . He_g + delta^T H_gg delta = s^2 q_c - 2 C_c . v + const,  q_c = C_c^T H_gg C_c,
    v = s He_g + s^2 H_gg old,  const = 2 s old . He_g + s^2 old^T H_gg old,
i.e. one (rows, 8) x (8, C) product per step. Keeping the code unchanged has change exactly 0 and is
always a candidate, so the best hypothesis never gets worse: the search never increases the objective.
"""

from __future__ import annotations

import torch

from presso.compression.aqlm.objective import decode, layer_loss


def _search_rows(
    weight: torch.Tensor, codes: torch.Tensor, books: torch.Tensor, scales: torch.Tensor,
    hessian: torch.Tensor, beam: int,
) -> torch.Tensor:
    """One sweep over all (group, codebook) positions for a chunk of rows. codes (R, G, M) -> new codes."""
    rows, groups, num_codebooks = codes.shape
    size = books.shape[1]
    err = weight - decode(codes, books, scales)  # (R, K)
    # hypotheses: (R, b, ...); start with `beam` copies of the current codes (only copy 0 is "live").
    hyp = codes.unsqueeze(1).repeat(1, beam, 1, 1)  # (R, b, G, M)
    err = err.unsqueeze(1).repeat(1, beam, 1)  # (R, b, K)
    herr = err @ hessian  # (R, b, K)
    loss = (herr * err).sum(-1)  # (R, b)
    loss[:, 1:] = torch.inf  # duplicates of copy 0 must not be selected twice
    s = scales.view(rows, 1, 1)  # (R, 1, 1)
    arange_r = torch.arange(rows).view(rows, 1)
    for g in range(groups):
        cols = slice(g * 8, (g + 1) * 8)
        h_gg = hessian[cols, cols]  # (8, 8)
        h_g = hessian[cols, :]  # (8, K)
        for m in range(num_codebooks):
            book = books[m]  # (C, 8)
            quad = ((book @ h_gg) * book).sum(-1)  # (C,) q_c
            old_idx = hyp[:, :, g, m]  # (R, b)
            old = book[old_idx]  # (R, b, 8)
            v = s * herr[:, :, cols] + s * s * (old @ h_gg)  # (R, b, 8)
            const = 2 * s[..., 0] * (old * herr[:, :, cols]).sum(-1) + (s[..., 0] ** 2) * ((old @ h_gg) * old).sum(-1)
            change = (s * s) * quad.view(1, 1, size) - 2 * (v @ book.t()) + const.unsqueeze(-1)  # (R, b, C)
            change.scatter_(2, old_idx.unsqueeze(-1), 0.0)  # keeping the code costs exactly nothing
            total = (loss.unsqueeze(-1) + change).view(rows, beam * size)  # (R, b*C)
            if beam == 1:
                best = total.argmin(dim=1, keepdim=True)  # (R, 1)
            else:
                best = total.topk(beam, dim=1, largest=False).indices  # (R, b)
            parent, new_code = best // size, best % size  # (R, b) each
            hyp = hyp[arange_r, parent].clone()  # (R, b, G, M)
            err = err[arange_r, parent]
            herr = herr[arange_r, parent]
            loss = total.gather(1, best)
            delta = s * (book[new_code] - book[hyp[:, :, g, m]])  # (R, b, 8)
            hyp[:, :, g, m] = new_code
            err[:, :, cols] -= delta
            herr = herr - delta @ h_g
    return hyp[:, 0]  # best hypothesis: topk/argmin keep slot 0 as the minimum


def beam_search(
    weight: torch.Tensor, codes: torch.Tensor, books: torch.Tensor, scales: torch.Tensor,
    hessian: torch.Tensor, beam: int = 1, row_chunk: int = 256,
) -> torch.Tensor:
    """weight (N, K) fp32, codes (N, G, M) int64, books (M, C, 8), scales (N,), hessian (K, K).

    Returns new codes (N, G, M) whose loss is <= the old codes' loss row by row (re-checked exactly).
    """
    out = torch.empty_like(codes)
    for start in range(0, codes.shape[0], row_chunk):
        sl = slice(start, start + row_chunk)
        new = _search_rows(weight[sl], codes[sl], books, scales[sl], hessian, beam)
        before = layer_loss(weight[sl], decode(codes[sl], books, scales[sl]), hessian)
        after = layer_loss(weight[sl], decode(new, books, scales[sl]), hessian)
        keep_old = (after > before).view(-1, 1, 1)  # float drift guard: never accept a worse row
        out[sl] = torch.where(keep_old, codes[sl], new)
    return out
