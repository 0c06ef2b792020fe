"""llama.cpp's calibrated quantizations of the dense model, as HF directories presso's scorer can read.

dense HF dir -> llama.cpp's convert_hf_to_gguf.py -> F16 GGUF (checkpoint/llama_cpp.py, cached) ->
the calibration windows (the same mix as presso's presets) decoded to text -> `llama-imatrix` (one chunk
per window, ctx = window length) -> importance matrix -> `llama-quantize --imatrix` per type (Q4_0,
Q4_K_M, Q3_K_M, ...) -> GGUF -> gguf_hf.gguf_to_hf (exact dequantized weights) -> HF dir. Everything
lands in the work dir, keyed by the calibration's identity, and is reused when present.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import torch

from presso.compression.checkpoint import llama_cpp
from presso.compression.quality.gguf_hf import GGUFSizes, gguf_sizes, gguf_to_hf


def _run(cmd: list[str], log: Path) -> None:
    with log.open("w") as fh:
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-1500:]
        raise RuntimeError(f"{Path(cmd[0]).name} failed ({proc.returncode}), log {log}:\n{tail}")


def calibration_text(tokenizer, windows: torch.Tensor, path: Path) -> Path:
    """(N, L) calibration windows -> one text file, a window per paragraph (what llama-imatrix reads)."""
    if not path.is_file():
        tmp = path.with_suffix(".part")
        tmp.write_text("\n\n".join(tokenizer.decode(row) for row in windows), encoding="utf-8")
        tmp.rename(path)
    return path


def imatrix(f16: Path, text: Path, chunks: int, ctx: int, out: Path) -> Path:
    """llama.cpp's importance matrix (per-column mean squared activations) of the F16 model on `text`."""
    if not out.is_file():
        tmp = out.with_name(out.stem + ".part.gguf")
        _run([str(llama_cpp.llama_bin("llama-imatrix")), "-m", str(f16), "-f", str(text), "-o", str(tmp),
              "-c", str(ctx), "--chunks", str(chunks), "-t", str(os.cpu_count() or 1)], out.with_suffix(".log"))
        tmp.rename(out)
    return out


def quantize(f16: Path, qtype: str, imatrix_file: Path | None, out: Path) -> Path:
    if not out.is_file():
        tmp = out.with_name(out.stem + ".part.gguf")
        cmd = [str(llama_cpp.llama_bin("llama-quantize"))] + (["--imatrix", str(imatrix_file)] if imatrix_file else [])
        _run(cmd + [str(f16), str(tmp), qtype], out.with_suffix(".log"))
        tmp.rename(out)
    return out


def peer_models(dense: Path, tokenizer, windows: torch.Tensor, qtypes: list[str], work: Path,
                use_imatrix: bool = True) -> dict[str, tuple[Path, GGUFSizes]]:
    """-> {label: (HF dir of the dequantized GGUF, sizes as stored in the GGUF)} for every qtype."""
    work.mkdir(parents=True, exist_ok=True)
    f16 = llama_cpp.convert(dense, dense.name)
    matrix = None
    if use_imatrix:
        text = calibration_text(tokenizer, windows, work / "calibration.txt")
        matrix = imatrix(f16, text, windows.shape[0], windows.shape[1], work / "imatrix.gguf")
    out = {}
    for qtype in qtypes:
        label = f"llama.cpp {qtype}" + (" + imatrix" if use_imatrix else "")
        gguf = quantize(f16, qtype, matrix, work / f"{qtype.lower()}{'-imatrix' if use_imatrix else ''}.gguf")
        hf = work / f"{gguf.stem}-hf"
        if not (hf / "model.safetensors").is_file():
            gguf_to_hf(gguf, dense, hf)
        out[label] = (hf, gguf_sizes(gguf))
    return out
