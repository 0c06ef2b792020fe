"""Triton RVQ KV-cache kernels (GPU): encode into codes, decode, and decode-attention over codes.

Layout as in kernels/kvcache/reference.py: x (N, H, D) -> codes (N, H, ng, S), RMS (N, H, 1) fp16;
codebooks (S, C, G) fp32 shared by all heads and groups; perm (D,) puts channel perm[i] at grouped
position i. Encode: a program takes BLOCK_R token-heads, computes their RMS (rounded to fp16 first,
as stored), then per group and stage the nearest codeword, argmin_c |c|^2 - 2 r.c (first index on
ties, as torch), and subtracts it from the residual. Decode sums the S codewords in stage order and
scatters through perm (bit-exact with the reference).
Attend (one query position, GQA: query head h reads KV head h // rep): q·k_t is gathered from a
per-query table q_g·codebook_s (Hq, ng*S, C), built by one small einsum; V rows are decoded in
registers, never written out. Programs split the T tokens into blocks of BLOCK_T (flash-decoding);
each writes its block's max, softmax denominator and weighted V sum, merged by `_combine`.
Codebooks and perms may live on the CPU (they move to the data's device). On CPU tensors these run
only under TRITON_INTERPRET=1. Importing this module fails without triton.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from presso.kernels.kvcache.reference import EPS
from presso.kernels.registry import register

BLOCK_T = 64  # cached tokens per attend program


@triton.jit
def _rvq_encode_kernel(x_ptr, books_ptr, perm_ptr, codes_ptr, rms_ptr, R, D, C, eps,
                       G: tl.constexpr, NG: tl.constexpr, S: tl.constexpr, BLOCK_R: tl.constexpr,
                       BLOCK_D: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_G: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)  # (BR,) token-heads
    row_ok = rows < R
    cols = tl.arange(0, BLOCK_D)
    x = tl.load(x_ptr + rows[:, None] * D + cols[None, :], mask=row_ok[:, None] & (cols[None, :] < D),
                other=0.0).to(tl.float32)  # (BR, BD)
    rms = tl.maximum(tl.sqrt_rn(tl.div_rn(tl.sum(x * x, axis=1), D * 1.0)), eps)
    rms = rms.to(tl.float16).to(tl.float32)  # (BR,) the stored value
    tl.store(rms_ptr + rows, rms.to(tl.float16), mask=row_ok)
    ent = tl.arange(0, BLOCK_C)  # (BC,) codebook entries
    j = tl.arange(0, BLOCK_G)  # (BG,) channels within a group
    book_ok = (ent[:, None] < C) & (j[None, :] < G)  # (BC, BG)
    res_ok = row_ok[:, None] & (j[None, :] < G)  # (BR, BG)
    for g in range(NG):
        chan = tl.load(perm_ptr + g * G + j, mask=j < G, other=0)  # (BG,) the group's channels
        r = tl.load(x_ptr + rows[:, None] * D + chan[None, :], mask=res_ok, other=0.0).to(tl.float32)
        r = tl.div_rn(r, rms[:, None])  # (BR, BG) unit-RMS residual
        for s in range(S):
            book = tl.load(books_ptr + (s * C + ent[:, None]) * G + j[None, :], mask=book_ok, other=0.0)
            dot = tl.sum(r[:, None, :] * book[None, :, :], axis=2)  # (BR, BC)
            dist = tl.sum(book * book, axis=1)[None, :] - 2.0 * dot
            dist = tl.where((ent < C)[None, :], dist, float("inf"))
            idx = tl.argmin(dist, axis=1)  # (BR,)
            r -= tl.load(books_ptr + (s * C + idx[:, None]) * G + j[None, :], mask=res_ok, other=0.0)
            tl.store(codes_ptr + (rows * NG + g) * S + s, idx.to(codes_ptr.dtype.element_ty), mask=row_ok)


@triton.jit
def _rvq_decode_kernel(codes_ptr, rms_ptr, books_ptr, perm_ptr, out_ptr, R, D, C,
                       G: tl.constexpr, NG: tl.constexpr, S: tl.constexpr,
                       BLOCK_R: tl.constexpr, BLOCK_D: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)  # (BR,)
    pos = tl.arange(0, BLOCK_D)  # (BD,) grouped position i = g*G + j
    m = (rows[:, None] < R) & (pos[None, :] < D)
    y = tl.zeros((BLOCK_R, BLOCK_D), dtype=tl.float32)
    for s in tl.static_range(S):  # stage order, as the reference sums
        code = tl.load(codes_ptr + (rows[:, None] * NG + pos[None, :] // G) * S + s, mask=m, other=0)
        y += tl.load(books_ptr + (s * C + code.to(tl.int32)) * G + pos[None, :] % G, mask=m, other=0.0)
    rms = tl.load(rms_ptr + rows, mask=rows < R, other=0.0).to(tl.float32)
    chan = tl.load(perm_ptr + pos, mask=pos < D, other=0)  # undo the permutation on store
    tl.store(out_ptr + rows[:, None] * D + chan[None, :], y * rms[:, None], mask=m)


@triton.jit
def _rvq_attend_kernel(table_ptr, kc_ptr, kr_ptr, vc_ptr, vr_ptr, vbooks_ptr, max_ptr, den_ptr, acc_ptr,
                       T, HKV, NB, scale, REP: tl.constexpr, KCODES: tl.constexpr, KC: tl.constexpr,
                       VNG: tl.constexpr, VS: tl.constexpr, VC: tl.constexpr, VG: tl.constexpr,
                       D: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_D: tl.constexpr):
    h, blk = tl.program_id(0), tl.program_id(1)
    t = blk * BLOCK_T + tl.arange(0, BLOCK_T)  # (BT,) token ids; the block holds at least one
    t_ok = t < T
    row = t * HKV + h // REP  # (BT,) token-head rows of this query head's KV head
    score = tl.zeros((BLOCK_T,), dtype=tl.float32)
    for gs in range(KCODES):  # q·k_t / rms_t = Σ_{g,s} table[h, g*S+s, code_{t,g,s}]
        code = tl.load(kc_ptr + row * KCODES + gs, mask=t_ok, other=0).to(tl.int32)
        score += tl.load(table_ptr + (h * KCODES + gs) * KC + code, mask=t_ok, other=0.0)
    score *= tl.load(kr_ptr + row, mask=t_ok, other=0.0).to(tl.float32) * scale
    score = tl.where(t_ok, score, float("-inf"))
    top = tl.max(score, axis=0)
    p = tl.exp(score - top)  # (BT,) 0 on padding
    pos = tl.arange(0, BLOCK_D)  # (BD,) grouped positions of V
    m = t_ok[:, None] & (pos[None, :] < D)
    v = tl.zeros((BLOCK_T, BLOCK_D), dtype=tl.float32)  # the block's V rows / rms, decoded in registers
    for s in tl.static_range(VS):
        code = tl.load(vc_ptr + (row[:, None] * VNG + pos[None, :] // VG) * VS + s, mask=m, other=0)
        v += tl.load(vbooks_ptr + (s * VC + code.to(tl.int32)) * VG + pos[None, :] % VG, mask=m, other=0.0)
    w = p * tl.load(vr_ptr + row, mask=t_ok, other=0.0).to(tl.float32)  # (BT,)
    out = h * NB + blk
    tl.store(max_ptr + out, top)
    tl.store(den_ptr + out, tl.sum(p, axis=0))
    tl.store(acc_ptr + out * D + pos, tl.sum(w[:, None] * v, axis=0), mask=pos < D)


def _p2(n: int) -> int:
    return triton.next_power_of_2(n)


@register("kv_rvq_encode", "triton")
def rvq_encode(x: torch.Tensor, codebooks: torch.Tensor, perm: torch.Tensor):
    """x (N, H, D), codebooks (S, C, G) fp32, perm (D,) -> codes (N, H, ng, S), rms (N, H, 1) fp16."""
    stages, entries, group = codebooks.shape
    d = x.shape[-1]
    ng = d // group
    codes = torch.empty(*x.shape[:-1], ng, stages, device=x.device,
                        dtype=torch.uint8 if entries <= 256 else torch.int16)
    rms = torch.empty(*x.shape[:-1], 1, dtype=torch.float16, device=x.device)
    rows = rms.numel()
    # the (BR, BC, BG) distance product stays near 8K fp32 per program
    block_r = max(1, min(16, 8192 // (_p2(entries) * _p2(group))))
    _rvq_encode_kernel[(triton.cdiv(rows, block_r),)](
        x.contiguous(), codebooks.to(x.device, torch.float32).contiguous(), perm.to(x.device), codes, rms,
        rows, d, entries, EPS, G=group, NG=ng, S=stages, BLOCK_R=block_r, BLOCK_D=_p2(d),
        BLOCK_C=_p2(entries), BLOCK_G=_p2(group))
    return codes, rms


@register("kv_rvq_decode", "triton")
def rvq_decode(codes: torch.Tensor, rms: torch.Tensor, codebooks: torch.Tensor, perm: torch.Tensor):
    """codes (N, H, ng, S), rms (N, H, 1) -> x (N, H, D) fp32."""
    stages, entries, group = codebooks.shape
    ng = codes.shape[-2]
    out = torch.empty(*codes.shape[:-2], ng * group, dtype=torch.float32, device=codes.device)
    rows = rms.numel()
    books = codebooks.to(codes.device, torch.float32).contiguous()
    _rvq_decode_kernel[(triton.cdiv(rows, 16),)](
        codes.contiguous(), rms.contiguous(), books, perm.to(codes.device), out, rows, ng * group, entries,
        G=group, NG=ng, S=stages, BLOCK_R=16, BLOCK_D=_p2(ng * group))
    return out


def _combine(top: torch.Tensor, den: torch.Tensor, acc: torch.Tensor) -> torch.Tensor:
    """Per-block max (Hq, NB), softmax denominator (Hq, NB), weighted V sums (Hq, NB, D) -> (Hq, D)."""
    w = torch.exp(top - top.amax(1, keepdim=True))  # (Hq, NB) rescale every block to the global max
    return (w.unsqueeze(-1) * acc).sum(1) / (w * den).sum(1, keepdim=True)


@register("kv_rvq_attend", "triton")
def rvq_attend(q: torch.Tensor, k_codes, k_rms, v_codes, v_rms, k_books, v_books, k_perm, v_perm,
               scale: float) -> torch.Tensor:
    """One query position over T cached tokens from codes only: q (Hq, D) -> (Hq, D) fp32."""
    t, hkv, ng, k_stages = k_codes.shape
    v_stages, v_entries, v_group = v_books.shape
    hq, d = q.shape
    qg = q.float()[:, k_perm].view(hq, ng, -1)  # (Hq, ng, G) in key-group order
    table = torch.einsum("hgd,scd->hgsc", qg, k_books.to(q.device, torch.float32))  # (Hq, ng, S, C)
    nb = triton.cdiv(t, BLOCK_T)
    top = torch.empty(hq, nb, dtype=torch.float32, device=q.device)
    den = torch.empty_like(top)
    acc = torch.empty(hq, nb, d, dtype=torch.float32, device=q.device)
    v_books = v_books.to(q.device, torch.float32).contiguous()
    _rvq_attend_kernel[(hq, nb)](
        table.contiguous(), k_codes.contiguous(), k_rms.contiguous(), v_codes.contiguous(),
        v_rms.contiguous(), v_books, top, den, acc, t, hkv, nb, float(scale),
        REP=hq // hkv, KCODES=ng * k_stages, KC=k_books.shape[1], VNG=d // v_group, VS=v_stages,
        VC=v_entries, VG=v_group, D=d, BLOCK_T=BLOCK_T, BLOCK_D=_p2(d))
    out = torch.empty(hq, d, dtype=torch.float32, device=q.device)
    out[:, v_perm] = _combine(top, den, acc)  # back from value-group order to channels
    return out
