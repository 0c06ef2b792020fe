"""`presso bench kernels`: CPU matmul time of each weight codec relative to a bf16 dense matmul.

For SmolLM2-135M's linear shapes (out, in) and activation batches (default 1 and 16), times in one run:
dense bf16 (the 1.0 baseline), dense fp32, torch's packed int8 (`_weight_int8pack_mm`, per-channel) and
int4 (`_weight_int4pack_mm_for_cpu`, group 64) with bf16 activations, and AQLM 2x8 / 1x16 both through
the CPU kernel (kernels/aqlm/cpu.py) and as dequantize-then-matmul (the CPU kernel's fast full decode
`cpu.dequantize`, then a dense fp32 matmul). Weights
are random: speed does not depend on their values. Best (min) and median of `repeats` calls after one
warm-up; ratios use the best time, which is the least disturbed by other jobs on a shared machine.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from presso.kernels.aqlm import cpu as aqlm_cpu
from presso.kernels.aqlm import reference as aqlm_ref

SMOLLM2_SHAPES = {"q_proj/o_proj": (576, 576), "k_proj/v_proj": (192, 576), "gate/up_proj": (1536, 576),
                  "down_proj": (576, 1536)}


@dataclass(frozen=True, slots=True)
class BenchRow:
    layer: str
    out_features: int
    in_features: int
    batch: int
    codec: str
    microseconds: float  # best of the repeats
    median_microseconds: float
    vs_bf16_dense: float  # best time / best time of the bf16 dense matmul (lower is faster)

    def to_dict(self) -> dict:
        return asdict(self)


def _time_us(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """-> (best, median) microseconds per call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e6 * min(times), 1e6 * statistics.median(times)


def _aqlm_layer(out_f: int, in_f: int, num_codebooks: int, nbits: int, gen: torch.Generator):
    codes = torch.randint(0, 1 << nbits, (out_f, in_f // 8, num_codebooks), generator=gen)
    books = torch.randn(num_codebooks, 1 << nbits, 1, 8, generator=gen).half()
    return aqlm_ref.signed_codes(codes, nbits), books, torch.rand(out_f, 1, 1, 1, generator=gen).half()


def codecs(out_f: int, in_f: int, batch: int, gen: torch.Generator) -> dict[str, Callable[[], object]]:
    """name -> zero-arg callable computing x @ W^T for that weight codec."""
    x32 = torch.randn(batch, in_f, generator=gen)
    x16 = x32.bfloat16()
    w32 = torch.randn(out_f, in_f, generator=gen)
    w16 = w32.bfloat16()
    w8 = torch.randint(-127, 128, (out_f, in_f), dtype=torch.int8, generator=gen)
    s8 = torch.rand(out_f, generator=gen).bfloat16()
    q4 = torch.randint(0, 16, (out_f, in_f), dtype=torch.int32, generator=gen)
    packed4 = torch._convert_weight_to_int4pack_for_cpu(q4, 2)  # (out, in/2) uint8
    sz4 = torch.rand(in_f // 64, out_f, 2, generator=gen).bfloat16()  # (groups, out, [scale, zero])
    fns: dict[str, Callable[[], object]] = {
        "dense bf16": lambda: torch.nn.functional.linear(x16, w16),
        "dense fp32": lambda: torch.nn.functional.linear(x32, w32),
        "int8 packed (bf16 act)": lambda: torch._weight_int8pack_mm(x16, w8, s8),
        "int4 packed g64 (bf16 act)": lambda: torch._weight_int4pack_mm_for_cpu(x16, packed4, 64, sz4),
    }
    for num_codebooks, nbits in ((2, 8), (1, 16)):
        codes, books, scales = _aqlm_layer(out_f, in_f, num_codebooks, nbits, gen)
        name = f"aqlm {num_codebooks}x{nbits}"
        fns[f"{name} cpu kernel"] = lambda c=codes, b=books, s=scales: aqlm_cpu.matmul(x32, c, b, s)
        fns[f"{name} dequant+matmul"] = lambda c=codes, b=books, s=scales: torch.nn.functional.linear(
            x32, aqlm_cpu.dequantize(c, b, s))
    return fns


def run_bench(batches: tuple[int, ...] = (1, 16), repeats: int = 20, threads: int = 1) -> list[BenchRow]:
    if repeats < 1 or threads < 1 or any(b < 1 for b in batches):
        raise ValueError("--repeats, --threads and --batch must be positive")
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(0)
    rows: list[BenchRow] = []
    try:
        with torch.inference_mode():
            for layer, (out_f, in_f) in SMOLLM2_SHAPES.items():
                for batch in batches:
                    times = {name: _time_us(fn, repeats) for name, fn in codecs(out_f, in_f, batch, gen).items()}
                    base = times["dense bf16"][0]
                    rows += [BenchRow(layer, out_f, in_f, batch, name, best, med, best / base)
                             for name, (best, med) in times.items()]
    finally:
        torch.set_num_threads(previous)
    return rows


def format_table(rows: list[BenchRow]) -> str:
    lines = [f"{'layer':<14} {'out x in':>10} {'batch':>5}  {'codec':<28} {'best us':>9} {'median':>9} {'x bf16':>7}"]
    for r in rows:
        shape = f"{r.out_features}x{r.in_features}"
        lines.append(f"{r.layer:<14} {shape:>10} {r.batch:>5}  {r.codec:<28} {r.microseconds:>9.1f} {r.median_microseconds:>9.1f} {r.vs_bf16_dense:>7.2f}")
    return "\n".join(lines)
