"""`presso sweep`: run every point of a grid, resumably, then write the table and the Pareto plot.

grid.yaml -> for each point: OUT/points/NAME/report.json exists? skip : compress() into OUT/points/NAME
(atomic: a point that fails leaves no directory, its one-line error is recorded and the sweep goes on)
or, for `dense: true`, evaluate the model itself -> OUT/results.{md,csv,json} + OUT/pareto.png.
Inline recipes are written to OUT/recipes/NAME.yaml first, so every point is reproducible from OUT.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from presso.compression.checkpoint.atomic import atomic_directory
from presso.compression.checkpoint.errors import PressoInputError
from presso.compression.checkpoint.presso_files import REPORT_JSON, read_presso_file, write_presso_file
from presso.compression.distill.spec import DistillSpec
from presso.compression.eval.suite import SUITE, SUITE_WINDOWS, is_suite, score_suite, suite_report
from presso.compression.recipes.presets import PRESETS
from presso.compression.report.pareto import ParetoPoint, plot_pareto
from presso.compression.sweep.grid import Grid, Point, load_grid
from presso.compression.sweep.results import SweepRow, row_from_report, write_results


@dataclass(frozen=True, slots=True)
class SweepResult:
    rows: list[SweepRow]
    files: list[Path]
    input_errors: int  # failed points whose cause was user input (unknown preset, bad recipe, ...)
    other_errors: int


def _recipe_spec(point: Point, index: int, grid_path: Path, out: Path) -> str:
    """Preset name or recipe file path for compress(); an inline recipe is written to OUT/recipes."""
    if isinstance(point.recipe, dict):
        path = out / "recipes" / f"{point.name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(point.recipe, sort_keys=False))
        return str(path)
    assert isinstance(point.recipe, str)
    if point.recipe in PRESETS:
        return point.recipe
    path = (grid_path.parent / point.recipe).expanduser()
    if path.is_file():
        return str(path.resolve())
    raise PressoInputError(f"grid {grid_path}: points.{index}.recipe: {point.recipe!r} is neither a preset "
                           f"({', '.join(sorted(PRESETS))}) nor a file relative to the grid")


def _dense(model_dir: Path, grid: Grid, target: Path, progress: bool) -> dict:
    from presso.compression.eval import loader, stats
    from presso.compression.eval.run import evaluate, model_nll

    start = time.perf_counter()
    if is_suite(grid.eval):
        model = loader.load_model(model_dir)
        with torch.inference_mode():
            scores = score_suite(model_nll(model), loader.load_tokenizer(model_dir), SUITE_WINDOWS, grid.eval_ctx,
                                 progress)
        params, disk = stats.parameter_count(model), stats.weight_bytes_on_disk(model_dir)
        perplexity = suite_report(scores.perplexities(), scores)
    else:
        ev = evaluate(model_dir, grid.eval, ctx=grid.eval_ctx, max_tokens=grid.eval_tokens, progress=progress)
        params, disk = ev.parameters, ev.weight_bytes_on_disk
        perplexity = {"text": grid.eval, "max_tokens": grid.eval_tokens, "ctx": grid.eval_ctx,
                      "before": ev.perplexity, "after": ev.perplexity, "delta_pct": 0.0}
    report = {
        "recipe": "dense", "method": "dense", "source_model": str(model_dir),
        "bits_per_weight": {"quantized_linears": None, "checkpoint": stats.bits_per_weight(disk, params)},
        "bytes": {"checkpoint_weights": disk, "original_fp32": 4 * params, "ratio_vs_fp32": 4 * params / disk},
        "parameters": {"total": params, "quantized": 0},
        "perplexity": perplexity,
        "wall_time_s": time.perf_counter() - start,
    }
    with atomic_directory(target) as tmp:
        write_presso_file(tmp, REPORT_JSON, report)
    return report


def _dense_perplexity(out: Path, grid: Grid) -> float | dict[str, float] | None:
    """The dense point's perplexity (suite: per domain) when it was measured with this grid's eval settings
    (saves a re-run)."""
    for point in grid.points:
        path = out / "points" / point.name / REPORT_JSON
        if point.dense and path.is_file():
            ppl = read_presso_file(path).get("perplexity") or {}
            if is_suite(grid.eval) and ppl.get("text") == SUITE and ppl.get("ctx") == grid.eval_ctx \
                    and ppl.get("windows") == SUITE_WINDOWS:
                return {name: d["after"] for name, d in ppl["domains"].items()}
            if (ppl.get("text"), ppl.get("max_tokens"), ppl.get("ctx")) == (grid.eval, grid.eval_tokens, grid.eval_ctx):
                return ppl.get("after")
    return None


def _compress(model_dir: Path, grid: Grid, point: Point, index: int, grid_path: Path, out: Path,
              progress: bool) -> dict:
    from presso.compression.quantize import CompressOptions, compress

    before = _dense_perplexity(out, grid)
    return compress(CompressOptions(
        model_dir=model_dir, recipe=_recipe_spec(point, index, grid_path, out), out=out / "points" / point.name,
        calib=grid.calib, calib_samples=point.calib_samples or grid.calib_samples,
        calib_len=point.calib_len or grid.calib_len, calib_seed=grid.calib_seed, eval_text=grid.eval, eval_tokens=grid.eval_tokens,
        eval_ctx=grid.eval_ctx, batch_size=grid.batch_size, progress=progress,
        target_bits=point.target_bits, target_size=point.target_size,
        before_perplexity=None if isinstance(before, dict) else before,
        before_suite=before if isinstance(before, dict) else None,
    ))


def _distill(model_dir: Path, grid: Grid, point: Point, out: Path, progress: bool) -> dict:
    """KD recovery of an earlier point's checkpoint on the calibration text; the result is a point of its own."""
    from presso.compression.distill import DistillOptions, distill

    source = out / "points" / point.distill_from
    if not (source / REPORT_JSON).is_file():
        raise PressoInputError(f"point {point.name}: distill_from {point.distill_from!r} has no finished checkpoint")
    spec = point.distill or DistillSpec()
    text = spec.text or grid.calib
    if text is None:
        raise PressoInputError(f"point {point.name}: KD trains on `distill.text` or the grid's `calib` text; "
                               "neither is set")
    target = out / "points" / point.name
    distill(DistillOptions(model_dir=source, teacher_dir=model_dir, out=target, text=text,
                           train=spec.train_config(), eval_text=grid.eval, eval_tokens=grid.eval_tokens,
                           eval_ctx=grid.eval_ctx, progress=progress))
    return read_presso_file(target / REPORT_JSON)


def _one_line(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [""])[0]
    return text if isinstance(exc, PressoInputError) else f"{type(exc).__name__}: {text}"


def run_sweep(model_dir: Path, grid_path: Path, out: Path, progress: bool = True, log=print) -> SweepResult:
    grid_path = Path(grid_path).expanduser()
    grid = load_grid(grid_path)
    out = Path(out).expanduser()
    (out / "points").mkdir(parents=True, exist_ok=True)
    rows, input_errors, other_errors = [], 0, 0
    for index, point in enumerate(grid.points):
        target = out / "points" / point.name
        head = f"[{index + 1}/{len(grid.points)}] {point.name}"
        if (target / REPORT_JSON).is_file():
            rows.append(row_from_report(point.name, "skipped", read_presso_file(target / REPORT_JSON)))
            log(f"{head}: done earlier, skipped ({target / REPORT_JSON})")
            continue
        doing = "evaluating the dense model" if point.dense else (
            f"distilling {point.distill_from}" if point.distill_from else "compressing")
        log(f"{head}: {doing} ...")
        start = time.perf_counter()
        try:
            if target.exists():
                raise PressoInputError(f"{target} exists but has no {REPORT_JSON}; remove it to rerun the point")
            if point.dense:
                report = _dense(model_dir, grid, target, progress)
            elif point.distill_from is not None:
                report = _distill(model_dir, grid, point, out, progress)
            else:
                report = _compress(model_dir, grid, point, index, grid_path, out, progress)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # noqa: BLE001  one failing point must not stop the sweep
            input_errors += isinstance(exc, PressoInputError)
            other_errors += not isinstance(exc, PressoInputError)
            rows.append(SweepRow(point.name, "failed", error=_one_line(exc), wall_s=time.perf_counter() - start))
            log(f"{head}: FAILED: {_one_line(exc)}")
            continue
        row = row_from_report(point.name, "ok", report)
        rows.append(row)
        ppl = "-" if row.perplexity is None else f"{row.perplexity:.3f}"
        log(f"{head}: ok, perplexity {ppl}, {row.effective_bits_per_weight or 0:.3f} bits/weight, "
            f"{time.perf_counter() - start:.0f} s")
    meta = {"grid": str(grid_path), "model": str(model_dir), "calib": grid.calib,
            "calib_samples": grid.calib_samples, "calib_len": grid.calib_len, "calib_seed": grid.calib_seed,
            "eval": grid.eval, **({"suite_windows": SUITE_WINDOWS} if is_suite(grid.eval) else {}),
            "eval_tokens": grid.eval_tokens, "eval_ctx": grid.eval_ctx}
    files = write_results(rows, out, meta)
    plotted = [ParetoPoint(r.name, r.effective_bits_per_weight, r.perplexity) for r in rows
               if r.perplexity is not None and r.effective_bits_per_weight is not None]
    if plotted:
        title = "evaluation suite, geometric mean over domains" if is_suite(grid.eval) else grid.eval
        files.append(plot_pareto(plotted, out / "pareto.png", f"{Path(str(model_dir)).name}: {title}"))
    return SweepResult(rows, files, input_errors, other_errors)
