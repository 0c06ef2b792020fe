"""presso-loadtest against a live tiny-model presso: its counts agree with the server's own Prometheus
counters, both load modes respect their bounds, chat + prompt files + API keys work, failures are
counted as errors, and the PNG plots and `compare` come out."""

from __future__ import annotations

import json
from pathlib import Path

PNG = b"\x89PNG\r\n\x1a\n"


def _is_png(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == PNG and path.stat().st_size > 10_000


def test_concurrency_run_agrees_with_server_counters(live, loadtest, tmp_path):
    tokens_before = live.counter("presso_generation_tokens_total")
    done_before = live.counter("presso_request_success_total")
    ttft_before = live.counter("presso_time_to_first_token_seconds_count")
    out = tmp_path / "c4.json"
    done = loadtest("run", "--base-url", live.base_url, "--api-key", live.api_key, "--concurrency", "4",
                    "--max-requests", "12", "--output-len", "uniform:8:24", "--prompt-len", "normal:30:10",
                    "--out", str(out), "--plots", str(tmp_path / "png"))
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    assert report["requests"] == {"total": 12, "ok": 12, "errors": 0}
    assert report["model"] == "tiny"  # discovered through GET /v1/models
    assert report["output_tokens_total"] == live.counter("presso_generation_tokens_total") - tokens_before
    assert live.counter("presso_request_success_total") - done_before == 12
    assert live.counter("presso_time_to_first_token_seconds_count") - ttft_before == 12
    for r in report["per_request"]:
        assert 1 <= r["output_tokens"] <= r["max_tokens"] <= 24 and r["prompt_tokens"] > 0
        assert r["chunk_times"] == sorted(r["chunk_times"]) and r["chunk_times"][-1] <= r["e2e"]
    lat = report["latency"]
    assert lat["ttft_s"]["count"] == 12 and 0 < lat["ttft_s"]["p50"] <= lat["ttft_s"]["p90"] <= lat["ttft_s"]["p99"]
    assert lat["e2e_s"]["p50"] >= lat["ttft_s"]["p50"]
    assert "TTFT" in done.stdout and "output tokens/s" in done.stdout
    assert _is_png(tmp_path / "png" / "c4_latency_cdf.png") and _is_png(tmp_path / "png" / "c4_throughput.png")


def test_poisson_mode_stops_at_the_time_limit(live, loadtest, tmp_path):
    out = tmp_path / "rate.json"
    done = loadtest("run", "--base-url", live.base_url, "--api-key", live.api_key, "--mode", "rate", "--rate", "10",
                    "--duration", "1.5", "--output-len", "fixed:8", "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    starts = [r["start"] for r in report["per_request"]]
    assert 3 <= len(starts) <= 40, len(starts)  # ~15 expected from a Poisson(10/s) process over 1.5 s
    assert max(starts) < 1.5 + 0.2
    assert report["config"]["mode"] == "rate" and report["requests"]["errors"] == 0


def test_chat_api_with_a_prompt_file(live, loadtest, tmp_path, sample_text_file):
    out = tmp_path / "chat.json"
    done = loadtest("run", "--base-url", live.base_url, "--api-key", live.api_key, "--api", "chat",
                    "--prompt-file", str(sample_text_file), "--prompt-len", "fixed:20", "--max-requests", "4",
                    "--concurrency", "2", "--output-len", "fixed:6", "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    assert report["requests"]["ok"] == 4
    assert all(r["prompt_tokens"] > 20 for r in report["per_request"])  # 20 words + the chat template


def test_refused_requests_are_errors(live, loadtest, tmp_path):
    out = tmp_path / "denied.json"
    done = loadtest("run", "--base-url", live.base_url, "--api-key", "wrong", "--model", "tiny",
                    "--max-requests", "3", "--out", str(out))
    assert done.returncode == 1  # nothing succeeded
    report = json.loads(out.read_text())
    assert report["requests"] == {"total": 3, "ok": 0, "errors": 3}
    assert report["errors"] == {"HTTP 401": 3}


def test_compare_two_runs(live, loadtest, tmp_path):
    for streams in ("1", "4"):
        done = loadtest("run", "--base-url", live.base_url, "--api-key", live.api_key, "--concurrency", streams,
                        "--max-requests", "8", "--output-len", "fixed:12", "--out", str(tmp_path / f"c{streams}.json"))
        assert done.returncode == 0, done.stderr
    png = tmp_path / "cmp.png"
    done = loadtest("compare", str(tmp_path / "c1.json"), str(tmp_path / "c4.json"), "--labels", "one,four",
                    "--png", str(png))
    assert done.returncode == 0, done.stderr
    header, _, *rows = done.stdout.splitlines()
    assert header.split() == ["metric", "one", "four", "four/one"]
    names = [row.split("  ")[0].strip() for row in rows if not row.startswith("plot:")]
    assert {"output tokens/s", "TTFT p99 (ms)", "ITL p50 (ms)", "e2e p90 (ms)"} <= set(names)
    assert _is_png(png)
