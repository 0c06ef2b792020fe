"""`presso eval --suite`: a model dir (+ the dense model it came from) -> per-domain perplexity and Δ.

model dir -> tokenizer + model (or an injected WindowScorer, e.g. the paged KV cache) -> suite.score_suite;
the reference (`--reference DIR`, else presso.json's source_model when that directory exists, else none)
-> scored the same way with plain forward passes -> suite.suite_report (per-domain before/after/Δ, means).
"""

from __future__ import annotations

import time
from pathlib import Path

from presso.compression.checkpoint.presso_files import PRESSO_JSON, read_presso_file
from presso.compression.eval import loader
from presso.compression.eval.run import model_nll
from presso.compression.eval.suite import SuiteScores, score_suite, suite_report


def default_reference(model_dir: Path) -> Path | None:
    """The dense model a presso checkpoint was compressed from, when it is still on disk."""
    path = model_dir / PRESSO_JSON
    if not path.is_file():
        return None
    source = read_presso_file(path).get("source_model")
    return Path(source) if source and (Path(source) / "config.json").is_file() else None


def scores_of(model_dir: Path, windows: int, ctx: int, dtype: str = "float32", progress: bool = False,
              scorer=None) -> SuiteScores:
    import torch

    tokenizer = loader.load_tokenizer(model_dir)
    if scorer is not None:
        return score_suite(scorer, tokenizer, windows, ctx, progress)
    model = loader.load_model(model_dir, dtype)
    with torch.inference_mode():
        return score_suite(model_nll(model), tokenizer, windows, ctx, progress)


def evaluate_suite(model_dir: Path, reference: Path | None, windows: int, ctx: int, dtype: str = "float32",
                   progress: bool = False, scorer=None) -> dict:
    start = time.perf_counter()
    after = scores_of(model_dir, windows, ctx, dtype, progress, scorer)
    before = None
    if reference is not None:
        same = reference.resolve() == model_dir.resolve() and scorer is None
        before = after.perplexities() if same else scores_of(reference, windows, ctx, dtype, progress).perplexities()
    report = suite_report(before, after)
    return {"model": str(model_dir), "reference": None if reference is None else str(reference),
            "dtype": dtype, "kv_cache": None if scorer is None else scorer.kv_cache,
            "perplexity": report, "seconds": time.perf_counter() - start}


def render(result: dict) -> str:
    ppl = result["perplexity"]
    lines = [f"suite: {ppl['windows']} windows x {ppl['ctx']} tokens per domain; model {result['model']}",
             f"{'domain':<10} {'dense':>9} {'model':>9} {'Δ %':>8}"]
    for name, d in ppl["domains"].items():
        before = "-" if d["before"] is None else f"{d['before']:.3f}"
        delta = "-" if d["delta_pct"] is None else f"{d['delta_pct']:+.2f}"
        lines.append(f"{name + ('' if d['in_mix'] else '*'):<10} {before:>9} {d['after']:>9.3f} {delta:>8}")
    mean = "-" if ppl["delta_pct"] is None else f"{ppl['delta_pct']:+.2f}"
    geo_before = "-" if ppl["before"] is None else f"{ppl['before']:.3f}"
    lines.append(f"{'mean':<10} {geo_before:>9} {ppl['after']:>9.3f} {mean:>8}   (geometric mean ppl, mean Δ)")
    lines.append("* held out of the default calibration mix")
    return "\n".join(lines)
