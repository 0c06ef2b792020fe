"""presso.compression.report: compare checkpoints (`presso report DIR...`): a table and a size-vs-ppl plot;
the Pareto front of a sweep (`presso sweep`)."""

from presso.compression.report.compare import ReportRow, load_rows, plot_size_vs_ppl, render_table
from presso.compression.report.pareto import ParetoPoint, pareto_front, plot_pareto

__all__ = ["ParetoPoint", "ReportRow", "load_rows", "pareto_front", "plot_pareto", "plot_size_vs_ppl", "render_table"]
