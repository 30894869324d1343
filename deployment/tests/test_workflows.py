"""GitHub Actions workflows: valid against the workflow schema, and triggered as documented."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from deployment_helpers import REPO_ROOT, run_tool, tool

WORKFLOWS = REPO_ROOT / ".github/workflows"
EXPECTED = ["ci.yml", "deploy.yml", "images.yml", "train.yml"]


def load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    # YAML 1.1 reads the key `on` as True.
    loaded["on"] = loaded.pop(True, loaded.get("on"))
    return loaded


def steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def test_every_workflow_exists() -> None:
    assert sorted(p.name for p in WORKFLOWS.glob("*.yml")) == EXPECTED


def test_workflows_match_the_github_workflow_schema() -> None:
    files = [str(WORKFLOWS / name) for name in EXPECTED]
    run_tool([tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *files])


@pytest.mark.parametrize("name", EXPECTED)
def test_actions_are_pinned_and_jobs_have_timeouts(name: str) -> None:
    workflow = load(name)
    assert "permissions" in workflow
    for job in workflow["jobs"].values():
        assert job["timeout-minutes"] <= 360
    for step in steps(workflow):
        if "uses" in step:
            action, _, ref = step["uses"].partition("@")
            assert ref.startswith("v"), f"{action} is not pinned to a release"


def test_ci_runs_the_same_command_as_a_developer_on_every_push() -> None:
    workflow = load("ci.yml")
    assert "push" in workflow["on"]
    assert any(step.get("run") == "bash .ci/run" for step in steps(workflow))
    assert (REPO_ROOT / ".ci/run").is_file()


def test_images_are_pushed_only_from_main_after_ci_passed() -> None:
    workflow = load("images.yml")
    trigger = workflow["on"]["workflow_run"]
    assert trigger["workflows"] == ["ci"]
    assert trigger["branches"] == ["main"]
    job = workflow["jobs"]["build-push"]
    assert "conclusion == 'success'" in job["if"]
    dockerfiles = {entry["dockerfile"] for entry in job["strategy"]["matrix"]["include"]}
    assert all((REPO_ROOT / path).is_file() for path in dockerfiles)
    assert len(dockerfiles) == 3
    # Keyless: Workload Identity Federation only.
    assert workflow["permissions"]["id-token"] == "write"
    assert not any("credentials_json" in str(step.get("with", {})) for step in steps(workflow))


def test_deploy_runs_on_tags_with_the_ansible_playbook() -> None:
    workflow = load("deploy.yml")
    assert workflow["on"]["push"]["tags"] == ["v*"]
    commands = " ".join(step.get("run", "") for step in steps(workflow))
    assert "playbooks/deploy.yml" in commands
    assert Path(REPO_ROOT / "deployment/ansible/playbooks/deploy.yml").is_file()


def test_train_workflow_never_forces_a_promotion() -> None:
    workflow = load("train.yml")
    commands = " ".join(step.get("run", "") for step in steps(workflow))
    assert "mushroom-train promote" in commands
    assert "--force" not in commands
    assert "force" not in str(workflow["on"]["workflow_dispatch"]["inputs"])
