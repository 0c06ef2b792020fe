"""Turn a RunResult into the JSON report (percentiles, rates, errors, per-request timings) and read
reports back for plotting and `compare`.

RunResult -> summarize() -> dict (saved as JSON) -> plots.py / compare.py. Latencies in seconds:
TTFT (send to first text chunk), ITL (gaps between text chunks, pooled over requests), TPOT
((e2e - TTFT) / (output tokens - 1) per request) and e2e; rates use the run's wall time.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

from loadtest.config import LoadtestInputError
from loadtest.runner import RunResult

REPORT_VERSION = 1
PERCENTILES = (50, 90, 99)
LATENCIES = ("ttft_s", "itl_s", "tpot_s", "e2e_s")


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def describe(values: list[float]) -> dict:
    if not values:
        return {"count": 0}
    out = {"count": len(values), "mean": sum(values) / len(values), "max": max(values)}
    out.update({f"p{q}": percentile(values, q) for q in PERCENTILES})
    return out


def latency_samples(per_request: list[dict]) -> dict[str, list[float]]:
    ok = [r for r in per_request if r["error"] is None]
    samples = {name: [] for name in LATENCIES}
    for r in ok:
        times = r["chunk_times"]
        samples["e2e_s"].append(r["e2e"])
        if times:
            samples["ttft_s"].append(times[0])
            samples["itl_s"].extend(b - a for a, b in zip(times, times[1:], strict=False))
        if times and r["output_tokens"] > 1:
            samples["tpot_s"].append((r["e2e"] - times[0]) / (r["output_tokens"] - 1))
    return samples


def summarize(result: RunResult) -> dict:
    per_request = [{
        "index": r.index, "start": round(r.start, 6), "e2e": round(r.e2e, 6),
        "chunk_times": [round(t, 6) for t in r.chunk_times], "prompt_tokens": r.prompt_tokens,
        "output_tokens": r.output_tokens, "max_tokens": r.max_tokens, "error": r.error,
    } for r in sorted(result.records, key=lambda rec: rec.index)]
    ok = [r for r in per_request if r["error"] is None]
    errors = Counter(r["error"].split(":")[0] if ":" in r["error"] else r["error"]
                     for r in per_request if r["error"] is not None)
    wall = max(result.wall_s, 1e-9)
    output_tokens = sum(r["output_tokens"] for r in ok)
    samples = latency_samples(per_request)
    return {
        "report_version": REPORT_VERSION,
        "config": result.config.describe(),
        "model": result.model,
        "duration_s": result.wall_s,
        "requests": {"total": len(per_request), "ok": len(ok), "errors": len(per_request) - len(ok)},
        "errors": dict(errors.most_common(10)),
        "request_rate": len(ok) / wall,
        "output_tokens_per_s": output_tokens / wall,
        "output_tokens_total": output_tokens,
        "prompt_tokens_total": sum(r["prompt_tokens"] or 0 for r in ok),
        "latency": {name: describe(values) for name, values in samples.items()},
        "per_request": per_request,
    }


def throughput_timeline(report: dict, bin_s: float | None = None) -> tuple[list[float], list[float]]:
    """Output tokens/s per time bin; each request's tokens are spread evenly over its text chunks."""
    events = []
    for r in report["per_request"]:
        if r["error"] is None and r["chunk_times"]:
            weight = r["output_tokens"] / len(r["chunk_times"])
            events += [(r["start"] + t, weight) for t in r["chunk_times"]]
    if not events:
        return [], []
    end = max(t for t, _ in events)
    width = bin_s or max(end / 40, 0.1)
    counts = [0.0] * (int(end / width) + 1)
    for t, w in events:
        counts[int(t / width)] += w
    return [(i + 0.5) * width for i in range(len(counts))], [c / width for c in counts]


def save(report: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1) + "\n")


def load(path: str | Path) -> dict:
    try:
        report = json.loads(Path(path).read_text())
    except OSError as exc:
        raise LoadtestInputError(f"{path}: {exc.strerror or exc}") from None
    except ValueError:
        raise LoadtestInputError(f"{path}: not valid JSON") from None
    if not isinstance(report, dict) or report.get("report_version") != REPORT_VERSION:
        raise LoadtestInputError(f"{path}: not a loadtest report (report_version {REPORT_VERSION} expected)")
    return report
