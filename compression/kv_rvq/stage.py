"""The `--kv` stage of `presso compress`: KV-cache codebooks calibrated into the checkpoint being written.

parse (before any heavy work, so a bad spec fails fast) -> calibrate on the model as it will be served
(after weight quantization, on the first KV_CALIB_WINDOWS calibration windows) -> write
presso_kv.safetensors into the temp checkpoint dir; the returned dict goes into presso.json and
report.json (spec, bytes per token, per-layer reconstruction SQNR).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from presso.compression.checkpoint.errors import PressoInputError
from presso.compression.checkpoint.kv_codebooks import KV_FILE, LayerCodebooks, RVQSpec, save_kv_codebooks
from presso.compression.kv_rvq.calibrate import calibrate_rvq, parse_kv_spec

KV_CALIB_WINDOWS = 16  # K/V of every layer are held in memory: 16 x 512 tokens is ~200k vectors a layer


@dataclass(frozen=True, slots=True)
class KVCalibration:
    spec: RVQSpec
    layers: list[LayerCodebooks]
    report: dict


def parse(text: str | None, calib: str | None) -> RVQSpec | None:
    """The --kv value (None without the flag); it needs calibration text."""
    if text is None:
        return None
    spec = parse_kv_spec(text)
    if calib is None:
        raise PressoInputError("--kv rvq calibrates codebooks on text: pass --calib SPEC (e.g. austen:emma)")
    return spec


def calibrate(model, windows: torch.Tensor | None, spec: RVQSpec | None, progress: bool) -> KVCalibration | None:
    if spec is None:
        return None
    assert windows is not None, "parse() requires --calib with --kv"
    spec, layers, report = calibrate_rvq(model, windows[:KV_CALIB_WINDOWS], spec, progress=progress)
    return KVCalibration(spec, layers, report)


def summary(kv: KVCalibration) -> dict:
    """What presso.json and report.json record: the spec, bytes per token, per-layer SQNR."""
    rows = kv.report["layers"]
    return {
        "file": KV_FILE, "spec": asdict(kv.spec), **kv.report,
        "compression_vs_bf16": kv.report["bf16_bytes_per_token_per_layer"] / kv.report["bytes_per_token_per_layer"],
        "mean_k_sqnr_db": sum(r["k_sqnr_db"] for r in rows) / len(rows),
        "mean_v_sqnr_db": sum(r["v_sqnr_db"] for r in rows) / len(rows),
    }


def presso_entry(kv: KVCalibration | None) -> dict:
    """`{"kv_cache": summary}` for presso.json, or nothing without --kv."""
    return {} if kv is None else {"kv_cache": summary(kv)}


def write(directory: Path, kv: KVCalibration) -> dict:
    """Save the codebooks into `directory` (after the weight-size report, which must not count them)."""
    path = save_kv_codebooks(directory, kv.spec, kv.layers, kv.report)
    return {**summary(kv), "bytes": path.stat().st_size}
