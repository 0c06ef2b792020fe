"""A sweep's results: one row per point from its report.json, written as results.md / .csv / .json.

report.json (presso compress, or the dense point's) -> SweepRow -> markdown table, CSV, JSON. Keys that
other stages add when present are read here: `sparsity` (a ratio, or a mapping holding one) and
`effective_bits_per_weight` (a number, or a mapping with `checkpoint`); without the latter a row falls
back to `bits_per_weight.checkpoint`, which already counts every byte of the weight files.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path


@dataclass(frozen=True, slots=True)
class SweepRow:
    name: str
    status: str  # ok | skipped (finished earlier) | failed
    method: str | None = None
    sparsity: float | None = None
    bits_per_weight: float | None = None  # of the quantized Linears (codes + scales), None when none
    effective_bits_per_weight: float | None = None  # whole checkpoint: weight-file bytes * 8 / parameters
    megabytes: float | None = None  # weight files on disk, 1e6 bytes
    ratio_vs_fp32: float | None = None
    perplexity: float | None = None
    delta_pct: float | None = None
    wall_s: float | None = None
    error: str | None = None
    domains: dict[str, float] | None = None  # --eval suite: Δ % per corpus (perplexity/delta_pct: their means)


def _number(value, keys: tuple[str, ...]) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, dict):
        for key in keys:
            if isinstance(value.get(key), int | float):
                return float(value[key])
    return None


def _method(report: dict) -> str:
    if isinstance(report.get("method"), str):
        return report["method"]
    methods = list(dict.fromkeys(str(x.get("method")) for x in report.get("layers", []) if x.get("method")))
    if report.get("structured"):
        methods.insert(0, "structured")
    name = "+".join(methods) or str(report.get("recipe"))
    name = f"{name} (mixed)" if report.get("mixed") else name
    return f"{name} + KD" if report.get("distill") else name


def row_from_report(name: str, status: str, report: dict) -> SweepRow:
    bits = report.get("bits_per_weight") or {}
    size = report.get("bytes") or {}
    ppl = report.get("perplexity") or {}
    effective = _number(report.get("effective_bits_per_weight"), ("checkpoint", "total"))
    disk = size.get("checkpoint_weights")
    return SweepRow(
        name=name, status=status, method=_method(report),
        sparsity=_number(report.get("sparsity"), ("overall", "linears", "targeted", "ratio")),
        bits_per_weight=bits.get("quantized_linears") if bits.get("quantized_linears") else None,
        effective_bits_per_weight=effective if effective is not None else bits.get("checkpoint"),
        megabytes=None if disk is None else disk / 1e6, ratio_vs_fp32=size.get("ratio_vs_fp32"),
        perplexity=ppl.get("after"), delta_pct=ppl.get("delta_pct"),
        domains={k: d.get("delta_pct") for k, d in ppl["domains"].items()} if ppl.get("domains") else None,
        wall_s=(report.get("distill") or {}).get("wall_time_s", report.get("wall_time_s")),  # KD: its own time
    )


def _cell(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


HEADER = ("point", "method", "sparsity", "bits/weight (Linears)", "effective bits/weight", "MB on disk",
          "x smaller than fp32", "perplexity", "Δ %", "wall s", "status")


def render_markdown(rows: list[SweepRow], title: str) -> str:
    names = list(dict.fromkeys(k for r in rows for k in (r.domains or {})))  # suite: one Δ column per corpus
    header = HEADER[:-3] + tuple(f"Δ % {n}" for n in names) + HEADER[-3:]
    if names:
        header = tuple("perplexity (geo mean)" if h == "perplexity" else "mean Δ %" if h == "Δ %" else h
                       for h in header)
    lines = [f"# {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = (r.name, r.method or "-", _cell(r.sparsity, ".2f"), _cell(r.bits_per_weight, ".3f"),
                 _cell(r.effective_bits_per_weight, ".3f"), _cell(r.megabytes, ".1f"), _cell(r.ratio_vs_fp32, ".2f"),
                 _cell(r.perplexity, ".3f"), *(_cell((r.domains or {}).get(n), "+.2f") for n in names),
                 _cell(r.delta_pct, "+.2f"), _cell(r.wall_s, ".0f"),
                 r.status if r.error is None else f"{r.status}: {r.error}".replace("|", "/"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_results(rows: list[SweepRow], out: Path, meta: dict) -> list[Path]:
    md, csv_path, js = out / "results.md", out / "results.csv", out / "results.json"
    md.write_text(render_markdown(rows, f"sweep {meta.get('grid', '')}"))
    names = list(dict.fromkeys(k for r in rows for k in (r.domains or {})))
    flat = [{**{k: v for k, v in asdict(r).items() if k != "domains"},
             **{f"delta_pct_{n}": (r.domains or {}).get(n) for n in names}} for r in rows]
    with csv_path.open("w", newline="") as fh:
        columns = [f.name for f in fields(SweepRow) if f.name != "domains"] + [f"delta_pct_{n}" for n in names]
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(flat)
    js.write_text(json.dumps({**meta, "points": [asdict(r) for r in rows]}, indent=2) + "\n")
    return [md, csv_path, js]
