"""PNG figures from JSON reports (matplotlib, Agg backend): latency CDFs and throughput over time for
one run, and overlaid CDFs + throughput bars for `compare`.

report dict (report.py) -> figures on disk; the figures are drawn only from the JSON, so they can be
redrawn from saved reports without rerunning the load.
"""

from __future__ import annotations

from pathlib import Path

from loadtest.report import latency_samples, throughput_timeline

_PANELS = (("ttft_s", "time to first token"), ("itl_s", "inter-token latency"), ("e2e_s", "end-to-end latency"))


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _cdf(ax, values: list[float], label: str) -> None:
    if not values:
        return
    xs = sorted(v * 1e3 for v in values)
    ys = [(i + 1) / len(xs) for i in range(len(xs))]
    ax.step(xs, ys, where="post", label=label)


def _in_flight(report: dict, times: list[float]) -> list[int]:
    spans = [(r["start"], r["start"] + r["e2e"]) for r in report["per_request"]]
    return [sum(1 for a, b in spans if a <= t < b) for t in times]


def title(report: dict) -> str:
    c = report["config"]
    load = f"{c['concurrency']} streams" if c["mode"] == "concurrency" else f"{c['rate']:g} req/s Poisson"
    return f"{report['model']} @ {c['base_url']}: {load}, out {c['output_len_tokens']} tokens"


def plot_run(report: dict, out_dir: Path, stem: str) -> list[Path]:
    plt = _pyplot()
    out_dir.mkdir(parents=True, exist_ok=True)
    samples = latency_samples(report["per_request"])
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, (key, name) in zip(axes, _PANELS, strict=True):
        _cdf(ax, samples[key], name)
        ax.set_xlabel(f"{name} (ms)")
        ax.set_ylabel("fraction of samples")
        ax.grid(alpha=0.3)
    fig.suptitle(title(report), fontsize=9)
    fig.tight_layout()
    cdf_path = out_dir / f"{stem}_latency_cdf.png"
    fig.savefig(cdf_path, dpi=110)
    plt.close(fig)

    times, rates = throughput_timeline(report)
    fig, ax = plt.subplots(figsize=(8, 3.8))
    ax.plot(times, rates, color="tab:blue", label="output tokens/s")
    ax.set_xlabel("time since start (s)")
    ax.set_ylabel("output tokens/s", color="tab:blue")
    ax.grid(alpha=0.3)
    twin = ax.twinx()
    twin.step(times, _in_flight(report, times), where="mid", color="tab:orange", alpha=0.7)
    twin.set_ylabel("requests in flight", color="tab:orange")
    ax.set_title(title(report), fontsize=9)
    fig.tight_layout()
    tp_path = out_dir / f"{stem}_throughput.png"
    fig.savefig(tp_path, dpi=110)
    plt.close(fig)
    return [cdf_path, tp_path]


def plot_compare(reports: list[dict], labels: list[str], path: Path) -> Path:
    plt = _pyplot()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.8))
    for report, label in zip(reports, labels, strict=True):
        samples = latency_samples(report["per_request"])
        for ax, (key, _) in zip(axes[:3], _PANELS, strict=True):
            _cdf(ax, samples[key], label)
    for ax, (_, name) in zip(axes[:3], _PANELS, strict=True):
        ax.set_xlabel(f"{name} (ms)")
        ax.set_ylabel("fraction of samples")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[3].bar(labels, [r["output_tokens_per_s"] for r in reports], color=["tab:blue", "tab:orange"])
    axes[3].set_ylabel("output tokens/s")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
