"""Grafana dashboards and provisioning are structurally valid: the JSON model keys Grafana requires,
unique panel ids, a 24-column grid without overlaps, the provisioned datasource on every panel and
target, and a PromQL `expr` in every target. (No Grafana dashboard JSON schema is published on PyPI;
grafana-foundation-sdk builds dashboards but does not validate them, so the checks are written here.)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
PANEL_TYPES = {"row", "timeseries", "stat", "gauge", "table", "bargauge", "heatmap", "text"}
REQUIRED = {"uid": str, "title": str, "panels": list, "schemaVersion": int, "time": dict, "templating": dict,
            "annotations": dict, "tags": list, "refresh": str, "editable": bool}
UNITS = {"short", "s", "reqps", "percentunit", "bytes", "watt", "J", "x"}


def provisioned_datasource_uids() -> set[str]:
    config = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yaml").read_text())
    return {d["uid"] for d in config["datasources"] if d["type"] == "prometheus"}


def test_there_are_dashboards_for_serving_and_efficiency():
    assert {p.stem for p in DASHBOARDS} == {"presso-serving", "presso-efficiency"}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_model(path: Path):
    dash = json.loads(path.read_text())
    for key, kind in REQUIRED.items():
        assert isinstance(dash.get(key), kind), f"{path.name}: {key} must be a {kind.__name__}"
    assert dash["uid"] == path.stem and len(dash["uid"]) <= 40
    assert dash["schemaVersion"] >= 36 and {"from", "to"} <= set(dash["time"])
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)) and all(isinstance(i, int) for i in ids), f"{path.name}: panel ids {ids}"
    for var in dash["templating"]["list"]:
        assert var["name"] and var["type"] in {"query", "custom", "datasource", "interval", "constant"}
        if var["type"] == "query":
            assert var["datasource"]["uid"] in provisioned_datasource_uids()


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_panels_grid_and_targets(path: Path):
    dash = json.loads(path.read_text())
    uids, occupied = provisioned_datasource_uids(), set()
    for panel in dash["panels"]:
        where = f"{path.name} panel {panel['id']} ({panel.get('title')})"
        assert panel["type"] in PANEL_TYPES and panel.get("title"), where
        grid = panel["gridPos"]
        assert set(grid) == {"h", "w", "x", "y"} and all(isinstance(v, int) and v >= 0 for v in grid.values()), where
        assert grid["w"] >= 1 and grid["h"] >= 1 and grid["x"] + grid["w"] <= 24, where
        cells = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not cells & occupied, f"{where} overlaps another panel"
        occupied |= cells
        if panel["type"] == "row":
            assert panel["collapsed"] is False and panel["panels"] == [] and grid["w"] == 24, where
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": panel["datasource"]["uid"]}, where
        assert panel["datasource"]["uid"] in uids, where
        assert panel["fieldConfig"]["defaults"].get("unit") in UNITS, where
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), where
        for target in panel["targets"]:
            assert target["datasource"]["uid"] in uids, where
            assert isinstance(target["expr"], str) and target["expr"].strip(), where
            assert target["expr"].count("(") == target["expr"].count(")"), f"{where}: unbalanced {target['expr']}"


def test_every_served_series_family_has_a_panel():
    """The issue's list: throughput, latencies, queue, KV usage and bytes/token, memory, energy, compression."""
    exprs = " ".join(t["expr"] for p in DASHBOARDS for panel in json.loads(p.read_text())["panels"]
                     for t in panel.get("targets", []))
    for name in ("presso_generation_tokens_total", "presso_time_to_first_token_seconds_bucket",
                 "presso_inter_token_latency_seconds_bucket", "presso_e2e_request_latency_seconds_bucket",
                 "presso_num_requests_waiting", "presso_num_requests_running", "presso_kv_cache_usage_perc",
                 "presso_kv_cache_bytes_per_token", "presso_process_resident_memory_bytes",
                 "presso_energy_joules_total", "presso_energy_joules_per_generated_token",
                 "presso_model_bits_per_weight", "presso_model_weight_bytes", "presso_gpu_memory_used_bytes"):
        assert name in exprs, name


def test_provisioning_points_at_the_mounted_dashboards():
    providers = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/presso.yaml").read_text())["providers"]
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    mounts = dict(v.split(":")[:2] for v in compose["services"]["grafana"]["volumes"] if v.startswith("./"))
    assert mounts["./grafana/dashboards"] == providers[0]["options"]["path"]
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    home = compose["services"]["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (DEPLOY / "grafana/dashboards" / Path(home).name).is_file()
