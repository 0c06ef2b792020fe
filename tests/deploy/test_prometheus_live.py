"""Real Prometheus against a real presso: every PromQL expression of every Grafana panel and every
alert rule must return data after a load run, and promtool must accept the config and rules.

tiny presso (loopback) <- Debian's prometheus (1 s scrapes, deploy/prometheus/alerts.yml loaded)
<- presso-loadtest (steady streams, then a Poisson burst that overflows the queue) + 2 dropped streams
-> /api/v1/query for each expression at one instant after the load.
Series that presso does not export at all here (energy and GPU: no RAPL/NVML counter) must then be
empty; that is read from /metrics, not assumed.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
GRAFANA_VARS = {"$__rate_interval": "30s", "$model_name": ".+"}
COMPARISON = re.compile(r"^(?P<signal>.*\S)\s*(?P<op>==|!=|>=|<=|>|<)\s*(?P<threshold>-?[0-9.]+(?:e-?[0-9]+)?)\s*$", re.S)


def panel_queries() -> list[tuple[str, str]]:
    out = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"]
                for var, value in GRAFANA_VARS.items():
                    expr = expr.replace(var, value)
                out.append((f"{path.stem}#{panel['id']}{target['refId']} {panel['title']}", expr))
    return out


def alert_queries() -> list[tuple[str, str]]:
    """Each alert `<signal> <op> <threshold>` as `<signal> <op> bool <threshold>`: data whenever the signal has."""
    out = []
    for group in yaml.safe_load(ALERTS.read_text())["groups"]:
        for rule in group["rules"]:
            m = COMPARISON.match(rule["expr"].strip())
            assert m, f"alert {rule['alert']} is not `<signal> <op> <threshold>`: {rule['expr']}"
            out.append((f"alert {rule['alert']}", f"{m['signal']} {m['op']} bool {m['threshold']}"))
    return out


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\bpresso_[a-z0-9_]+", expr))


def family(name: str) -> str:
    return re.sub(r"_(bucket|sum|count|created)$", "", name)


def defined_in_server(name: str) -> bool:
    """Is `name` a series presso's metrics code can emit (so its absence is a hardware fact, not a typo)?"""
    source = "".join(p.read_text() for p in (REPO / "server" / "metrics").glob("*.py"))
    return f'"{re.sub(r"_total$", "", family(name))}"' in source


@dataclass(frozen=True, slots=True)
class Scraped:
    prom: str  # Prometheus base URL
    at: float  # evaluation instant (just after the load)
    declared: frozenset[str]  # metric names in presso's /metrics (HELP/TYPE or samples)
    sampled: frozenset[str]  # names with at least one sample

    def query(self, expr: str) -> list[dict]:
        r = httpx.get(f"{self.prom}/api/v1/query", params={"query": expr, "time": self.at}, timeout=30)
        body = r.json()
        assert r.status_code == 200 and body["status"] == "success", f"{expr}: {body}"
        return body["data"]["result"]


def _exposed(text: str) -> tuple[frozenset[str], frozenset[str]]:
    declared, sampled = set(), set()
    for line in text.splitlines():
        if line.startswith(("# HELP ", "# TYPE ")):
            declared.add(line.split()[2])
        elif line and not line.startswith("#"):
            sampled.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return frozenset(declared | sampled), frozenset(sampled)


def _drop_streams(base: str, count: int) -> None:
    body = {"model": "tiny", "prompt": "It is a truth", "max_tokens": 400, "stream": True}
    for _ in range(count):
        with httpx.stream("POST", f"{base}/v1/completions", json=body, timeout=60) as r:
            for line in r.iter_lines():
                if line.startswith("data: "):
                    break  # closing mid-stream: presso aborts the request ("abort" finish reason)


def _loadtest(base: str, out: Path, *args: str) -> None:
    exe = str(Path(sys.executable).with_name("presso-loadtest"))
    cmd = [exe, "run", "--base-url", base, "--prompt-len", "uniform:5:40", "--out", str(out), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def _write_config(path: Path, presso_base: str) -> Path:
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ALERTS)],
        "scrape_configs": [{"job_name": "presso", "static_configs": [{"targets": [presso_base.split("//")[1]]}]}],
    }
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def prometheus_config(presso_tiny, tmp_path_factory) -> Path:
    return _write_config(tmp_path_factory.mktemp("promcfg") / "prometheus.yml", presso_tiny)


@pytest.fixture(scope="module")
def scraped(presso_tiny, prometheus_config, start_prometheus, tmp_path_factory) -> Scraped:
    prom = start_prometheus(prometheus_config)
    deadline = time.monotonic() + 30
    while not [s for s in httpx.get(f"{prom}/api/v1/query", params={"query": 'up{job="presso"} == 1'}).json()
               ["data"]["result"]]:
        assert time.monotonic() < deadline, "prometheus never scraped presso"
        time.sleep(0.5)
    out = tmp_path_factory.mktemp("load")
    # 6 streams fill 2 running slots + 4 queue places (waiting > 0, no refusals) ...
    _loadtest(presso_tiny, out / "steady.json", "--concurrency", "6", "--duration", "4", "--max-requests", "500",
              "--output-len", "uniform:16:32")
    _drop_streams(presso_tiny, 2)
    # ... then a Poisson burst (24 requests in ~25 ms) overflows the queue: most are refused with 429.
    _loadtest(presso_tiny, out / "burst.json", "--mode", "rate", "--rate", "1000", "--max-requests", "24",
              "--output-len", "fixed:48")
    time.sleep(3)  # two more scrapes after the last request
    declared, sampled = _exposed(httpx.get(f"{presso_tiny}/metrics", timeout=10).text)
    return Scraped(prom, time.time(), declared, sampled)


def test_burst_was_refused_in_part(scraped):
    assert scraped.query('sum(presso_admission_rejections_total{reason="max_queued_requests"}) > 0')


def test_dropped_streams_are_counted_as_aborts(scraped):
    assert scraped.query('sum(presso_request_success_total{finished_reason="abort"}) >= 2')


@pytest.mark.parametrize(("where", "expr"), panel_queries() + alert_queries(), ids=lambda v: v[:90])
def test_expression_returns_data(scraped, where, expr):
    names = metric_names(expr)
    absent = sorted(n for n in names if n not in scraped.declared and family(n) not in scraped.declared)
    result = scraped.query(expr)
    if absent:  # e.g. energy/GPU series on a machine without RAPL or NVML: nothing may come back
        assert all(defined_in_server(n) for n in absent), f"{where}: presso never emits {absent}"
        assert result == [], f"{where}: {absent} are not exported, yet the query returned {result}"
        return
    assert result, f"{where}: no data for {expr}"
    values = [float(s["value"][1]) for s in result]
    assert any(math.isfinite(v) for v in values), f"{where}: only NaN/Inf for {expr}: {values}"


def test_grafana_variable_query_finds_the_model(scraped):
    r = httpx.get(f"{scraped.prom}/api/v1/label/model_name/values",
                  params={"match[]": "presso_model_parameters"}, timeout=10)
    assert r.json()["data"] == ["tiny"]


def test_every_rule_evaluates_without_error(scraped):
    groups = httpx.get(f"{scraped.prom}/api/v1/rules", timeout=10).json()["data"]["groups"]
    rules = {r["name"]: r for g in groups for r in g["rules"]}
    expected = {rule["alert"] for g in yaml.safe_load(ALERTS.read_text())["groups"] for rule in g["rules"]}
    assert set(rules) == expected
    assert {name: r["health"] for name, r in rules.items() if r["health"] != "ok"} == {}


def test_promtool_accepts_config_and_rules(promtool, prometheus_config):
    for args in (["check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")],
                 ["check", "config", str(prometheus_config)],
                 ["check", "rules", str(ALERTS)]):
        done = subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
