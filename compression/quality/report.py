"""`presso bench quality`'s outputs: one markdown table (per-domain Δ, mean Δ, bits) and one PNG.

rows (bench.py) -> markdown: model | tool | bits per Linear weight | Δ % per domain (held-out domains
marked) | mean Δ % -> PNG: x = bits per Linear weight, y = mean Δ % on the suite, one marker per tool.
"""

from __future__ import annotations

from pathlib import Path

from presso.compression.data.corpora import CORPORA
from presso.compression.quality.bench import QualityOptions, QualityRow


def _cell(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def render_markdown(rows: list[QualityRow], opts: QualityOptions, command: str) -> str:
    domains = list(rows[0].perplexity)
    head = ["model", "bits / Linear weight", *[f"{d}{'' if CORPORA[d].in_mix else ' †'} Δ %" for d in domains],
            "mean Δ %"]
    dense = rows[0].perplexity
    lines = [
        "| " + " | ".join(head) + " |", "|" + "---|" * len(head),
        "| dense perplexity | 32 | " + " | ".join(f"{dense[d]:.3f}" for d in domains) + " | - |",
    ]
    for r in rows[1:]:
        cells = [r.name, _cell(r.linear_bits, ".3f"), *(_cell(r.deltas[d], "+.2f") for d in domains),
                 f"**{r.mean_delta:+.2f}**"]
        lines.append("| " + " | ".join(cells) + " |")
    notes = [
        "",
        f"Suite: {opts.windows} windows x {opts.ctx} tokens spread over each corpus's evaluation part "
        "(docs/data.md); Δ = perplexity vs the dense fp32 model on the same windows; mean Δ = mean over domains. "
        "† = held out of the calibration mix.",
        f"Calibration (both tools): `{opts.calib}`, {opts.calib_samples} windows x {opts.calib_len} tokens, seed "
        f"{opts.calib_seed}; llama.cpp's importance matrix (`llama-imatrix`) is built from the same windows "
        "(decoded to text, one chunk per window)." if opts.imatrix else "llama.cpp: no importance matrix.",
        "One scorer: llama.cpp's GGUFs are dequantized exactly (the `gguf` package's reference dequantizer) back "
        "into HF safetensors and scored, like presso's checkpoints, by presso's own perplexity code (transformers "
        "forward passes, fp32). Bits per Linear weight: bytes of the 2-D decoder tensors as stored (GGUF blocks, "
        "or presso's packed codes + scales + zeros) x 8 / weights.",
        "",
        f"Command: `{command}`",
    ]
    return "\n".join(lines + notes) + "\n"


def plot(rows: list[QualityRow], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    markers = {"presso": ("o", "tab:blue"), "llama.cpp": ("s", "tab:orange")}
    for tool, (marker, color) in markers.items():
        pts = [r for r in rows if r.tool == tool and r.linear_bits is not None]
        ax.scatter([r.linear_bits for r in pts], [r.mean_delta for r in pts], marker=marker, color=color, label=tool)
        for r in pts:
            ax.annotate(r.name.removeprefix(f"{tool} "), (r.linear_bits, r.mean_delta), fontsize=7,
                        xytext=(4, 3), textcoords="offset points")
    ax.axhline(0.0, color="grey", linestyle="--", linewidth=0.8)
    ax.set_xlabel("bits per Linear weight (as stored)")
    ax.set_ylabel("mean Δ perplexity over the suite's domains (%)")
    ax.set_title("quality vs size: presso presets and llama.cpp quants, one scorer")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
