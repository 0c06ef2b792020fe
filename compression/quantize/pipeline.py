"""`presso compress`: model dir + recipe (+ calibration text, + eval text) -> checkpoint directory.

load fp32 model -> resolve plan -> [perplexity before] -> sequential quantization -> in a temp dir:
compressed-tensors export, tokenizer, [perplexity after, re-loaded from the written files through
transformers], presso.json, report.json -> rename to --out. Any failure leaves no --out behind.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from presso.compression.calibration import calibration_windows, quantize_model
from presso.compression.checkpoint.atomic import atomic_directory, check_output_dir
from presso.compression.checkpoint.errors import PressoInputError
from presso.compression.checkpoint.presso_files import (
    PRESSO_JSON,
    REPORT_JSON,
    library_versions,
    write_presso_file,
)
from presso.compression.eval import loader
from presso.compression.eval.perplexity import perplexity, token_windows
from presso.compression.eval.run import evaluate, tokenize_text
from presso.compression.methods import get_method
from presso.compression.quantize.export import export_compressed
from presso.compression.quantize.report import build_report
from presso.compression.recipes import load_recipe, recipe_to_dict, resolve_plan
from presso.kernels import envs


@dataclass(frozen=True, slots=True)
class CompressOptions:
    model_dir: Path
    recipe: str  # preset name or YAML path
    out: Path
    calib: str | None = None  # text spec
    calib_samples: int = 128
    calib_len: int = 512
    eval_text: str | None = None
    eval_tokens: int = 8192
    eval_ctx: int = 1024
    batch_size: int = 8
    progress: bool = True


def _dense_perplexity(model, tokenizer, opts: CompressOptions) -> float:
    from presso.compression.data.texts import load_text

    windows = token_windows(tokenize_text(tokenizer, load_text(opts.eval_text)), opts.eval_ctx, opts.eval_tokens)
    with torch.inference_mode():
        return perplexity(lambda ids: model(input_ids=ids).logits, windows, progress=opts.progress).perplexity


def compress(opts: CompressOptions) -> dict:
    """Run the whole pipeline; returns the report (also written as report.json)."""
    start = time.perf_counter()
    if envs.num_threads():
        torch.set_num_threads(envs.num_threads())
    check_output_dir(opts.out)
    recipe = load_recipe(opts.recipe)
    tokenizer = loader.load_tokenizer(opts.model_dir)
    if opts.eval_text is not None:
        limit = loader.read_config(opts.model_dir).get("max_position_embeddings")
        if limit and opts.eval_ctx > limit:
            raise PressoInputError(f"--eval-ctx {opts.eval_ctx} exceeds the model's max_position_embeddings {limit}")
    if loader.quant_method(loader.read_config(opts.model_dir)) != "dense":
        raise PressoInputError(f"{opts.model_dir} is already quantized; compress a dense model")
    model = loader.load_model(opts.model_dir, "float32")
    params = sum(p.numel() for p in model.parameters())  # logical parameters, tied weights once
    plans = resolve_plan(recipe, model)
    needs = sorted({p.method for p in plans if get_method(p.method).needs_calibration})
    if needs and opts.calib is None:
        raise PressoInputError(f"method {', '.join(needs)} needs calibration data: pass --calib SPEC")
    windows = None
    if opts.calib is not None:
        windows = calibration_windows(tokenizer, opts.calib, opts.calib_samples, opts.calib_len)
    before = _dense_perplexity(model, tokenizer, opts) if opts.eval_text else None
    result = quantize_model(model, plans, windows, opts.batch_size, opts.progress)
    with atomic_directory(opts.out) as tmp:
        export_compressed(model, result.layers, tmp)
        tokenizer.save_pretrained(tmp)
        del model
        after = None
        if opts.eval_text:
            after = evaluate(tmp, opts.eval_text, ctx=opts.eval_ctx, max_tokens=opts.eval_tokens,
                             progress=opts.progress).perplexity
        write_presso_file(tmp, PRESSO_JSON, {
            "kind": "quantized",
            "format": "compressed-tensors/pack-quantized",
            "source_model": str(opts.model_dir),
            "recipe": recipe_to_dict(recipe),
            "calibration": None if windows is None else
            {"text": opts.calib, "samples": opts.calib_samples, "length": opts.calib_len},
            "versions": library_versions(),
        })
        report = build_report(opts, tmp, result, params, before, after, time.perf_counter() - start)
        write_presso_file(tmp, REPORT_JSON, report)
    return report
