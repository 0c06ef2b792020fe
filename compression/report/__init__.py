"""presso.compression.report: compare checkpoints (`presso report DIR...`): a table and a size-vs-ppl plot."""

from presso.compression.report.compare import ReportRow, load_rows, plot_size_vs_ppl, render_table

__all__ = ["ReportRow", "load_rows", "plot_size_vs_ppl", "render_table"]
