"""The playbooks run for real against stand-ins for `gcloud` (keeps state) and for the
cluster side of `kubectl`: provisioning creates every resource and binding with the right flags
and a second run changes nothing; deploying creates the namespace and the Secret, then applies
the site kustomization."""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from deployment_helpers import ANSIBLE, kustomize_command, run_tool, tool

FAKES = Path(__file__).parent / "fakes"
FAKE_GCLOUD = FAKES / "gcloud"
PROJECT = "mushroom-test-123"
DB_PASSWORD = "db-password-for-the-test-4711"


def _run(
    playbook: str, tmp_path: Path, *extra: str, env: dict[str, str] | None = None
) -> tuple[list[list[str]], str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    shutil.copy(FAKE_GCLOUD, bin_dir / "gcloud")
    log = tmp_path / "calls.jsonl"
    log.unlink(missing_ok=True)
    result = run_tool(
        [tool("ansible-playbook"), "--inventory", "inventory/dev", playbook, *extra],
        cwd=ANSIBLE,
        env={
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "GCP_PROJECT_ID": PROJECT,
            "FAKE_GCLOUD_STATE": str(tmp_path / "state.json"),
            "FAKE_GCLOUD_LOG": str(log),
            "ANSIBLE_LOCAL_TEMP": str(tmp_path / ".ansible-tmp"),
            "ANSIBLE_PIPELINING": "True",
            **(env or {}),
        },
        timeout=180,
    )
    calls = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    return calls, result.stdout


def _find(calls: list[list[str]], *words: str) -> list[list[str]]:
    return [call for call in calls if all(word in call for word in words)]


@pytest.fixture(scope="module")
def first_and_second_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[list[list[str]], list[list[str]], str]:
    tmp_path = tmp_path_factory.mktemp("provision")
    env = {"MUSHROOM_DB_PASSWORD": DB_PASSWORD}
    first, _ = _run("playbooks/provision.yml", tmp_path, env=env)
    second, second_output = _run("playbooks/provision.yml", tmp_path, env=env)
    return first, second, second_output


def test_first_run_creates_cloud_sql_without_a_password_on_any_command_line(
    first_and_second_run: tuple[list[list[str]], list[list[str]], str],
) -> None:
    first, _, _ = first_and_second_run
    (instance,) = _find(first, "sql", "instances", "create")
    assert "--database-version=POSTGRES_15" in instance
    assert "--no-assign-ip" in instance, "private IP only: pods use the Auth Proxy"
    assert _find(first, "sql", "databases", "create", "mushroom")
    (user,) = _find(first, "sql", "users", "create", "mushroom")
    assert "--prompt-for-password" in user
    assert not [call for call in first if any(DB_PASSWORD in arg for arg in call)]
    assert first.index(instance) < first.index(user)
    bindings = _find(first, "add-iam-policy-binding", "--role=roles/cloudsql.client")
    assert {o for c in bindings for o in c if o.startswith("--member=")} == {
        f"--member=serviceAccount:mushroom-{who}-dev@{PROJECT}.iam.gserviceaccount.com"
        for who in ("api", "jobs")
    }


def test_first_run_creates_the_cluster_with_workload_identity(
    first_and_second_run: tuple[list[list[str]], list[list[str]], str],
) -> None:
    first, _, _ = first_and_second_run
    (cluster,) = _find(first, "clusters", "create")
    assert "mushroom-dev" in cluster
    assert f"--workload-pool={PROJECT}.svc.id.goog" in cluster
    assert "--workload-metadata=GKE_METADATA" in cluster
    assert f"--service-account=mushroom-nodes-dev@{PROJECT}.iam.gserviceaccount.com" in cluster
    assert "--zone=europe-west1-b" in cluster
    (pool,) = _find(first, "node-pools", "create")
    assert "--node-taints=mushroom-id/pool=training:NoSchedule" in pool


def test_first_run_creates_the_bucket_registry_and_service_accounts(
    first_and_second_run: tuple[list[list[str]], list[list[str]], str],
) -> None:
    first, _, _ = first_and_second_run
    (bucket,) = _find(first, "buckets", "create")
    assert f"gs://{PROJECT}-mushroom-dev" in bucket
    assert "--uniform-bucket-level-access" in bucket
    assert _find(first, "buckets", "update", "--versioning")
    (registry,) = _find(first, "repositories", "create")
    assert "--repository-format=docker" in registry
    accounts = {call[3] for call in _find(first, "service-accounts", "create")}
    assert accounts == {"mushroom-api-dev", "mushroom-jobs-dev", "mushroom-nodes-dev"}
    assert not [call for call in first if "keys" in call], "no service account key is ever made"


def test_first_run_binds_least_privilege_roles_and_workload_identity(
    first_and_second_run: tuple[list[list[str]], list[list[str]], str],
) -> None:
    first, _, _ = first_and_second_run
    bindings = _find(first, "add-iam-policy-binding")
    granted = {
        (call[call.index("add-iam-policy-binding") - 1], option.split("=", 1)[1])
        for call in bindings
        for option in call
        if option.startswith("--role=")
    }
    bucket = f"gs://{PROJECT}-mushroom-dev"
    assert (bucket, "roles/storage.objectViewer") in granted
    assert (bucket, "roles/storage.objectUser") in granted
    assert (PROJECT, "roles/artifactregistry.reader") in granted
    feedback_only = [c for c in bindings if any(o.startswith("--condition=expression=") for o in c)]
    (api_write,) = feedback_only
    assert (
        f"--member=serviceAccount:mushroom-api-dev@{PROJECT}.iam.gserviceaccount.com" in api_write
    )
    assert any("objects/data/feedback/" in o for o in api_write)
    members = {o for call in bindings for o in call if o.startswith("--member=")}
    for ksa in ("mushroom-api", "mushroom-jobs"):
        assert f"--member=serviceAccount:{PROJECT}.svc.id.goog[mushroom-dev/{ksa}]" in members
    # The Workload Identity bindings need the cluster's pool: they come after the cluster.
    cluster_at = first.index(_find(first, "clusters", "create")[0])
    wi_at = min(i for i, c in enumerate(first) if any(".svc.id.goog[" in o for o in c))
    assert wi_at > cluster_at


def test_second_run_changes_nothing(
    first_and_second_run: tuple[list[list[str]], list[list[str]], str],
) -> None:
    _, second, output = first_and_second_run
    assert not [c for c in second if {"create", "add-iam-policy-binding"} & set(c)]
    recap = output[output.index("PLAY RECAP") :]
    assert "changed=0" in recap, recap


def test_deploy_creates_the_namespace_and_secret_then_applies_the_site_layer(
    tmp_path: Path,
) -> None:
    real_kubectl = kustomize_command()[0]
    if real_kubectl != "kubectl":
        pytest.skip("the deploy role renders with kubectl")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shutil.copy(FAKES / "kubectl", bin_dir / "kubectl")
    kubectl_log = tmp_path / "kubectl.jsonl"
    build_dir = tmp_path / "build"
    _run(
        "playbooks/deploy.yml",
        tmp_path,
        "--extra-vars",
        f"image_tag=abc123 build_dir={build_dir}",
        env={
            "REAL_KUBECTL": str(shutil.which("kubectl")),
            "FAKE_KUBECTL_LOG": str(kubectl_log),
            "MUSHROOM_API_ADMIN_TOKEN": "a-real-secret-token-for-the-test",
            "MUSHROOM_DOMAIN": "dev.mushroom.test",
            "MUSHROOM_DB_PASSWORD": DB_PASSWORD,
        },
    )
    calls: list[dict[str, Any]] = [
        json.loads(line) for line in kubectl_log.read_text(encoding="utf-8").splitlines()
    ]
    namespace, secret, db_secret, apply, rollout = calls
    assert "kind: Secret" in db_secret["stdin"]
    assert "name: mushroom-db" in db_secret["stdin"]
    url = f"postgresql://mushroom:{DB_PASSWORD}@127.0.0.1:5432/mushroom"
    assert f"MUSHROOM_DATABASE_URL: {base64.b64encode(url.encode()).decode()}" in db_secret["stdin"]
    assert not [c for c in calls if any(DB_PASSWORD in arg for arg in c["args"])]
    assert "kind: Namespace" in namespace["stdin"]
    assert "name: mushroom-dev" in namespace["stdin"]
    admin_secret = yaml.safe_load(secret["stdin"])  # JSON or YAML: both parse
    assert admin_secret["kind"] == "Secret"
    token = base64.b64encode(b"a-real-secret-token-for-the-test").decode()
    assert admin_secret["data"]["API_ADMIN_TOKEN"] == token
    assert apply["args"] == ["apply", f"--kustomize={build_dir}/app"]
    assert rollout["args"][:2] == ["rollout", "status"]
    assert "--namespace=mushroom-dev" in rollout["args"]
    site = (build_dir / "app/kustomization.yaml").read_text(encoding="utf-8")
    assert f"europe-west1-docker.pkg.dev/{PROJECT}/mushroom/mushroom-api" in site
    assert "dev.mushroom.test" in site
    assert f"CLOUD_SQL_INSTANCE={PROJECT}:europe-west1:mushroom-dev" in site
