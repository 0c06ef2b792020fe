"""Side-by-side comparison of two JSON reports: a text table (and a dict) of rates and latency
percentiles with the B/A ratio; the CLI adds an overlay PNG via plots.plot_compare.

report A, report B -> rows (metric, A, B, B/A) -> printed table.
"""

from __future__ import annotations

from loadtest.report import PERCENTILES


def _rows_for(report: dict) -> dict[str, float | None]:
    rows: dict[str, float | None] = {
        "requests ok": report["requests"]["ok"],
        "requests failed": report["requests"]["errors"],
        "request rate (req/s)": report["request_rate"],
        "output tokens/s": report["output_tokens_per_s"],
    }
    for key, name in (("ttft_s", "TTFT"), ("itl_s", "ITL"), ("tpot_s", "TPOT"), ("e2e_s", "e2e")):
        stats = report["latency"].get(key, {})
        for q in PERCENTILES:
            value = stats.get(f"p{q}")
            rows[f"{name} p{q} (ms)"] = None if value is None else value * 1e3
    return rows


def compare(a: dict, b: dict) -> list[tuple[str, float | None, float | None, float | None]]:
    ra, rb = _rows_for(a), _rows_for(b)
    out = []
    for name in ra:
        va, vb = ra[name], rb[name]
        ratio = vb / va if va not in (None, 0) and vb is not None else None
        out.append((name, va, vb, ratio))
    return out


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.2f}"


def format_table(rows, labels: tuple[str, str]) -> str:
    header = ("metric", labels[0], labels[1], f"{labels[1]}/{labels[0]}")
    body = [(name, _fmt(va), _fmt(vb), "-" if r is None else f"{r:.2f}x") for name, va, vb, r in rows]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True)))
             for row in [header, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
