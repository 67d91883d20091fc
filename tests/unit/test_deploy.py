"""deploy/: the Dockerfile, compose file and Kubernetes manifests name only commands,
settings and routes that exist. No Docker engine or cluster here: this checks what can
drift from the code (a renamed setting or command), not that the images build."""

import json
import re
from pathlib import Path

import pytest
import typer
import yaml

from service.settings import Settings

DEPLOY = Path(__file__).parents[2] / "deploy"
SETTINGS = {f"SANITAS_{name.upper()}" for name in Settings.model_fields}


def _runs(command: list[str]) -> bool:
    """True when ``command`` (``sanitas ...``) names a real CLI command."""
    from service.cli import app

    assert command[0] == "sanitas", command
    node = typer.main.get_command(app)
    for word in command[1:]:
        if word.startswith("-"):
            break
        node = node.commands[word]  # type: ignore[attr-defined]
    return not hasattr(node, "commands")  # a command, not a bare group


def _routes() -> set[str]:
    from service.api import system

    return {route.path for route in system.router.routes}


def test_compose_services_use_real_commands_and_settings():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"api", "worker", "scheduler", "migrate", "postgres", "redis", "minio"} <= set(services)
    for name in ("api", "worker", "scheduler", "migrate"):
        service = services[name]
        assert _runs(service["command"]), name
        assert set(service["environment"]) <= SETTINGS, name
        assert {"SANITAS_DATABASE_URL", "SANITAS_BROKER_URL", "SANITAS_ENCRYPTION_KEY",
                "SANITAS_STORAGE_URL"} <= set(service["environment"])  # fmt: skip
        options = json.loads(service["environment"]["SANITAS_STORAGE_OPTIONS"])
        assert options["endpoint_url"] == "http://minio:9000"


def test_kubernetes_objects_use_real_commands_settings_and_routes():
    objects = [o for o in yaml.safe_load_all((DEPLOY / "k8s" / "sanitas.yaml").read_text()) if o]
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert {("Deployment", "sanitas-api"), ("Service", "sanitas-api"),
            ("HorizontalPodAutoscaler", "sanitas-api"), ("Deployment", "sanitas-worker"),
            ("Deployment", "sanitas-scheduler"), ("Job", "sanitas-migrate"),
            ("Secret", "sanitas")} <= kinds  # fmt: skip
    secret = next(o for o in objects if o["kind"] == "Secret")
    assert set(secret["stringData"]) <= SETTINGS
    for obj in objects:
        if obj["kind"] not in ("Deployment", "Job"):
            continue
        pod = obj["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["containers"]:
            assert _runs(container["command"]), obj["metadata"]["name"]
            assert {e["name"] for e in container.get("env", [])} <= SETTINGS
    api = next(
        o for o in objects if o["metadata"]["name"] == "sanitas-api" and o["kind"] == "Deployment"
    )
    probes = api["spec"]["template"]["spec"]["containers"][0]
    assert {probes["readinessProbe"]["httpGet"]["path"],
            probes["livenessProbe"]["httpGet"]["path"]} <= _routes()  # fmt: skip
    worker = next(o for o in objects if o["metadata"]["name"] == "sanitas-worker")
    limits = worker["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == 1


def test_kubernetes_manifests_pass_the_kubernetes_schemas_strictly():
    """Every object against the API schemas of Kubernetes 1.30 (the oldest supported
    release with the HPA v2 and every field used) and the validator's latest, rejecting
    unknown fields: a misspelt key is an error, not silently ignored by a cluster."""
    import kubernetes_validate

    objects = [o for o in yaml.safe_load_all((DEPLOY / "k8s" / "sanitas.yaml").read_text()) if o]
    for version in ("1.30.0", kubernetes_validate.latest_version()):
        for obj in objects:
            kubernetes_validate.validate(obj, version, strict=True)
    broken = next(o for o in objects if o["kind"] == "Deployment")
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.30.0", strict=True)


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return (DEPLOY / "Dockerfile").read_text()


def test_dockerfile_runs_as_a_user_checks_health_and_installs_cpu_torch_first(dockerfile):
    users = re.findall(r"^USER\s+(\S+)", dockerfile, flags=re.M)
    assert users and users[-1] not in ("root", "0")
    health = re.search(r"HEALTHCHECK.*?'http://127\.0\.0\.1:8000(/\w+)'", dockerfile, re.S)
    assert health and health.group(1) in _routes()
    install = "pip install --no-cache-dir '.[s3]'"
    assert dockerfile.index("torch==2.13.0") < dockerfile.index(install)
    command = re.search(r"^CMD\s+(\[.*\])", dockerfile, flags=re.M)
    assert command and _runs(yaml.safe_load(command.group(1)))


def test_cuda_image_is_a_non_root_gpu_worker_with_the_pinned_cuda_torch():
    cuda = (DEPLOY / "Dockerfile.cuda").read_text()
    users = re.findall(r"^USER\s+(\S+)", cuda, flags=re.M)
    assert users and users[-1] not in ("root", "0")
    assert re.search(r"pip install --no-cache-dir torch==2\.13\.0\s*$", cuda, flags=re.M)
    assert "whl/cpu" not in cuda  # the CUDA build, not the CPU one
    assert cuda.index("torch==2.13.0") < cuda.index("pip install --no-cache-dir '.[s3]'")
    health = re.search(r"HEALTHCHECK.*?CMD (.*)$", cuda, flags=re.M | re.S)
    assert health and "torch.cuda.is_available()" in health.group(1)
    assert "SANITAS_BROKER_URL" in health.group(1) and "SANITAS_BROKER_URL" in SETTINGS
    command = re.search(r"^CMD\s+(\[.*\])", cuda, flags=re.M)
    assert command and yaml.safe_load(command.group(1))[:2] == ["sanitas", "worker"]
    assert _runs(yaml.safe_load(command.group(1)))
