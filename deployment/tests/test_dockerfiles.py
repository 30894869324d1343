"""The service Dockerfiles: hadolint-clean, pinned, multi-stage, non-root, with a health check."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path

import pytest
from deployment_helpers import DEPLOYMENT, REPO_ROOT, run_tool, tool

# Dockerfile -> the workspace package its `uv sync --package` installs.
SERVICE_DOCKERFILES = {
    "api-service/Dockerfile": "mushroom-api",
    "data-collector/Dockerfile": "mushroom-collector",
    # The training image also runs the pipeline (drift CronJob, `mushroom-pipeline run`).
    "model-training/Dockerfile": "mushroom-pipeline",
}
ALL_DOCKERFILES = [*SERVICE_DOCKERFILES, "deployment/gcs-emulator/Dockerfile"]
EXACT_TAGS = {
    "python": re.compile(r"^python:3\.11\.\d+-slim-bookworm$"),
    "node": re.compile(r"^node:20\.\d+\.\d+-bookworm-slim$"),
    "ghcr.io/astral-sh/uv": re.compile(r"^ghcr\.io/astral-sh/uv:\d+\.\d+\.\d+$"),
}


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    pairs = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        keyword, _, rest = stripped.partition(" ")
        pairs.append((keyword.upper(), " ".join(rest.split())))
    return pairs


def base_images(path: Path) -> list[str]:
    """Every base image, with ARG defaults substituted."""
    steps = instructions(path)
    defaults = dict(arg.split("=", 1) for kw, arg in steps if kw == "ARG" and "=" in arg)
    images = []
    for kw, arg in steps:
        if kw == "FROM":
            image = arg.split()[0]
            image = re.sub(r"\$\{(\w+)\}", lambda m: defaults.get(m.group(1), m.group(0)), image)
            images.append(image)
    return images


@pytest.mark.parametrize("dockerfile", ALL_DOCKERFILES)
def test_hadolint_passes(dockerfile: str) -> None:
    run_tool([tool("hadolint"), "--no-color", str(REPO_ROOT / dockerfile)])


@pytest.mark.parametrize("dockerfile", ALL_DOCKERFILES)
def test_base_images_are_pinned_to_exact_versions(dockerfile: str) -> None:
    stage_names = {
        arg.split()[-1]
        for kw, arg in instructions(REPO_ROOT / dockerfile)
        if kw == "FROM" and " AS " in arg.upper()
    }
    for image in base_images(REPO_ROOT / dockerfile):
        if image in stage_names:
            continue
        repository = image.rsplit(":", 1)[0]
        assert repository in EXACT_TAGS, f"unexpected base image {image}"
        assert EXACT_TAGS[repository].match(image), f"{image} is not an exact version"


def stages(path: Path) -> list[list[tuple[str, str]]]:
    """The instructions of each build stage (from its FROM to the next)."""
    result: list[list[tuple[str, str]]] = []
    for kw, arg in instructions(path):
        if kw == "FROM":
            result.append([])
        if result:
            result[-1].append((kw, arg))
    return result


@pytest.mark.parametrize(("dockerfile", "package"), SERVICE_DOCKERFILES.items())
def test_service_images_are_multi_stage_frozen_uv_builds(dockerfile: str, package: str) -> None:
    all_stages = stages(REPO_ROOT / dockerfile)
    assert len(all_stages) >= 3
    (steps,) = [s for s in all_stages if any("uv sync" in arg for _, arg in s)]
    syncs = [arg for kw, arg in steps if kw == "RUN" and "uv sync" in arg]
    assert len(syncs) == 2, "one sync for the dependencies, one for the workspace packages"
    for sync in syncs:
        commands = [c for c in sync.split("&&") if "uv sync" in c]
        assert all("--frozen" in c and "--no-dev" in c for c in commands)
        # The first sync of each RUN installs exactly the image's package; later ones add extras.
        assert f"--package {package}" in commands[0]
        assert all("--inexact" in c for c in commands[1:])
    assert "--no-install-workspace" in syncs[0]
    assert "--no-install-workspace" not in syncs[1]
    # Dependency layer first: the lock and pyproject files are copied before any source folder.
    copies = [arg for kw, arg in steps if kw == "COPY" and "--from=" not in arg]
    first_source = next(i for i, arg in enumerate(copies) if arg.split()[0].endswith("/"))
    assert any("uv.lock" in arg for arg in copies[:first_source])
    assert all("pyproject.toml" in arg or "uv.lock" in arg for arg in copies[:first_source])


@pytest.mark.parametrize("dockerfile", ALL_DOCKERFILES)
def test_images_run_as_a_non_root_user_with_a_health_check(dockerfile: str) -> None:
    steps = instructions(REPO_ROOT / dockerfile)
    users = [arg for kw, arg in steps if kw == "USER"]
    assert users, "no USER instruction"
    assert users[-1].split(":")[0] not in {"root", "0"}
    assert any(kw == "HEALTHCHECK" and arg.startswith("--") for kw, arg in steps)


def _ignored(source: str, patterns: set[str]) -> bool:
    """Whether .dockerignore drops `source` or a folder above it (Go filepath.Match subset)."""
    parts = source.rstrip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        bare = pattern.removeprefix("**/")
        for prefix in prefixes:
            candidates = [prefix] + ([prefix.split("/")[-1]] if bare != pattern else [])
            if any(fnmatch.fnmatchcase(c, bare) for c in candidates):
                return True
    return False


@pytest.mark.parametrize("dockerfile", ALL_DOCKERFILES)
def test_every_copied_path_exists_and_is_sent_to_the_build(dockerfile: str) -> None:
    path = REPO_ROOT / dockerfile
    context = path.parent if dockerfile.startswith("deployment/") else REPO_ROOT
    ignored = {
        line.strip()
        for line in (REPO_ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    for kw, arg in instructions(path):
        if kw != "COPY" or "--from=" in arg:
            continue
        *sources, _destination = arg.split()
        for source in sources:
            assert (context / source).exists(), f"{dockerfile}: COPY {source} does not exist"
            if context == REPO_ROOT:
                assert not _ignored(source, ignored), f"{dockerfile}: {source} is .dockerignored"


def test_api_image_serves_the_built_frontend_and_the_demo_model() -> None:
    steps = instructions(REPO_ROOT / "api-service/Dockerfile")
    runs = " ".join(arg for kw, arg in steps if kw == "RUN")
    assert "npm ci" in runs
    assert "npm run build" in runs
    env = " ".join(arg for kw, arg in steps if kw == "ENV")
    frontend_dir = re.search(r"API_FRONTEND_DIR=(\S+)", env)
    demo_dir = re.search(r"API_FALLBACK_BUNDLE_DIR=(\S+)", env)
    assert frontend_dir is not None
    assert demo_dir is not None
    copies = [arg for kw, arg in steps if kw == "COPY"]
    assert f"--from=frontend /src/frontend-react/dist {frontend_dir.group(1)}" in copies
    assert f"models/demo/ {demo_dir.group(1)}/" in copies
    assert 'CMD ["--host", "0.0.0.0", "--port", "8000"]' in {f"{kw} {arg}" for kw, arg in steps}


def _locked_closure(package: str) -> set[str]:
    """Names of every locked distribution `package` needs at run time (no dev; the extras its
    dependencies ask for, e.g. `mushroom-common[runtime]`, included)."""
    lock = tomllib.loads((REPO_ROOT / "uv.lock").read_text(encoding="utf-8"))
    by_name = {p["name"]: p for p in lock["package"]}
    seen: set[tuple[str, str]] = set()
    todo: list[tuple[str, str]] = [(package, "")]
    while todo:
        name, extra = todo.pop()
        if (name, extra) in seen:
            continue
        seen.add((name, extra))
        entry = by_name[name]
        deps = entry.get("optional-dependencies", {}).get(extra, []) if extra else []
        deps = deps or ([] if extra else entry.get("dependencies", []))
        for dep in deps:
            todo.append((dep["name"], ""))
            todo.extend((dep["name"], wanted) for wanted in dep.get("extra", []))
    return {name for name, _ in seen}


def test_api_image_carries_no_tensorflow() -> None:
    closure = _locked_closure("mushroom-api")
    assert "ai-edge-litert" in closure
    assert not {n for n in closure if n.startswith(("tensorflow", "keras", "tf-"))}


def test_training_image_carries_tensorflow_and_the_pipeline() -> None:
    closure = _locked_closure("mushroom-pipeline")
    assert {"tensorflow", "mushroom-training", "mushroom-collector"} <= closure


def test_gcs_emulator_image_pins_the_locked_emulator_version() -> None:
    lock = tomllib.loads((REPO_ROOT / "uv.lock").read_text(encoding="utf-8"))
    (locked,) = [p["version"] for p in lock["package"] if p["name"] == "gcp-storage-emulator"]
    dockerfile = (DEPLOYMENT / "gcs-emulator/Dockerfile").read_text(encoding="utf-8")
    assert f"ARG EMULATOR_VERSION={locked}" in dockerfile
