"""presso.compression.sweep: `presso sweep` runs a grid of recipes, resumably, into a table and a Pareto plot.

grid YAML (grid.py) -> one compress()/eval per point into OUT/points/NAME (run.py) -> results.md/.csv/.json
(results.py) + pareto.png (presso.compression.report.pareto).
"""

from presso.compression.sweep.grid import Grid, Point, load_grid
from presso.compression.sweep.run import SweepResult, run_sweep

__all__ = ["Grid", "Point", "SweepResult", "load_grid", "run_sweep"]
