"""Size-vs-quality Pareto front and its plot (used by `presso sweep`).

points (name, bits per weight, perplexity) -> the front: points no other point beats on both axes
(fewer or equal bits and lower or equal perplexity, one strictly) -> matplotlib Agg PNG, x = effective
bits per weight of the whole checkpoint, y = perplexity on a log scale, front joined and labelled.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class ParetoPoint:
    name: str
    bits: float  # effective bits per weight of the whole checkpoint
    perplexity: float


def pareto_front(points: list[ParetoPoint]) -> list[ParetoPoint]:
    """The non-dominated points, by increasing bits (and so decreasing perplexity)."""
    front: list[ParetoPoint] = []
    for p in sorted(points, key=lambda q: (q.bits, q.perplexity)):
        if not front or p.perplexity < front[-1].perplexity:
            front.append(p)
    return front


def plot_pareto(points: list[ParetoPoint], path: Path, title: str = "size vs perplexity") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    front = pareto_front(points)
    on_front = {p.name for p in front}
    fig, ax = plt.subplots(figsize=(8, 5))
    rest = [p for p in points if p.name not in on_front]
    ax.scatter([p.bits for p in rest], [p.perplexity for p in rest], color="tab:gray", label="dominated")
    ax.plot([p.bits for p in front], [p.perplexity for p in front], "o-", color="tab:red", label="Pareto front")
    for p in points:
        ax.annotate(p.name, (p.bits, p.perplexity), fontsize=7, xytext=(4, 3), textcoords="offset points",
                    color="tab:red" if p.name in on_front else "dimgray",
                    fontweight="bold" if p.name in on_front else "normal")
    ax.set_yscale("log")
    ax.set_xlabel("effective bits per weight (whole checkpoint, scales and masks included)")
    ax.set_ylabel("perplexity (log scale)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
