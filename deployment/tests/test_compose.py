"""docker-compose.yml: valid against the Compose specification, and wired as documented."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from deployment_helpers import REPO_ROOT, run_tool, tool

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return loaded


def test_compose_file_matches_the_compose_specification() -> None:
    result = run_tool(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE)]
    )
    assert "ok" in result.stdout


def test_plain_up_starts_only_the_api_and_its_database_on_port_8000_with_the_storage_volume(
    compose: dict[str, Any],
) -> None:
    always_on = [name for name, svc in compose["services"].items() if not svc.get("profiles")]
    assert always_on == ["api", "postgres"]
    api = compose["services"]["api"]
    assert api["ports"] == ["${MUSHROOM_HTTP_PORT:-8000}:8000"]
    assert "mushroom-data:/data" in api["volumes"]
    assert api["environment"]["MUSHROOM_STORAGE_URI"] == "${MUSHROOM_STORAGE_URI:-/data}"
    assert "mushroom-data" in compose["volumes"]
    assert api["healthcheck"]["test"][0] == "CMD"


@pytest.mark.parametrize(
    ("service", "profile"),
    [("collector", "collector"), ("trainer", "trainer"), ("pipeline", "pipeline")],
)
def test_batch_services_share_the_api_volume_behind_a_profile(
    compose: dict[str, Any], service: str, profile: str
) -> None:
    svc = compose["services"][service]
    assert svc["profiles"] == [profile]
    assert "mushroom-data:/data" in svc["volumes"]
    assert svc["environment"]["MUSHROOM_STORAGE_URI"] == "${MUSHROOM_STORAGE_URI:-/data}"


@pytest.mark.parametrize("service", ["api", "collector", "trainer", "pipeline"])
def test_every_service_waits_for_and_uses_the_one_postgres(
    compose: dict[str, Any], service: str
) -> None:
    svc = compose["services"][service]
    assert svc["depends_on"]["postgres"]["condition"] == "service_healthy"
    url = svc["environment"]["MUSHROOM_DATABASE_URL"]
    assert url.startswith("${MUSHROOM_DATABASE_URL:-postgresql://mushroom:")
    assert "@postgres:5432/mushroom}" in url
    postgres = compose["services"]["postgres"]
    assert postgres["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    assert "postgres-data:/var/lib/postgresql/data" in postgres["volumes"]


@pytest.mark.parametrize(("service", "profile"), [("gcs-emulator", "gcs"), ("mlflow", "mlflow")])
def test_optional_services_stay_off_by_default(
    compose: dict[str, Any], service: str, profile: str
) -> None:
    assert compose["services"][service]["profiles"] == [profile]


def test_every_build_points_at_an_existing_dockerfile(compose: dict[str, Any]) -> None:
    builds = [svc["build"] for svc in compose["services"].values() if "build" in svc]
    # Only the database runs an upstream image, pinned to the major version the tests use.
    assert [name for name, svc in compose["services"].items() if "build" not in svc] == ["postgres"]
    assert compose["services"]["postgres"]["image"] == "postgres:15-bookworm"
    for build in builds:
        context = REPO_ROOT / build["context"]
        assert (context / build.get("dockerfile", "Dockerfile")).is_file(), build


def test_services_built_from_one_dockerfile_share_one_image_name(compose: dict[str, Any]) -> None:
    images: dict[str, set[str]] = {}
    for svc in compose["services"].values():
        if "build" not in svc:
            continue
        key = f"{svc['build']['context']}/{svc['build'].get('dockerfile', 'Dockerfile')}"
        images.setdefault(key, set()).add(svc["image"])
    assert all(len(names) == 1 for names in images.values()), images


def test_the_pipeline_reaches_the_api_by_its_service_name(compose: dict[str, Any]) -> None:
    env = compose["services"]["pipeline"]["environment"]
    assert env["PIPELINE_API_URL"] == "${PIPELINE_API_URL:-http://api:8000}"
