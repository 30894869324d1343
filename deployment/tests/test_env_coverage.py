"""Every environment variable the services read is documented in .env.example, set in
docker-compose.yml for the services that read it, and set in the API's ConfigMap (or its Secret);
and nothing stale is set that no service reads any more."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from deployment_helpers import K8S, REPO_ROOT, one, render_kustomization
from envvars import PACKAGES, PLATFORM_VARIABLES, SERVICE_PACKAGES, EnvVar, discover, for_service

SETTING_PREFIXES = ("MUSHROOM_", "API_", "COLLECTOR_", "TRAIN_", "PIPELINE_")
# Set by docker-compose.yml or .env.example for docker compose itself, not for a service.
COMPOSE_ONLY = {
    "MUSHROOM_HTTP_PORT",
    "MUSHROOM_IMAGE_TAG",
    "MUSHROOM_IMPORT_DIR",
    "MLFLOW_PORT",
    "GCS_EMULATOR_PORT",
    "GCS_EMULATOR_BUCKET",
    "MUSHROOM_POSTGRES_PASSWORD",
}


@pytest.fixture(scope="module")
def variables() -> list[EnvVar]:
    found = discover()
    assert {v.package for v in found} >= {"mushroom_common", "mushroom_api"}
    return found


@pytest.fixture(scope="module")
def compose_env() -> dict[str, dict[str, Any]]:
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    return {name: svc.get("environment", {}) for name, svc in compose["services"].items()}


@pytest.fixture(scope="module")
def api_manifests() -> dict[str, list[dict[str, Any]]]:
    return {
        name: render_kustomization(K8S / name) for name in ("base", "overlays/dev", "overlays/prod")
    }


def _missing(variables: list[EnvVar], present: set[str]) -> list[str]:
    """Names of the variables none of whose aliases is in `present`."""
    return sorted(v.name for v in variables if not set(v.names) & present)


def test_env_example_documents_every_variable(variables: list[EnvVar]) -> None:
    text = (REPO_ROOT / ".env.example").read_text(encoding="utf-8")
    documented = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))
    wanted = [v for v in variables if v.name not in PLATFORM_VARIABLES]
    missing = _missing(wanted, documented)
    assert missing == [], "run deployment/scripts/render_env_example.py"


@pytest.mark.parametrize("service", sorted(SERVICE_PACKAGES))
def test_compose_sets_every_variable_its_service_reads(
    variables: list[EnvVar], compose_env: dict[str, dict[str, Any]], service: str
) -> None:
    missing = _missing(for_service(variables, service), set(compose_env[service]))
    assert missing == [], f"docker-compose.yml service {service} lacks these"


def test_compose_sets_no_stale_setting(
    variables: list[EnvVar], compose_env: dict[str, dict[str, Any]]
) -> None:
    known = {name for v in variables for name in v.names} | COMPOSE_ONLY | {"MPLCONFIGDIR"}
    for service, env in compose_env.items():
        if service not in SERVICE_PACKAGES:
            continue
        stale = {k for k in env if k.startswith(SETTING_PREFIXES) and k not in known}
        assert not stale, f"{service} sets settings nobody reads: {sorted(stale)}"


@pytest.mark.parametrize("name", ["base", "overlays/dev", "overlays/prod"])
def test_api_configmap_sets_every_api_variable(
    variables: list[EnvVar], api_manifests: dict[str, list[dict[str, Any]]], name: str
) -> None:
    docs = api_manifests[name]
    data = one(docs, "ConfigMap", "mushroom-api-config")["data"]
    container = one(docs, "Deployment", "mushroom-api")["spec"]["template"]["spec"]["containers"][0]
    secret_refs = {
        e["name"] for e in container.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})
    }
    # A ConfigMap cannot hold "none": such settings are listed as deliberately unset instead.
    unset = set(
        re.findall(
            r"^# ([A-Z][A-Z0-9_]*)=", (K8S / "base/api.env").read_text(encoding="utf-8"), re.M
        )
    )
    api_vars = for_service(variables, "api")
    secrets = [v for v in api_vars if v.is_secret]
    plain = [v for v in api_vars if not v.is_secret]
    assert _missing(secrets, secret_refs) == [], "secrets must come from a Secret"
    assert not set(data) & {n for v in secrets for n in v.names}, "a secret is in the ConfigMap"
    assert _missing(plain, set(data) | unset) == [], "set these in base/api.env"
    for var in plain:
        if not set(var.names) & set(data):
            assert var.unset_by_default or not var.from_settings, (
                f"{var.name} has a default other than None: set it in the ConfigMap"
            )


def test_api_configmap_sets_no_stale_setting(
    variables: list[EnvVar], api_manifests: dict[str, list[dict[str, Any]]]
) -> None:
    known = {name for v in for_service(variables, "api") for name in v.names}
    data = one(api_manifests["base"], "ConfigMap", "mushroom-api-config")["data"]
    assert not set(data) - known, f"nobody reads {sorted(set(data) - known)}"


def test_jobs_configmap_points_the_jobs_at_the_bucket(
    variables: list[EnvVar], api_manifests: dict[str, list[dict[str, Any]]]
) -> None:
    data = one(api_manifests["base"], "ConfigMap", "mushroom-jobs-config")["data"]
    assert data["MUSHROOM_STORAGE_URI"].startswith("gs://")
    batch = {
        n
        for s in ("collector", "trainer", "pipeline")
        for v in for_service(variables, s)
        for n in v.names
    }
    stale = {k for k in data if k.startswith(SETTING_PREFIXES) and k not in batch}
    assert not stale, f"nobody reads {sorted(stale)}"


def test_discovery_walks_every_service_package() -> None:
    assert all(path.is_dir() for path in PACKAGES.values())
