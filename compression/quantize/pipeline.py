"""`presso compress`: model dir + recipe (+ calibration text, + eval text) -> checkpoint directory.

check inputs -> load fp32 model -> [calibration windows: only when a stage needs them (calibrated methods,
structured, mixed, --kv), or --report-samples for calibration-free recipes' output errors] -> [perplexity
before: one text, or the suite's per-domain scores] -> stages.transform (structured pruning, mixed
precision, the recipe's steps, embedding RTN, KV codebooks) -> in a temp dir: compressed-tensors export
(dense when nothing is quantized), tokenizer, [distillation], [perplexity after, re-loaded from the
written files], presso.json, report.json -> rename to --out. Any failure leaves no --out behind.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from presso.compression.calibration import calibration_windows
from presso.compression.calibration.mix import describe, is_mix, parse_mix
from presso.compression.checkpoint.atomic import atomic_directory, check_output_dir
from presso.compression.checkpoint.errors import PressoInputError
from presso.compression.checkpoint.presso_files import (
    PRESSO_JSON,
    REPORT_JSON,
    library_versions,
    write_presso_file,
)
from presso.compression.checkpoint.safetensors_check import tensor_bytes
from presso.compression.eval import loader
from presso.compression.eval.perplexity import perplexity, token_windows
from presso.compression.eval.run import evaluate, model_nll, tokenize_text
from presso.compression.eval.suite import SUITE_WINDOWS, is_suite, score_suite, suite_report
from presso.compression.eval.suite_run import scores_of
from presso.compression.kv_rvq import stage as kv_stage
from presso.compression.methods import get_method
from presso.compression.quantize.embedding import embedding_report, finish_tied_embedding
from presso.compression.quantize.export import export_compressed
from presso.compression.quantize.report import build_report
from presso.compression.quantize.stages import Transformed, transform
from presso.compression.recipes import load_recipe, recipe_to_dict
from presso.compression.recipes.schema import Recipe
from presso.kernels import envs


@dataclass(frozen=True, slots=True)
class CompressOptions:
    model_dir: Path
    recipe: str  # preset name or YAML path
    out: Path
    calib: str | None = "mix"  # text spec; `mix` = the multi-domain calibration mix (calibration/mix.py)
    calib_samples: int = 128
    calib_len: int = 512
    calib_seed: int = 0  # where a mix's windows are drawn
    report_samples: int = 0  # calibration-free recipes: windows replayed for per-layer output errors (0: none)
    eval_text: str | None = None
    eval_tokens: int = 8192
    eval_ctx: int = 1024
    batch_size: int = 8
    progress: bool = True
    target_bits: float | None = None  # mixed precision: overrides the recipe's mixed.target_bits
    kv: str | None = None  # `rvq[:stages=S,...]`: KV-cache codebooks calibrated into the checkpoint
    target_size: str | None = None  # ... or its mixed.target_size ("60MB")
    sparse_format: str = "bitmask"  # pruning-only checkpoints: "bitmask" (sparse-(24-)bitmask) or "dense"
    before_perplexity: float | None = None  # the dense model's, when known (a sweep's dense point): not re-run
    before_suite: dict[str, float] | None = None  # same, per suite domain (--eval suite)


def _dense_perplexity(model, tokenizer, opts: CompressOptions) -> float | dict[str, float]:
    from presso.compression.data.texts import load_text

    if is_suite(opts.eval_text):  # per domain: {corpus: perplexity}
        with torch.inference_mode():
            return score_suite(model_nll(model), tokenizer, SUITE_WINDOWS, opts.eval_ctx, opts.progress).perplexities()

    windows = token_windows(tokenize_text(tokenizer, load_text(opts.eval_text)), opts.eval_ctx, opts.eval_tokens)
    with torch.inference_mode():
        return perplexity(lambda ids: model(input_ids=ids).logits, windows, progress=opts.progress).perplexity


def calibration_need(recipe: Recipe, kv_spec, opts: CompressOptions) -> int:
    """How many calibration windows the run needs: all of them when a stage calibrates, --report-samples for a
    calibration-free recipe (per-layer output errors only; 0 by default: no calibration pass at all)."""
    calibrated = any(get_method(s.method).needs_calibration for s in recipe.steps)
    if calibrated or recipe.structured is not None or recipe.mixed is not None or kv_spec is not None:
        return opts.calib_samples
    return min(opts.report_samples, opts.calib_samples) if opts.calib is not None else 0


def _check_inputs(opts: CompressOptions, recipe: Recipe, config: dict) -> None:
    """Every user error that can be seen before any work: one PressoInputError naming the flag/field."""
    if opts.eval_text is not None:
        limit = config.get("max_position_embeddings")
        if limit and opts.eval_ctx > limit:
            raise PressoInputError(f"--eval-ctx {opts.eval_ctx} exceeds the model's max_position_embeddings {limit}")
    if loader.quant_method(config) != "dense":
        raise PressoInputError(f"{opts.model_dir} is already quantized; compress a dense model")
    needs = sorted({s.method for s in recipe.steps if get_method(s.method).needs_calibration})
    if recipe.structured is not None:
        needs.insert(0, "structured pruning")
    if recipe.mixed is not None:
        needs.append("mixed precision")
    elif opts.target_bits is not None or opts.target_size is not None:
        raise PressoInputError(f"--target-bits/--target-size need a recipe with a `mixed` section, not {opts.recipe!r} "
                               "(e.g. --recipe mixed-gptq-3.5)")
    if needs and opts.calib is None:
        raise PressoInputError(f"method {', '.join(needs)} needs calibration data: pass --calib SPEC")
    if is_mix(opts.calib):
        parse_mix(opts.calib)  # an unknown corpus or bad weight fails before any work
    if recipe.distill is not None:  # KD runs after the steps: its texts are checked before any work
        from presso.compression.distill.stage import check_spec

        check_spec(recipe.distill, opts.calib, opts.eval_text)


def _write_weights(model, done: Transformed, tokenizer, tmp: Path, sparse_format: str) -> str:
    """The model's weights + tokenizer into tmp -> the checkpoint format written."""
    fmt = "dense"
    if done.layers:
        fmt = export_compressed(model, done.layers, tmp, sparse_format)
        if done.embedding is not None:
            finish_tied_embedding(tmp, bool(getattr(model.config, "tie_word_embeddings", False)))
    else:  # structured pruning alone: a plain (smaller) dense checkpoint
        model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    return fmt


def _extend_report(report: dict, done: Transformed, tmp: Path, fmt: str, distilled: dict | None) -> dict:
    """The optional stages' sections; sizes in `report` compare with the ORIGINAL model's parameters."""
    report["format"] = fmt
    if done.structured is not None:
        report["structured"] = done.structured.to_report()
    if done.mixed is not None:
        report["mixed"] = done.mixed
    if done.kv is not None:  # written after the size report, which counts weights only
        report["kv_cache"] = kv_stage.write(tmp, done.kv)
    if done.embedding is not None:
        report["embeddings"] = embedding_report(tmp, done.embedding, tensor_bytes(tmp))
    if distilled is not None:
        report["distill"] = distilled
    return report


def _calibration_entry(opts: CompressOptions, windows: torch.Tensor | None) -> dict | None:
    """What presso.json / report.json say about calibration: None when no calibration pass ran."""
    if windows is None:
        return None
    entry = {"text": opts.calib, "samples": int(windows.shape[0]), "length": opts.calib_len,
             "tokens": int(windows.numel())}
    if is_mix(opts.calib):
        entry.update(seed=opts.calib_seed, corpora=describe(opts.calib, int(windows.shape[0]), opts.calib_len)["corpora"])
    return entry


def compress(opts: CompressOptions) -> dict:
    """Run the whole pipeline; returns the report (also written as report.json)."""
    start = time.perf_counter()
    if envs.num_threads():
        torch.set_num_threads(envs.num_threads())
    check_output_dir(opts.out)
    recipe = load_recipe(opts.recipe)
    kv_spec = kv_stage.parse(opts.kv, opts.calib)
    tokenizer = loader.load_tokenizer(opts.model_dir)
    _check_inputs(opts, recipe, loader.read_config(opts.model_dir))
    model = loader.load_model(opts.model_dir, "float32")
    params = sum(p.numel() for p in model.parameters())  # logical parameters, tied weights once
    samples = calibration_need(recipe, kv_spec, opts)
    windows = calibration_windows(tokenizer, opts.calib, samples, opts.calib_len, opts.calib_seed) if samples else None
    before = opts.before_suite if is_suite(opts.eval_text) else opts.before_perplexity
    if before is None and opts.eval_text:
        before = _dense_perplexity(model, tokenizer, opts)
    done = transform(model, recipe, windows, kv_spec, opts)
    with atomic_directory(opts.out) as tmp:
        fmt = _write_weights(model, done, tokenizer, tmp, opts.sparse_format)
        del model
        distilled = None
        if done.recipe.distill is not None:
            from presso.compression.distill.stage import distill_in_place

            distilled = distill_in_place(tmp, opts.model_dir, done.recipe.distill, opts.calib, opts.eval_text,
                                         opts.progress)
        after = None
        if is_suite(opts.eval_text):
            after = scores_of(tmp, SUITE_WINDOWS, opts.eval_ctx, progress=opts.progress)
        elif opts.eval_text:
            after = evaluate(tmp, opts.eval_text, ctx=opts.eval_ctx, max_tokens=opts.eval_tokens,
                             progress=opts.progress).perplexity
        write_presso_file(tmp, PRESSO_JSON, {
            "kind": "quantized" if done.quantized else "pruned",
            "format": fmt,
            "source_model": str(opts.model_dir),
            "recipe": recipe_to_dict(done.recipe),
            "calibration": _calibration_entry(opts, windows),
            "versions": library_versions(),
            **({"mixed": done.mixed} if done.mixed is not None else {}),
            **kv_stage.presso_entry(done.kv),
        })
        suite = None if after is None or not is_suite(opts.eval_text) else suite_report(before, after)
        report = build_report(opts, tmp, done.result, params, None if suite else before, None if suite else after,
                              time.perf_counter() - start)
        report["calibration"] = _calibration_entry(opts, windows)
        if suite is not None:
            report["perplexity"] = suite
        write_presso_file(tmp, REPORT_JSON, _extend_report(report, done, tmp, fmt, distilled))
    return report
