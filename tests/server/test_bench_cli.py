"""`presso bench engine` and `bench guided` run end to end on a tiny model and report what they measure."""

from __future__ import annotations

import json


def test_bench_engine_json(cli, tiny_llama_dir):
    out = cli("bench", "engine", "--model", str(tiny_llama_dir), "--batches", "1,3", "--tokens", "4",
              "--prompt-len", "8", "--kv-cache-memory", "16MiB", "--threads", "1", "--json", timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout)
    assert set(r["presso"]) == set(r["transformers"]) == {"1", "3"}
    assert r["presso"]["3"]["generated"] == 12 == r["transformers"]["3"]["generated"]
    assert r["ratios"]["decode_b1"] > 0 and r["ratios"]["aggregate_b3_vs_transformers_b1"] > 0
    assert r["peak_rss_mib"] > 0 and r["bits_per_weight"] == 32.0


def test_bench_bad_model(cli, tmp_path):
    out = cli("bench", "engine", "--model", str(tmp_path / "missing"))
    assert out.returncode == 2 and "presso: error:" in out.stderr


def test_bench_guided_json(cli, tiny_llama_dir):
    out = cli("bench", "guided", "--model", str(tiny_llama_dir), "--batches", "1,2", "--tokens", "6",
              "--repeats", "1", "--kv-cache-memory", "16MiB", "--threads", "1", "--json", timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = json.loads(out.stdout)["rows"]
    assert [r["batch"] for r in rows] == [1, 2] and all(r["tokens"] == 6 * r["batch"] for r in rows)
    assert all(r["grammar_ms_per_token"] > 0 and r["plain_tok_s"] > 0 and r["guided_tok_s"] > 0 for r in rows)
