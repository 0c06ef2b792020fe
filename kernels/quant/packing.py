"""The `pack-quantized` bit streams: signed b-bit integers <-> int32 words (the layout reference.py specifies).

Signed q in [-2^(b-1), 2^(b-1)) is stored as unsigned u = q + 2^(b-1); each row is one little-endian bit
stream of b-bit fields packed into int32 words (element j occupies bits [j*b, j*b + b)). Both directions
are vectorised; widths whose fields never straddle a byte (4, 8) go through byte views.
"""

from __future__ import annotations

import sys

import torch

_LITTLE = sys.byteorder == "little"


def unpack_int32(packed: torch.Tensor, num_bits: int, cols: int) -> torch.Tensor:
    """(R, W) int32 bit streams -> (R, cols) int8 signed values."""
    if num_bits in (4, 8) and _LITTLE:  # whole fields per byte: split bytes directly
        b = packed.contiguous().view(torch.uint8)  # (R, 4W) the stream's bytes in order
        u = b if num_bits == 8 else torch.stack((b & 0xF, b >> 4), dim=-1).flatten(1)
        return (u[:, :cols].to(torch.int16) - (1 << (num_bits - 1))).to(torch.int8)
    words = packed.to(torch.int64) & 0xFFFFFFFF  # (R, W) as unsigned
    bit = torch.arange(cols, dtype=torch.int64, device=packed.device) * num_bits
    word, off = bit // 32, bit % 32
    mask = (1 << num_bits) - 1
    lo = words[:, word] >> off
    nxt = words[:, (word + 1).clamp(max=words.shape[1] - 1)]
    hi = torch.where(off + num_bits > 32, nxt << (32 - off), torch.zeros_like(lo))
    u = (lo | hi) & mask
    return (u - (1 << (num_bits - 1))).to(torch.int8)


def pack_int32(q: torch.Tensor, num_bits: int, row_chunk: int = 4096) -> torch.Tensor:
    """(R, C) signed ints -> (R, ceil(C*b/32)) int32 bit streams (the inverse of unpack_int32)."""
    u = ((q.to(torch.int64) + (1 << (num_bits - 1))) & ((1 << num_bits) - 1)).to(torch.uint8)  # (R, C)
    rows, cols = u.shape
    width = -(-cols * num_bits // 32)
    if num_bits in (4, 8) and _LITTLE:  # bytes in order are the little-endian stream
        per_word = 32 // num_bits
        u = torch.nn.functional.pad(u, (0, width * per_word - cols))
        if num_bits == 4:
            u = u[:, 0::2] | (u[:, 1::2] << 4)  # (R, 4W) low nibble first
        return u.contiguous().view(torch.int32)
    shifts = torch.arange(num_bits, device=u.device)
    place = torch.arange(32, dtype=torch.int64, device=u.device)
    out = torch.empty(rows, width, dtype=torch.int64, device=u.device)
    for start in range(0, rows, row_chunk):  # (chunk, C*b) bits would be large for whole matrices
        part = u[start : start + row_chunk]
        bits = ((part.unsqueeze(-1) >> shifts) & 1).flatten(1)  # (n, C*b), bit j*b + i = bit i of field j
        bits = torch.nn.functional.pad(bits, (0, width * 32 - bits.shape[1])).view(-1, width, 32)
        out[start : start + row_chunk] = (bits.to(torch.int64) << place).sum(-1)  # (n, W) unsigned words
    return torch.where(out >= 2**31, out - 2**32, out).to(torch.int32)
