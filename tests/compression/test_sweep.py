"""`presso sweep` on a tiny Llama: results files and plot, resume without redoing points, a failing point
recorded while the others run, grid errors as one line + exit 2, and the Pareto front."""

from __future__ import annotations

import csv
import json

import pytest

from presso.compression.checkpoint.errors import PressoInputError
from presso.compression.report.pareto import ParetoPoint, pareto_front
from presso.compression.sweep import load_grid, run_sweep

GRID = """\
calib: {text}
calib_samples: 4
calib_len: 64
eval: {text}
eval_tokens: 512
eval_ctx: 128
points:
  - {{name: dense, dense: true}}
  - {{name: w4g64, recipe: w4g64}}
  - {{name: not-yet, recipe: wanda-77}}
  - name: w3-inline
    recipe: {{steps: [{{method: rtn, bits: 3, group_size: 32}}]}}
  - {{name: w8-file, recipe: w8.yaml}}
"""


@pytest.fixture
def grid_file(tmp_path, sample_text_file):
    (tmp_path / "w8.yaml").write_text("steps:\n  - {method: rtn, bits: 8}\n")
    path = tmp_path / "grid.yaml"
    path.write_text(GRID.format(text=sample_text_file))
    return path


def test_sweep_writes_results_resumes_and_records_failures(tiny_llama_dir, grid_file, tmp_path):
    out = tmp_path / "sweep"
    lines: list[str] = []
    first = run_sweep(tiny_llama_dir, grid_file, out, progress=False, log=lines.append)
    status = {r.name: r.status for r in first.rows}
    assert status == {"dense": "ok", "w4g64": "ok", "not-yet": "failed", "w3-inline": "ok", "w8-file": "ok"}
    failed = next(r for r in first.rows if r.status == "failed")
    assert "points.2.recipe" in failed.error and "wanda-77" in failed.error and "\n" not in failed.error
    assert first.input_errors == 1 and first.other_errors == 0
    assert not (out / "points" / "not-yet").exists()
    assert (out / "recipes" / "w3-inline.yaml").is_file()  # inline recipes are kept for reproduction

    rows = {r.name: r for r in first.rows}
    assert rows["dense"].delta_pct == 0.0 and rows["dense"].effective_bits_per_weight > 31.9
    assert rows["w4g64"].bits_per_weight == pytest.approx(4.5, abs=0.1)
    assert rows["w4g64"].megabytes < rows["dense"].megabytes and rows["w4g64"].ratio_vs_fp32 > 1
    assert rows["w3-inline"].effective_bits_per_weight < rows["w8-file"].effective_bits_per_weight
    table = (out / "results.md").read_text()
    assert all(name in table for name in status) and "| perplexity |" in table
    with (out / "results.csv").open() as fh:
        assert [r["name"] for r in csv.DictReader(fh)] == list(status)
    data = json.loads((out / "results.json").read_text())
    assert data["eval_tokens"] == 512 and len(data["points"]) == 5
    png = out / "pareto.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000

    reports = {n: out / "points" / n / "report.json" for n in status if n != "not-yet"}
    before = {n: (p.stat().st_mtime_ns, p.read_bytes()) for n, p in reports.items()}
    lines.clear()
    second = run_sweep(tiny_llama_dir, grid_file, out, progress=False, log=lines.append)
    assert {r.name: r.status for r in second.rows} == {**status, **{n: "skipped" for n in reports}}
    assert {n: (p.stat().st_mtime_ns, p.read_bytes()) for n, p in reports.items()} == before
    assert sum("skipped" in line for line in lines) == 4
    assert [r.perplexity for r in second.rows] == [r.perplexity for r in first.rows]


@pytest.mark.parametrize(("body", "field"), [
    (None, "file not found"),
    ("points: [\n  - {name: a", "invalid YAML"),
    ("eval: x\npoints:\n  - {name: a, recipe: w8, dense: true}\n", "points.0"),
    ("eval: x\npoints:\n  - {name: 'a b', recipe: w8}\n", "points.0.name"),
    ("eval: x\npoints:\n  - {name: a, recipe: w8}\n  - {name: a, recipe: w8}\n", "points"),
    ("calib_seed: y\npoints:\n  - {name: a, recipe: w8}\n", "calib_seed"),
])
def test_grid_errors_name_the_file_and_field(tmp_path, body, field):
    path = tmp_path / "grid.yaml"
    if body is not None:
        path.write_text(body)
    with pytest.raises(PressoInputError, match=field) as info:
        load_grid(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_cli_grid_error_exits_2_and_unknown_preset_point_exits_2(cli, tiny_llama_dir, tmp_path, sample_text_file):
    result = cli("sweep", "--model", str(tiny_llama_dir), "--grid", str(tmp_path / "missing.yaml"),
                 "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and "missing.yaml" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    grid = tmp_path / "g.yaml"
    grid.write_text(f"eval: {sample_text_file}\neval_tokens: 256\neval_ctx: 128\n"
                    "points:\n  - {name: a, recipe: no-such-preset}\n")
    result = cli("sweep", "--model", str(tiny_llama_dir), "--grid", str(grid), "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and "points.0.recipe" in result.stdout
    assert (tmp_path / "o" / "results.md").is_file()


def test_pareto_front_keeps_only_undominated_points():
    pts = [ParetoPoint("a", 4.0, 10.0), ParetoPoint("b", 3.0, 12.0), ParetoPoint("c", 3.5, 13.0),
           ParetoPoint("d", 32.0, 9.0), ParetoPoint("e", 4.0, 11.0)]
    assert [p.name for p in pareto_front(pts)] == ["b", "a", "d"]


def test_kd_point_recovers_an_earlier_point(tiny_llama_dir, sample_text_file, tmp_path):
    """A `distill_from` point runs `presso distill` on an earlier point's checkpoint: same bytes, its own row."""
    eval_text = tmp_path / "eval.txt"
    eval_text.write_text(" ".join(reversed(sample_text_file.read_text().split())))
    grid = tmp_path / "grid.yaml"
    grid.write_text(f"calib: {sample_text_file}\ncalib_samples: 4\ncalib_len: 64\neval: {eval_text}\n"
                    "eval_tokens: 512\neval_ctx: 128\npoints:\n  - {name: w4, recipe: w4g64}\n"
                    "  - {name: w4-kd, distill_from: w4, distill: {steps: 2, seq_len: 32, batch_size: 1, autocast: 'off'}}\n")
    result = run_sweep(tiny_llama_dir, grid, tmp_path / "out", progress=False, log=lambda line: None)
    rows = {r.name: r for r in result.rows}
    assert rows["w4-kd"].status == "ok", rows["w4-kd"].error
    assert rows["w4-kd"].method == rows["w4"].method + " + KD"
    assert rows["w4-kd"].megabytes == rows["w4"].megabytes and rows["w4-kd"].perplexity != rows["w4"].perplexity
    report = json.loads((tmp_path / "out" / "points" / "w4-kd" / "report.json").read_text())
    assert report["distill"]["steps"] == 2 and report["distill"]["text"] == str(sample_text_file)


@pytest.mark.parametrize(("points", "field"), [
    ("  - {name: kd, distill_from: w4}\n  - {name: w4, recipe: w4g64}\n", "must be an earlier point"),
    ("  - {name: w4, recipe: w4g64, distill: {steps: 2}}\n", "distill_from"),
    ("  - {name: w4, recipe: w4g64}\n  - {name: kd, distill_from: w4, distill: {stepz: 2}}\n", "points.1.distill.stepz"),
])
def test_kd_point_errors(tmp_path, points, field):
    path = tmp_path / "grid.yaml"
    path.write_text("eval: x\npoints:\n" + points)
    with pytest.raises(PressoInputError, match=field):
        load_grid(path)
