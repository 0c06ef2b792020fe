"""loadtest without a server: length distributions, percentiles, the report built from known records,
the throughput timeline, `compare`, and one-line errors (exit 2) for bad command lines."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from loadtest.client import RequestRecord
from loadtest.compare import compare, format_table
from loadtest.config import LengthDist, LoadtestInputError, RunConfig
from loadtest.report import load, percentile, summarize, throughput_timeline
from loadtest.runner import RunResult
from loadtest.workload import jobs


@pytest.mark.parametrize(("spec", "low", "high"), [("fixed:64", 64, 64), ("64", 64, 64), ("uniform:8:16", 8, 16),
                                                   ("normal:30:5", 1, 10**6)])
def test_length_distributions(spec, low, high):
    dist, rng = LengthDist.parse(spec, "--output-len"), random.Random(0)
    values = [dist.sample(rng) for _ in range(2000)]
    assert low <= min(values) and max(values) <= high
    if dist.kind == "uniform":
        assert set(values) == set(range(8, 17))
    if dist.kind == "normal":
        assert abs(np.mean(values) - 30) < 0.5 and abs(np.std(values) - 5) < 0.5


@pytest.mark.parametrize("spec", ["fixed:0", "uniform:9:3", "normal:-1:2", "poisson:3", "uniform:1", "fixed:x", ""])
def test_bad_length_specs_are_refused(spec):
    with pytest.raises(LoadtestInputError, match="--prompt-len"):
        LengthDist.parse(spec, "--prompt-len")


def test_percentile_matches_numpy():
    values = [random.Random(1).expovariate(3.0) for _ in range(101)] + [0.5]
    for q in (0, 50, 90, 99, 100):
        assert percentile(values, q) == pytest.approx(np.percentile(values, q))


def test_jobs_are_seeded_and_follow_the_distributions(tmp_path):
    text = tmp_path / "novel.txt"
    text.write_text(" ".join(f"w{i}" for i in range(500)))
    config = RunConfig("http://x", prompt_len=LengthDist("uniform", 5, 9), output_len=LengthDist("fixed", 7),
                       prompt_file=str(text), max_requests=1)
    first = [next(g) for g in [jobs(config)] for _ in range(20)]
    again = [next(g) for g in [jobs(config)] for _ in range(20)]
    assert first == again
    assert all(5 <= len(j.prompt.split()) <= 9 and j.max_tokens == 7 for j in first)
    words = [int(w[1:]) for w in first[0].prompt.split()]
    assert words == list(range(words[0], words[0] + len(words)))  # a contiguous window of the text


def _result() -> RunResult:
    records = (
        RequestRecord(0, 0.0, 1.0, (0.2, 0.4, 0.6, 1.0), 10, 4, 4),
        RequestRecord(1, 0.5, 2.0, (0.5, 1.0, 2.0), 12, 5, 5),  # 5 tokens in 3 chunks
        RequestRecord(2, 1.0, 0.1, (), None, 0, 4, error="HTTP 429: queue full"),
    )
    return RunResult(RunConfig("http://x", max_requests=3, concurrency=2), "m", records, wall_s=2.5)


def test_summary_from_known_records():
    report = summarize(_result())
    assert report["requests"] == {"total": 3, "ok": 2, "errors": 1}
    assert report["errors"] == {"HTTP 429": 1}
    assert report["output_tokens_total"] == 9 and report["output_tokens_per_s"] == pytest.approx(9 / 2.5)
    assert report["request_rate"] == pytest.approx(2 / 2.5)
    lat = report["latency"]
    assert lat["ttft_s"]["count"] == 2 and lat["ttft_s"]["p50"] == pytest.approx(0.35)
    assert lat["itl_s"]["count"] == 5 and lat["itl_s"]["max"] == pytest.approx(1.0)
    assert lat["tpot_s"]["count"] == 2 and lat["tpot_s"]["mean"] == pytest.approx(((1 - 0.2) / 3 + (2 - 0.5) / 4) / 2)
    assert lat["e2e_s"]["p99"] == pytest.approx(1.0 + 0.99 * 1.0)
    times, rates = throughput_timeline(report, bin_s=0.25)
    assert sum(r * 0.25 for r in rates) == pytest.approx(9)
    assert times[0] == pytest.approx(0.125)


def test_compare_table_and_ratios(tmp_path):
    a = summarize(_result())
    b = json.loads(json.dumps(a))
    b["output_tokens_per_s"] *= 2
    rows = {name: (va, vb, ratio) for name, va, vb, ratio in compare(a, b)}
    assert rows["output tokens/s"][2] == pytest.approx(2.0)
    assert rows["TTFT p50 (ms)"][0] == pytest.approx(350)
    table = format_table(compare(a, b), ("presso", "vllm"))
    assert table.splitlines()[0].split() == ["metric", "presso", "vllm", "vllm/presso"]
    assert "2.00x" in table


def test_load_refuses_what_is_not_a_report(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text('{"hello": 1}')
    with pytest.raises(LoadtestInputError, match="not a loadtest report"):
        load(bad)


@pytest.mark.parametrize(("args", "message"), [
    (["run", "--base-url", "http://127.0.0.1:9", "--out", "o.json"], "bound the run"),
    (["run", "--base-url", "localhost:8000", "--max-requests", "1", "--out", "o.json"], "--base-url"),
    (["run", "--base-url", "http://h", "--max-requests", "1", "--output-len", "uniform:5:2", "--out", "o"], "--output-len"),
    (["run", "--base-url", "http://h", "--max-requests", "1", "--mode", "rate", "--out", "o"], "--rate"),
    (["run", "--base-url", "http://h", "--max-requests", "1", "--prompt-file", "/nonexistent", "--out", "o"], "--prompt-file"),
    (["run", "--base-url", "http://h", "--max-requests", "1", "--extra-body", "{oops", "--out", "o"], "--extra-body"),
    (["run", "--base-url", "http://127.0.0.1:9", "--max-requests", "1", "--out", "o"], "cannot list models"),
    (["compare", "/nonexistent/a.json", "/nonexistent/b.json"], "a.json"),
])
def test_bad_command_lines_exit_2_with_one_line(loadtest, args, message):
    done = loadtest(*args)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("presso-loadtest: error:") and message in lines[0], lines
