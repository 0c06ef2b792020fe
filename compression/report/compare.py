"""`presso report DIR [DIR...]`: one row per checkpoint from its report.json, printed as a table, plus
a PNG of checkpoint size against perplexity after quantization.

checkpoint dirs -> report.json (format_version checked) -> ReportRow -> text table / matplotlib Agg PNG.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from presso.compression.checkpoint.errors import PressoInputError
from presso.compression.checkpoint.presso_files import REPORT_JSON, read_presso_file


@dataclass(frozen=True, slots=True)
class ReportRow:
    name: str
    recipe: str
    bits_linears: float  # bits per weight of the quantized Linears (codes + scales + zeros)
    bits_checkpoint: float  # all weight bytes * 8 / parameters
    megabytes: float
    ratio_vs_bf16: float
    ppl_before: float | None
    ppl_after: float | None
    output_sqnr_db: float | None
    wall_s: float


def load_rows(dirs: list[Path]) -> list[ReportRow]:
    rows = []
    for directory in dirs:
        path = Path(directory) / REPORT_JSON
        if not path.is_file():
            raise PressoInputError(f"{directory}: no {REPORT_JSON} (not a presso compress checkpoint)")
        data = read_presso_file(path)
        try:
            ppl = data.get("perplexity") or {}
            rows.append(ReportRow(
                name=Path(directory).name, recipe=str(data["recipe"]),
                bits_linears=float(data["bits_per_weight"]["quantized_linears"]),
                bits_checkpoint=float(data["bits_per_weight"]["checkpoint"]),
                megabytes=data["bytes"]["checkpoint_weights"] / 1e6,
                ratio_vs_bf16=float(data["bytes"]["ratio_vs_bf16"]),
                ppl_before=ppl.get("before"), ppl_after=ppl.get("after"),
                output_sqnr_db=data["sqnr_db"].get("output_mean"), wall_s=float(data["wall_time_s"]),
            ))
        except (KeyError, TypeError, ValueError) as exc:
            raise PressoInputError(f"{path}: missing or bad field {exc}") from None
    return rows


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def render_table(rows: list[ReportRow]) -> str:
    head = ("checkpoint", "recipe", "bpw(lin)", "bpw(all)", "MB", "x bf16", "ppl before", "ppl after",
            "delta %", "SQNR out dB", "wall s")
    lines = [head]
    for r in rows:
        delta = None if r.ppl_before is None or r.ppl_after is None else 100 * (r.ppl_after / r.ppl_before - 1)
        lines.append((r.name, r.recipe, f"{r.bits_linears:.3f}", f"{r.bits_checkpoint:.2f}", f"{r.megabytes:.1f}",
                      f"{r.ratio_vs_bf16:.2f}", _fmt(r.ppl_before, ".3f"), _fmt(r.ppl_after, ".3f"),
                      _fmt(delta, "+.2f"), _fmt(r.output_sqnr_db, ".2f"), f"{r.wall_s:.0f}"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) for line in lines)


def plot_size_vs_ppl(rows: list[ReportRow], path: Path) -> Path | None:
    """Scatter of checkpoint MB vs perplexity after; None when no row has a perplexity."""
    points = [r for r in rows if r.ppl_after is not None]
    if not points:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in points:
        ax.scatter(r.megabytes, r.ppl_after)
        ax.annotate(f"{r.name} ({r.bits_linears:.2f} bpw)", (r.megabytes, r.ppl_after), fontsize=8,
                    xytext=(4, 4), textcoords="offset points")
    before = [r.ppl_before for r in points if r.ppl_before is not None]
    if before:
        ax.axhline(before[0], linestyle="--", color="grey", label="dense (before)")
        ax.legend()
    ax.set_xlabel("weights on disk (MB)")
    ax.set_ylabel("perplexity after quantization")
    ax.set_title("size vs perplexity")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
