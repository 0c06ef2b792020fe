"""compose.yaml and the Kubernetes manifests parse, reference only files that exist, agree with each
other (names, labels, ports, volumes) and pass presso the flags its own argument parser accepts."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
K8S = DEPLOY / "k8s"
_DEFAULT = re.compile(r"\$\{[A-Z_]+:-([^}]*)\}")


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def k8s_docs() -> dict[tuple[str, str], dict]:
    docs = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and "kind" in doc and doc["kind"] != "Kustomization":
                docs[(doc["kind"], doc["metadata"]["name"])] = doc
    return docs


def serve_argv(args: list[str]) -> list[str]:
    """What docker/entrypoint.sh runs for `serve ARGS...`, with ${VAR:-default} resolved to the default."""
    assert args[0] == "serve", args
    rest = [_DEFAULT.sub(lambda m: m[1], a) for a in args[1:]]
    return ["serve", "--model", "/models/served", "--host", "0.0.0.0", "--port", "8000", *rest]


def test_compose_files_and_build_exist():
    spec = compose()
    for name, service in spec["services"].items():
        build = service.get("build")
        if build:
            context = (DEPLOY / build["context"]).resolve()
            assert (context / build["dockerfile"]).is_file(), name
        for volume in service.get("volumes", []):
            source = _DEFAULT.sub(lambda m: m[1], volume).split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source} does not exist"
            else:
                assert source in spec["volumes"], f"{name}: volume {source} is not declared"
    assert {"presso-init", "presso", "prometheus", "grafana"} <= set(spec["services"])


def test_compose_runs_init_then_serve_with_valid_flags():
    from presso.server.cli import build_parser

    services = compose()["services"]
    assert services["presso-init"]["command"] == ["compress-once"]
    assert "compress-once)" in (DEPLOY.parent / "docker/entrypoint.sh").read_text()
    serve = services["presso"]
    assert serve["depends_on"]["presso-init"]["condition"] == "service_completed_successfully"
    build_parser().parse_args(serve_argv(serve["command"]))
    assert serve["ports"] == ["8000:8000"]


def test_compose_prometheus_mounts_the_config_and_its_rules():
    prom = compose()["services"]["prometheus"]
    mounts = dict(v.split(":")[:2] for v in prom["volumes"] if v.startswith("./"))
    config_in_container = next(a.split("=", 1)[1] for a in prom["command"] if a.startswith("--config.file="))
    assert mounts["./prometheus/prometheus.yml"] == config_in_container
    config = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
    for rule_file in config["rule_files"]:  # relative to the config file, in the repo and in the container
        assert (DEPLOY / "prometheus" / rule_file).is_file()
        assert str(Path(config_in_container).parent / rule_file) in mounts.values()
    targets = [t for job in config["scrape_configs"] if job["job_name"] == "presso" for s in job["static_configs"]
               for t in s["targets"]]
    assert targets == ["presso:8000"]


def test_kustomization_lists_existing_manifests():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    for resource in kustomization["resources"]:
        assert (K8S / resource).is_file(), resource
    kinds = {kind for kind, _ in k8s_docs()}
    assert {"Deployment", "Service", "PersistentVolumeClaim", "HorizontalPodAutoscaler"} <= kinds


def test_deployment_probes_volumes_and_flags():
    from presso.server.cli import build_parser

    docs = k8s_docs()
    key = ("Deployment", "presso")
    pod = docs[key]["spec"]["template"]
    assert docs[key]["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    container = pod["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        http = container[probe]["httpGet"]
        assert http["path"] == "/health" and http["port"] in ports, probe
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(ports["http"])
    build_parser().parse_args(serve_argv(container["args"]))
    assert pod["spec"]["initContainers"][0]["args"] == ["compress-once"]
    claims = {v["persistentVolumeClaim"]["claimName"] for v in pod["spec"]["volumes"]}
    assert claims <= {name for kind, name in docs if kind == "PersistentVolumeClaim"}
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["terminationGracePeriodSeconds"] > 30  # longer than presso's drain timeout


def test_service_and_hpa_target_the_deployment():
    docs = k8s_docs()
    deployment = docs[("Deployment", "presso")]
    service = docs[("Service", "presso")]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    container_ports = {p["name"] for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= container_ports
    hpa = docs[("HorizontalPodAutoscaler", "presso")]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "presso" and hpa["spec"]["scaleTargetRef"]["kind"] == "Deployment"
    metric = hpa["spec"]["metrics"][0]["pods"]["metric"]["name"]
    adapter = yaml.safe_load((K8S / "prometheus-adapter-rules.yaml").read_text())
    assert any(rule["name"]["as"] == metric for rule in adapter["rules"]["custom"])
    source = (DEPLOY.parent / "server/metrics/collectors.py").read_text()
    assert f'"{metric}"' in source, f"presso does not export {metric}"
