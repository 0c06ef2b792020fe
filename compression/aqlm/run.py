"""`presso aqlm`: a dense HF model dir -> an AQLM checkpoint, with perplexity before/after.

load fp32 model + tokenizer -> (optional) perplexity on the eval text -> calibration windows
(`calibration_ids`) -> layer-by-layer AQLM (pipeline.py, resumable in `<out>.partial/`) -> (optional)
perplexity of the in-memory quantized model -> checkpoint + presso.json + report.json (checkpoint.py).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from presso.compression.aqlm import report as sizes
from presso.compression.aqlm.checkpoint import check_output_dir, write_checkpoint
from presso.compression.aqlm.config import AQLMConfig
from presso.compression.aqlm.pipeline import quantize_model
from presso.compression.aqlm.store import LayerStore
from presso.compression.checkpoint.errors import PressoInputError
from presso.compression.data.texts import load_text
from presso.compression.eval import loader
from presso.compression.eval.perplexity import perplexity, token_windows
from presso.compression.eval.run import tokenize_text


@dataclass(frozen=True, slots=True)
class AQLMJob:
    model_dir: Path
    out: Path
    cfg: AQLMConfig
    calib: str = "austen:emma"
    calib_samples: int = 32
    calib_len: int = 512
    calib_batch: int = 8
    eval_text: str | None = None
    eval_ctx: int = 1024
    eval_tokens: int | None = 8192
    seed: int = 0
    layers: frozenset[int] | None = None  # decoder layers to quantize; None = all


def calibration_ids(tokenizer, spec: str, samples: int, length: int, seed: int = 0) -> torch.Tensor:
    """`samples` windows of `length` tokens at seeded random offsets of the tokenized text (GPTQ/AQLM
    protocol, no special tokens). -> (samples, length) int64."""
    if samples < 1 or length < 2:
        raise PressoInputError(f"--calib-samples must be >= 1 and --calib-len >= 2, got {samples} and {length}")
    ids = tokenize_text(tokenizer, load_text(spec))  # (T,)
    if ids.numel() <= length:
        raise PressoInputError(f"calibration text {spec!r} has {ids.numel()} tokens, need more than --calib-len {length}")
    gen = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, ids.numel() - length, (samples,), generator=gen)
    return torch.stack([ids[s : s + length] for s in starts.tolist()])


def eval_perplexity(model: torch.nn.Module, tokenizer, job: AQLMJob, progress: bool) -> float | None:
    if job.eval_text is None:
        return None
    windows = token_windows(tokenize_text(tokenizer, load_text(job.eval_text)), job.eval_ctx, job.eval_tokens)
    return perplexity(lambda ids: model(input_ids=ids).logits, windows, progress=progress).perplexity


def run_aqlm(job: AQLMJob, progress: bool = True) -> dict:
    """Quantize, evaluate and write the checkpoint. -> the report dict (also in report.json)."""
    start = time.perf_counter()
    check_output_dir(job.out)
    tokenizer = loader.load_tokenizer(job.model_dir)
    model = loader.load_model(job.model_dir, "float32")
    if loader.quant_method(loader.read_config(job.model_dir)) != "dense":
        raise ValueError(f"{job.model_dir} is already quantized; AQLM needs a dense model")
    ppl_before = eval_perplexity(model, tokenizer, job, progress)
    ids = calibration_ids(tokenizer, job.calib, job.calib_samples, job.calib_len, job.seed)
    calib_meta = {"text": job.calib, "samples": job.calib_samples, "length": job.calib_len, "seed": job.seed}
    work = job.out.with_name(job.out.name + ".partial")
    only = None if job.layers is None else sorted(job.layers)
    meta = {"model": str(job.model_dir), "aqlm": job.cfg.to_dict(), "calibration": calib_meta, "layers": only}
    stats = quantize_model(model, ids, job.cfg, LayerStore(work, meta), job.calib_batch, progress, job.layers)
    quant_seconds = time.perf_counter() - start
    ppl_after = eval_perplexity(model, tokenizer, job, progress)
    report = {
        "method": "aqlm",
        "scheme": job.cfg.scheme,
        **sizes.size_summary(model),
        "source_weight_bytes_on_disk": sum(p.stat().st_size for p in job.model_dir.glob("*.safetensors")),
        **sizes.sqnr_summary(stats),
        "eval": None if job.eval_text is None else {
            "text": job.eval_text, "ctx": job.eval_ctx, "max_tokens": job.eval_tokens,
            "perplexity_before": ppl_before, "perplexity_after": ppl_after,
        },
        "calibration": calib_meta,
        "quantized_decoder_layers": "all" if only is None else only,
        "quantize_seconds": quant_seconds,
        "wall_seconds": time.perf_counter() - start,
        "layers": stats,
    }
    presso_meta = {"method": "aqlm", "scheme": job.cfg.scheme, "aqlm": job.cfg.to_dict(), "calibration": calib_meta,
                   "source_model": str(job.model_dir), "quantized_decoder_layers": "all" if only is None else only}
    write_checkpoint(model, job.model_dir, job.out, job.cfg, presso_meta, report)
    shutil.rmtree(work, ignore_errors=True)
    return report
