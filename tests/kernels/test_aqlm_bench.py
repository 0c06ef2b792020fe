"""`presso bench kernels`: every codec is timed for every shape and batch, relative to bf16 dense."""

from __future__ import annotations

import pytest

from presso.kernels.bench import SMOLLM2_SHAPES, format_table, run_bench


def test_bench_times_every_codec_against_bf16():
    rows = run_bench(batches=(1,), repeats=1)
    codecs = {r.codec for r in rows}
    assert {"dense bf16", "dense fp32", "int8 packed (bf16 act)", "int4 packed g64 (bf16 act)",
            "aqlm 2x8 cpu kernel", "aqlm 2x8 dequant+matmul", "aqlm 1x16 cpu kernel"} <= codecs
    assert len(rows) == len(SMOLLM2_SHAPES) * len(codecs)
    assert all(r.microseconds > 0 for r in rows)
    assert all(r.vs_bf16_dense == 1.0 for r in rows if r.codec == "dense bf16")
    assert "aqlm 2x8 cpu kernel" in format_table(rows)


def test_bench_rejects_bad_arguments():
    with pytest.raises(ValueError):
        run_bench(batches=(0,))
