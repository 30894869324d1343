"""The Ansible provisioning and deployment: ansible-lint (production profile, offline) and a
syntax check of every playbook against both inventories."""

from __future__ import annotations

import pytest
from deployment_helpers import ANSIBLE, run_tool, tool

PLAYBOOKS = sorted(p.name for p in (ANSIBLE / "playbooks").glob("*.yml"))


def test_ansible_lint_passes_the_production_profile() -> None:
    result = run_tool([tool("ansible-lint"), "--offline", "--nocolor"], cwd=ANSIBLE, timeout=300)
    assert "production" in result.stdout + result.stderr


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_every_playbook_parses_with_the_inventory(env: str) -> None:
    run_tool(
        [
            tool("ansible-playbook"),
            "--syntax-check",
            "--inventory",
            f"inventory/{env}",
            *[f"playbooks/{name}" for name in PLAYBOOKS],
        ],
        cwd=ANSIBLE,
        env={"GCP_PROJECT_ID": "mushroom-test-123"},
    )


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_inventory_defines_what_the_roles_need(env: str) -> None:
    result = run_tool(
        [tool("ansible-inventory"), "--inventory", f"inventory/{env}", "--host", "localhost"],
        cwd=ANSIBLE,
        env={"GCP_PROJECT_ID": "mushroom-test-123"},
    )
    needed = {
        "mushroom_env",
        "gcp_project_id",
        "gcp_region",
        "gke_location",
        "gke_cluster_name",
        "k8s_namespace",
        "gcs_bucket",
        "artifact_repository",
        "app_domain",
        "static_ip_name",
        "train_workers",
    }
    missing = {name for name in needed if f'"{name}"' not in result.stdout}
    assert not missing


def test_playbooks_provision_in_dependency_order() -> None:
    provision = (ANSIBLE / "playbooks/provision.yml").read_text(encoding="utf-8")
    order = ["gcp_apis", "artifact_registry", "gcs_bucket", "service_accounts", "gke_cluster"]
    positions = [provision.index(f"- {role}\n") for role in order]
    assert positions == sorted(positions)
    # Workload Identity bindings need the cluster's workload pool: they come after the cluster.
    assert provision.index("workload_identity.yml") > provision.index("- gke_cluster\n")
