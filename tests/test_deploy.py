"""docker-compose.yml deploys: pinned images, healthchecks, start order on health, drivers
in the MLflow image, and the databases README tells Heimdall to use."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
REQUIRED = {"postgres", "redis", "minio", "mlflow", "api", "worker"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _database(url: str) -> str:
    return urlparse(url.replace("postgresql+psycopg", "postgresql")).path.lstrip("/")


def _readme_env(name: str) -> str:
    found = re.search(rf"^export {name}=(\S+)", (ROOT / "README.md").read_text(), flags=re.M)
    assert found, f"README.md does not set {name}"
    return found.group(1)


def test_every_service_is_pinned_and_healthchecked(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert REQUIRED <= set(services), sorted(REQUIRED - set(services))
    for name, service in services.items():
        image = service.get("image", "")
        assert "build" in service or re.search(r":[\w.-]+$", image), f"{name}: no build and no image tag"
        assert not image.endswith(":latest"), f"{name}: image {image} is not pinned"
        test = service.get("healthcheck", {}).get("test")
        assert test and test != ["NONE"], f"{name}: no healthcheck"
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: port {port} open beyond loopback"
    for dockerfile in ("Dockerfile", "Dockerfile.mlflow"):
        base = re.search(r"^FROM (\S+)", (ROOT / dockerfile).read_text(), flags=re.M)
        assert base and re.search(r":\d+\.\d+\.\d+", base.group(1)), f"{dockerfile}: base image not pinned"


def test_services_start_after_their_dependencies_are_healthy(compose: dict[str, Any]) -> None:
    services = compose["services"]
    expected = {
        "mlflow": {"postgres", "minio"},
        "api": {"postgres", "redis", "minio", "mlflow"},
        "worker": {"api", "redis"},
    }
    for name, needs in expected.items():
        depends = services[name]["depends_on"]
        assert isinstance(depends, dict) and needs <= set(depends), f"{name} depends on {depends}"
        for target, rule in depends.items():
            assert rule == {"condition": "service_healthy"}, f"{name} -> {target}: {rule}"
            assert target in services


def test_mlflow_image_has_its_drivers(compose: dict[str, Any]) -> None:
    mlflow = compose["services"]["mlflow"]
    assert mlflow["build"]["dockerfile"] == "Dockerfile.mlflow"
    dockerfile = (ROOT / "Dockerfile.mlflow").read_text()
    for package in ("mlflow==3.17.2", "psycopg[binary]==", "boto3=="):
        assert package in dockerfile, package
    command = " ".join(mlflow["command"])
    assert "--backend-store-uri=postgresql+psycopg://" in command, "the store URL must name the installed driver"
    assert mlflow["environment"]["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"


def test_heimdall_image_installs_the_production_extras() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in dockerfile
    assert "pip install '.[server,s3,postgres]'" in dockerfile


def test_one_database_per_service_as_readme_says(compose: dict[str, Any]) -> None:
    services = compose["services"]
    api_env = services["api"]["environment"]
    assert services["worker"]["environment"] == api_env
    heimdall_db = _database(_readme_env("HEIMDALL_DATABASE_URL"))
    mlflow_db = _database(_readme_env("HEIMDALL_MLFLOW_TRACKING_URI"))
    assert heimdall_db != mlflow_db
    assert _database(api_env["HEIMDALL_DATABASE_URL"]) == heimdall_db == services["postgres"]["environment"]["POSTGRES_DB"]
    assert _database(api_env["HEIMDALL_MLFLOW_TRACKING_URI"]) == mlflow_db
    command = " ".join(services["mlflow"]["command"])
    store = re.search(r"--backend-store-uri=(\S+)", command)
    assert store and _database(store.group(1)) == mlflow_db, "the MLflow server and Heimdall share MLflow's database"
    init_scripts = [v.split(":")[0] for v in services["postgres"]["volumes"] if "docker-entrypoint-initdb.d" in v]
    assert init_scripts, "nothing creates the MLflow database"
    sql = (ROOT / init_scripts[0]).read_text()
    assert re.search(rf"CREATE DATABASE {mlflow_db}\b", sql)
    bucket = re.search(r"--default-artifact-root=s3://(\S+)", command)
    assert bucket and bucket.group(1) == f"{api_env['HEIMDALL_S3_BUCKET_PREFIX']}-mlflow"


def _docker_compose() -> list[str] | None:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return ["docker", "compose"]
    return ["docker-compose"] if shutil.which("docker-compose") else None


def test_docker_compose_accepts_the_file() -> None:
    command = _docker_compose()
    if command is None:
        pytest.skip("neither docker compose nor docker-compose is installed (bash scripts/test-tools.sh, run by make test, installs it)")
    env = dict(os.environ, HEIMDALL_API_TOKEN="test-token")
    done = subprocess.run([*command, "-f", str(ROOT / "docker-compose.yml"), "config", "--quiet"], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
