"""The report of `presso bench peers`: a markdown file (tables, command, machine) and PNG plots.

{streams: {server: loadtest report}} + batch-1 tok/s -> tables (per stream count: output tok/s, TTFT
p50 and ITL p50 of each server, and each server's ratio to the first) -> --out (markdown) and
--plots (throughput and latency bars per stream count; presso-loadtest's own overlay PNGs per count).
"""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

NOTES = "<!-- notes: kept when the command rewrites this file -->"


def _p50_ms(report: dict, key: str) -> float:
    return report["latency"][key].get("p50", float("nan")) * 1e3


def serving_table(serving: dict[int, dict[str, dict]], servers: list[str]) -> list[str]:
    first, rest = servers[0], servers[1:]
    head = ["streams", *(f"{s} out tok/s" for s in servers), f"TTFT p50 {' / '.join(servers)} (ms)",
            f"ITL p50 {' / '.join(servers)} (ms)"]
    head += [f"{s} ÷ {first}: tok/s, TTFT, ITL" for s in rest]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for streams, reps in serving.items():
        row = [str(streams), *(f"{reps[s]['output_tokens_per_s']:.1f}" for s in servers),
               " / ".join(f"{_p50_ms(reps[s], 'ttft_s'):,.0f}" for s in servers),
               " / ".join(f"{_p50_ms(reps[s], 'itl_s'):.1f}" for s in servers)]
        for s in rest:
            a, b = reps[first], reps[s]
            row.append(f"{b['output_tokens_per_s'] / a['output_tokens_per_s']:.2f}x, "
                       f"{_p50_ms(b, 'ttft_s') / _p50_ms(a, 'ttft_s'):.2f}x, "
                       f"{_p50_ms(b, 'itl_s') / _p50_ms(a, 'itl_s'):.2f}x")
        lines.append("| " + " | ".join(row) + " |")
    return lines


def batch1_table(b1: dict[str, float]) -> list[str]:
    lines = ["| decoder (batch 1, no HTTP) | tok/s | ÷ llama.cpp Q4_1 |", "|---|---|---|"]
    base = b1.get("llama.cpp Q4_1")
    for name, value in b1.items():
        lines.append(f"| {name} | {value:.1f} | {value / base:.2f}x |" if base else f"| {name} | {value:.1f} | - |")
    return lines


def plot(serving: dict[int, dict[str, dict]], servers: list[str], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = list(serving)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    width = 0.8 / len(servers)
    metrics = (("output tokens/s", lambda r: r["output_tokens_per_s"]), ("TTFT p50 (ms)", lambda r: _p50_ms(r, "ttft_s")),
               ("ITL p50 (ms)", lambda r: _p50_ms(r, "itl_s")))
    for ax, (title, get) in zip(axes, metrics, strict=True):
        for j, s in enumerate(servers):
            xs = [i + j * width for i in range(len(counts))]
            ax.bar(xs, [get(serving[c][s]) for c in counts], width, label=s)
        ax.set_xticks([i + width * (len(servers) - 1) / 2 for i in range(len(counts))], [str(c) for c in counts])
        ax.set_xlabel("concurrent streams")
        ax.set_title(title)
    axes[0].legend()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    import torch

    return f"{model}, {platform.system()} {platform.release()}, Python {sys.version.split()[0]}, torch {torch.__version__}"


def write(args, serving: dict[int, dict[str, dict]], b1: dict[str, float], meta: dict) -> str:
    servers = list(args.servers)
    plots = Path(args.plots)
    png = plot(serving, servers, plots / f"{Path(args.out).stem}_serving.png")
    for streams in serving:  # presso-loadtest's own CDF overlay of the first two servers
        if len(servers) >= 2:
            a, b = (Path(args.work_dir) / f"{s}-c{streams}.json" for s in servers[:2])
            subprocess.run([str(Path(sys.executable).with_name("presso-loadtest")), "compare", str(a), str(b),
                            "--labels", ",".join(servers[:2]), "--png",
                            str(plots / f"{Path(args.out).stem}_c{streams}_cdf.png")], capture_output=True)
    load = "load average {:.2f} / {:.2f} / {:.2f} before, {:.2f} / {:.2f} / {:.2f} after".format(
        *meta["load_before"], *meta["load_after"])
    setup = [f"presso: `presso serve --model {args.model}` (`presso-compile`: --compile, `presso-thread`: "
             "--no-engine-process, `presso-process`: --engine-process)."]
    if "llama" in servers:
        setup.append(f"llama: `llama-server -np {args.llama_parallel} -c {args.llama_ctx} -t {args.threads}` on the "
                     f"Q4_1 GGUF of {args.dense_model} (llama.cpp {llama_version()}, `make peers`).")
    lines = [f"# Serving: {' vs '.join(servers)}", "",
             f"Measured {meta['started']} on {meta['cpus']} CPUs ({_machine()}); {load}. "
             "A load average above the core count means other work shared the CPUs: rerun on an idle machine "
             "before quoting.", "",
             f"Workload (same client, `presso-loadtest`): completions, streaming, greedy, `ignore_eos`, prompts "
             f"cut from *Pride and Prejudice* at normal(128, 32) words, {args.output_tokens} output tokens, closed "
             f"loop for {args.duration:g} s per point (in-flight requests finish after), servers loaded one at a "
             f"time, order alternating per stream count; best of {args.rounds} round(s) by throughput. "
             + " ".join(setup), "",
             *serving_table(serving, servers), ""]
    if b1:
        lines += ["Batch-1 decode without HTTP: `llama-bench -p 0 -n 128 -t "
                  f"{args.threads}` (tg128) vs `presso bench engine --batches 1 --tokens 128 --threads {args.threads}` "
                  f"({args.model}, {args.model_int8}).", "", *batch1_table(b1), ""]
    lines += ["Command:", "", "```bash", meta["argv"], "```", "",
              f"Plots: `{png}`" + (", per stream count `*_cdf.png` (presso-loadtest compare)" if len(servers) >= 2 else ""),
              ""]
    text = "\n".join(lines)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    old = out.read_text() if out.is_file() else ""
    notes = old[old.index(NOTES):] if NOTES in old else ""  # hand-written analysis survives a rerun
    out.write_text(text + ("\n" + notes if notes else ""))
    return text


def llama_version() -> str:
    from presso.compression.checkpoint import llama_cpp

    return llama_cpp.VERSION
