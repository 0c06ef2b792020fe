"""presso.json / report.json of a distilled checkpoint: the source's records plus a `distill` block.

The block records the run (teacher, text, settings, steps, wall time, a loss-curve summary) and, when an
eval text was given, perplexity before and after KD. A quantize-style report.json (the one `presso report`
reads) also gets `perplexity.after` = after KD and its recipe a `+kd` suffix, so KD points show up next to
their source in tables and plots; its `before` stays the dense model's.
"""

from __future__ import annotations

import json
from pathlib import Path

from presso.compression.checkpoint.presso_files import (
    PRESSO_JSON,
    REPORT_JSON,
    library_versions,
    read_presso_file,
    write_presso_file,
)
from presso.compression.distill.state import Snapshot


def loss_summary(losses: list[float], points: int = 50) -> dict:
    """First/last and 10-step means, plus an evenly thinned curve of at most `points` values."""
    head, tail = losses[:10], losses[-10:]
    stride = max(1, -(-len(losses) // points))
    return {"first": losses[0], "last": losses[-1], "mean_first_10": sum(head) / len(head),
            "mean_last_10": sum(tail) / len(tail), "curve_stride": stride, "curve": losses[::stride]}


def _read(directory: Path, name: str) -> dict:
    path = directory / name
    if not path.is_file():
        return {}
    # AQLM's report.json predates format_version: take it as is; versioned files are checked
    data = json.loads(path.read_text())
    if isinstance(data, dict) and "format_version" in data:
        data = read_presso_file(path)
    data.pop("format_version", None)
    return data


def write_records(opts, kind: str, snap: Snapshot, ppl_before: float | None, ppl_after: float | None,
                  wall_s: float, out: Path) -> dict:
    cfg = opts.train
    block = {
        "teacher": str(opts.teacher_dir), "source": str(opts.model_dir), "format": kind, "text": opts.text,
        "steps": snap.step, "batch_size": cfg.batch_size, "seq_len": cfg.seq_len,
        "tokens": snap.step * cfg.batch_size * cfg.seq_len, "lr": cfg.lr, "temperature": cfg.temperature,
        "hidden_weight": cfg.hidden_weight, "seed": cfg.seed, "bf16": cfg.bf16,
        "train_seconds": snap.wall_s, "wall_time_s": wall_s, "loss": loss_summary(snap.losses),
        "perplexity": None if ppl_before is None else {
            "text": opts.eval_text, "max_tokens": opts.eval_tokens, "ctx": opts.eval_ctx,
            "before_kd": ppl_before, "after_kd": ppl_after, "delta_pct": 100.0 * (ppl_after / ppl_before - 1.0)},
    }
    meta = _read(opts.model_dir, PRESSO_JSON)
    meta.setdefault("kind", kind)
    meta["distill"] = {k: block[k] for k in ("teacher", "source", "text", "steps", "batch_size", "seq_len", "lr",
                                             "temperature", "hidden_weight", "seed", "bf16")}
    meta["library_versions"] = library_versions()
    write_presso_file(out, PRESSO_JSON, meta)
    report = _read(opts.model_dir, REPORT_JSON)
    if isinstance(report.get("recipe"), str):
        report["recipe"] += "+kd"
    ppl = report.get("perplexity")
    if ppl_after is not None and isinstance(ppl, dict) and ppl.get("before") and (
            ppl.get("text"), ppl.get("max_tokens"), ppl.get("ctx")) == (opts.eval_text, opts.eval_tokens, opts.eval_ctx):
        report["perplexity"] = {**ppl, "after": ppl_after, "delta_pct": 100.0 * (ppl_after / ppl["before"] - 1.0)}
    report["distill"] = block
    write_presso_file(out, REPORT_JSON, report)
    return block
