"""Kubernetes manifests: every kustomization renders, validates against the Kubernetes schemas
(and the GKE CRDs' and Vertex AI's), and the pieces refer to each other correctly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from deployment_helpers import (
    DEPLOYMENT,
    K8S,
    K8S_VERSIONS,
    SITE_PROJECT,
    SITE_TAG,
    find,
    one,
    render_kustomization,
    render_site,
)

Docs = list[dict[str, Any]]
SCHEMAS = Path(__file__).parent / "schemas"
CRD_SCHEMAS = {
    ("networking.gke.io/v1", "ManagedCertificate"): "managedcertificate.networking.gke.io.v1.json",
    (
        "networking.gke.io/v1beta1",
        "FrontendConfig",
    ): "frontendconfig.networking.gke.io.v1beta1.json",
    ("cloud.google.com/v1", "BackendConfig"): "backendconfig.cloud.google.com.v1.json",
}
APP_KUSTOMIZATIONS = ["base", "overlays/dev", "overlays/prod"]
JOB_KUSTOMIZATIONS = ["jobs", "overlays/dev/jobs", "overlays/prod/jobs"]


@pytest.fixture(scope="module")
def rendered() -> dict[str, Docs]:
    return {
        name: render_kustomization(K8S / name) for name in APP_KUSTOMIZATIONS + JOB_KUSTOMIZATIONS
    }


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Docs]:
    """The deploy role's site kustomizations (real project values) for dev and prod, rendered."""
    out: dict[str, Docs] = {}
    for env in ("dev", "prod"):
        site = render_site(env, tmp_path_factory.mktemp(f"site-{env}"))
        out[f"site-{env}"] = render_kustomization(site / "app")
        out[f"site-{env}-jobs"] = render_kustomization(site / "jobs")
    return out


def validate(doc: dict[str, Any]) -> None:
    key = (doc["apiVersion"], doc["kind"])
    if key in CRD_SCHEMAS:
        schema = json.loads((SCHEMAS / CRD_SCHEMAS[key]).read_text(encoding="utf-8"))
        jsonschema.validate(doc, schema)
        return
    for version in K8S_VERSIONS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} invalid for {version}: {exc}")


@pytest.mark.parametrize("name", APP_KUSTOMIZATIONS + JOB_KUSTOMIZATIONS)
def test_kustomizations_render_valid_resources(rendered: dict[str, Docs], name: str) -> None:
    assert rendered[name]
    for doc in rendered[name]:
        validate(doc)


def test_site_kustomizations_render_valid_resources(sites: dict[str, Docs]) -> None:
    for docs in sites.values():
        for doc in docs:
            validate(doc)


def _api_container(docs: Docs) -> dict[str, Any]:
    container: dict[str, Any] = one(docs, "Deployment", "mushroom-api")["spec"]["template"]["spec"][
        "containers"
    ][0]
    return container


@pytest.mark.parametrize("name", APP_KUSTOMIZATIONS)
def test_api_probes_resources_and_security(rendered: dict[str, Docs], name: str) -> None:
    docs = rendered[name]
    pod = one(docs, "Deployment", "mushroom-api")["spec"]["template"]["spec"]
    container = _api_container(docs)
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind])
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["args"] == ["--host", "0.0.0.0", "--port", "8000"]
    assert container["ports"][0]["containerPort"] == 8000


@pytest.mark.parametrize("name", APP_KUSTOMIZATIONS)
def test_api_writes_only_to_empty_dirs(rendered: dict[str, Docs], name: str) -> None:
    """Read-only root: the model cache (and any local path setting) sits on an emptyDir."""
    docs = rendered[name]
    pod = one(docs, "Deployment", "mushroom-api")["spec"]["template"]["spec"]
    empty_dirs = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    mounts = [
        m["mountPath"] for m in _api_container(docs)["volumeMounts"] if m["name"] in empty_dirs
    ]
    config = one(docs, "ConfigMap", "mushroom-api-config")["data"]
    for key in ("API_MODEL_CACHE_DIR",):
        assert any(config[key].startswith(mount + "/") for mount in mounts), key


@pytest.mark.parametrize("name", APP_KUSTOMIZATIONS)
def test_references_resolve(rendered: dict[str, Docs], name: str) -> None:
    docs = rendered[name]
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    deployment = one(docs, "Deployment", "mushroom-api")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    service = one(docs, "Service", "mushroom-api")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert (
        one(docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items()
        <= pod_labels.items()
    )
    target = one(docs, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) in names
    ingress = one(docs, "Ingress")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert ("Service", backend["name"]) in names
    assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
    cert_name = ingress["metadata"]["annotations"]["networking.gke.io/managed-certificates"]
    cert = one(docs, "ManagedCertificate", cert_name)
    assert cert["spec"]["domains"] == [ingress["spec"]["rules"][0]["host"]]
    frontend = ingress["metadata"]["annotations"]["networking.gke.io/v1beta1.FrontendConfig"]
    assert ("FrontendConfig", frontend) in names
    backend_config = json.loads(
        service["metadata"]["annotations"]["cloud.google.com/backend-config"]
    )
    health = one(docs, "BackendConfig", backend_config["default"])["spec"]["healthCheck"]
    readiness = _api_container(docs)["readinessProbe"]["httpGet"]
    assert health["requestPath"] == readiness["path"]
    assert health["port"] == _api_container(docs)["ports"][0]["containerPort"]
    for pod in _pod_specs(docs):
        assert ("ServiceAccount", pod["serviceAccountName"]) in names
        for container in pod["containers"] + pod.get("initContainers", []):
            for source in container.get("envFrom", []):
                assert ("ConfigMap", source["configMapRef"]["name"]) in names


def _pod_specs(docs: Docs) -> list[dict[str, Any]]:
    specs = []
    for doc in docs:
        if doc["kind"] in {"Deployment", "Job"}:
            specs.append(doc["spec"]["template"]["spec"])
        elif doc["kind"] == "CronJob":
            specs.append(doc["spec"]["jobTemplate"]["spec"]["template"]["spec"])
    return specs


@pytest.mark.parametrize("name", APP_KUSTOMIZATIONS)
def test_service_accounts_use_workload_identity(rendered: dict[str, Docs], name: str) -> None:
    for account in find(rendered[name], "ServiceAccount"):
        annotation = account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"]
        assert annotation.endswith(".iam.gserviceaccount.com")


def test_admin_token_comes_from_a_secret_the_deploy_role_creates(rendered: dict[str, Docs]) -> None:
    env = {e["name"]: e for e in _api_container(rendered["base"])["env"]}
    ref = env["API_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert ref["key"] == "API_ADMIN_TOKEN"
    role = (DEPLOYMENT / "ansible/roles/k8s_deploy/tasks/main.yml").read_text(encoding="utf-8")
    assert f"name: {ref['name']}" in role
    assert 'API_ADMIN_TOKEN: "{{ k8s_deploy_admin_token | b64encode }}"' in role
    # The token goes through kubectl's stdin: a command line is visible to every local user.
    assert "--from-literal" not in role
    assert "k8s_deploy_admin_token" not in role.split("argv:", 1)[1].split("\n", 1)[0]


def test_overlays_scale_differently(rendered: dict[str, Docs]) -> None:
    dev = one(rendered["overlays/dev"], "HorizontalPodAutoscaler")["spec"]
    prod = one(rendered["overlays/prod"], "HorizontalPodAutoscaler")["spec"]
    assert dev["minReplicas"] < prod["minReplicas"]
    assert dev["maxReplicas"] < prod["maxReplicas"]
    assert one(rendered["overlays/dev"], "Namespace")["metadata"]["name"] == "mushroom-dev"
    assert one(rendered["overlays/prod"], "Namespace")["metadata"]["name"] == "mushroom"


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_site_layer_sets_the_project_registry_tag_bucket_and_domain(
    sites: dict[str, Docs], env: str
) -> None:
    docs = sites[f"site-{env}"]
    registry = f"europe-west1-docker.pkg.dev/{SITE_PROJECT}/mushroom"
    assert _api_container(docs)["image"] == f"{registry}/mushroom-api:{SITE_TAG}"
    config = one(docs, "ConfigMap", "mushroom-api-config")["data"]
    bucket = f"{SITE_PROJECT}-mushroom" + ("-dev" if env == "dev" else "")
    assert config["MUSHROOM_STORAGE_URI"] == f"gs://{bucket}/data"
    assert one(docs, "ConfigMap", "mushroom-jobs-config")["data"]["MUSHROOM_STORAGE_URI"] == (
        f"gs://{bucket}/data"
    )
    assert json.loads(config["API_CORS_ORIGINS"]) == [f"https://{env}.mushroom.test"]
    assert one(docs, "ManagedCertificate")["spec"]["domains"] == [f"{env}.mushroom.test"]
    for account in find(docs, "ServiceAccount"):
        gsa = account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"]
        assert gsa == f"{account['metadata']['name']}-{env}@{SITE_PROJECT}.iam.gserviceaccount.com"
    for doc in docs:
        assert "PROJECT_ID" not in yaml.safe_dump(doc), f"placeholder left in {doc['kind']}"
    jobs = sites[f"site-{env}-jobs"]
    train = one(jobs, "Job", "mushroom-train")
    workers = 1 if env == "dev" else 3
    assert train["spec"]["completions"] == train["spec"]["parallelism"] == workers
    assert train["spec"]["template"]["spec"]["containers"][0]["env"][0] == {
        "name": "WORKERS",
        "value": str(workers),
    }
    assert train["spec"]["template"]["spec"]["containers"][0]["image"] == (
        f"{registry}/mushroom-trainer:{SITE_TAG}"
    )


@pytest.mark.parametrize("name", JOB_KUSTOMIZATIONS)
def test_training_job_is_an_indexed_multi_worker_job(rendered: dict[str, Docs], name: str) -> None:
    docs = rendered[name]
    job = one(docs, "Job", "mushroom-train")
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    pod = spec["template"]["spec"]
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    assert int(env["WORKERS"]) == spec["completions"] == spec["parallelism"]
    service = one(docs, "Service", "mushroom-train-workers")
    assert pod["subdomain"] == service["metadata"]["name"]
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"].items() <= spec["template"]["metadata"]["labels"].items()
    assert "--force" not in pod["containers"][0]["args"][0]


def _run_train_script(
    tmp_path: Path, script: str, env: dict[str, str]
) -> tuple[list[list[str]], dict[str, Any] | None]:
    """Run the Job's script with a stand-in `mushroom-train` that records its calls."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    calls = tmp_path / "calls.jsonl"
    fake = bin_dir / "mushroom-train"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        f"with open({str(calls)!r}, 'a') as log:\n"
        "    call = {'argv': sys.argv[1:], 'tf_config': os.environ.get('TF_CONFIG')}\n"
        "    log.write(json.dumps(call))\n"
        "    log.write('\\n')\n"
        "outputs = {'train': 'run r1 /runs/run-1', 'export': 'bundle mushroom v1 gs://b/m/v1'}\n"
        "print(outputs.get(sys.argv[1], 'ok'))\n",
        encoding="utf-8",
    )
    fake.chmod(0o755)
    python_dir = str(Path(sys.executable).parent)
    full_env = {
        "PATH": f"{bin_dir}:{python_dir}:/usr/bin:/bin",
        "RUN_CONFIG": "/app/model-training/configs/demo.yaml",
        "TRAIN_RUNS_DIR": str(tmp_path / "runs"),
        **env,
    }
    result = subprocess.run(
        ["/bin/sh", "-c", script], env=full_env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [json.loads(line) for line in calls.read_text(encoding="utf-8").splitlines()]
    tf_config = json.loads(lines[0]["tf_config"]) if lines[0]["tf_config"] else None
    return [line["argv"] for line in lines], tf_config


@pytest.fixture(scope="module")
def train_script(rendered: dict[str, Docs]) -> str:
    job = one(rendered["overlays/prod/jobs"], "Job", "mushroom-train")
    script: str = job["spec"]["template"]["spec"]["containers"][0]["args"][0]
    return script


def test_train_script_gives_each_worker_its_tf_config(tmp_path: Path, train_script: str) -> None:
    calls, tf_config = _run_train_script(
        tmp_path, train_script, {"WORKERS": "3", "JOB_COMPLETION_INDEX": "2"}
    )
    assert tf_config == {
        "cluster": {
            "worker": [f"mushroom-train-{i}.mushroom-train-workers:2222" for i in range(3)]
        },
        "task": {"type": "worker", "index": 2},
    }
    # A non-chief worker trains and stops: only the chief exports and promotes.
    assert [c[0] for c in calls] == ["train"]
    assert "training.distribution=multi_worker" in calls[0]


def test_train_script_chief_exports_evaluates_and_promotes_without_force(
    tmp_path: Path, train_script: str
) -> None:
    calls, _ = _run_train_script(
        tmp_path, train_script, {"WORKERS": "3", "JOB_COMPLETION_INDEX": "0"}
    )
    assert [c[0] for c in calls] == ["train", "export", "evaluate", "promote"]
    assert calls[1] == ["export", "/runs/run-1"]
    assert calls[2] == ["evaluate", "mushroom", "v1", "--split", "test"]
    assert calls[3][:3] == ["promote", "mushroom", "v1"]
    assert "--force" not in calls[3]


def test_train_script_on_one_pod_uses_the_default_strategy(
    tmp_path: Path, train_script: str
) -> None:
    calls, tf_config = _run_train_script(tmp_path, train_script, {"WORKERS": "1"})
    assert tf_config is None
    assert "training.distribution=multi_worker" not in calls[0]
    assert [c[0] for c in calls] == ["train", "export", "evaluate", "promote"]


def test_vertex_custom_job_runs_the_same_script(train_script: str, tmp_path: Path) -> None:
    spec = yaml.safe_load((DEPLOYMENT / "vertex/train-custom-job.yaml").read_text(encoding="utf-8"))
    schema = json.loads((SCHEMAS / "vertex-custom-job-spec.json").read_text(encoding="utf-8"))
    jsonschema.validate(spec, schema)
    pools = spec["workerPoolSpecs"]
    assert len(pools) == 2, "a chief pool and a worker pool"
    for pool in pools:
        assert pool["containerSpec"]["args"] == [train_script]
    # Vertex writes TF_CONFIG with a chief: the chief promotes, worker 0 does not.
    cluster = {"chief": ["c:2222"], "worker": ["w0:2222", "w1:2222"]}
    (tmp_path / "chief").mkdir()
    chief_calls, _ = _run_train_script(
        tmp_path / "chief",
        train_script,
        {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "chief", "index": 0}})},
    )
    assert [c[0] for c in chief_calls] == ["train", "export", "evaluate", "promote"]
    (tmp_path / "worker").mkdir()
    worker_calls, _ = _run_train_script(
        tmp_path / "worker",
        train_script,
        {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}})},
    )
    assert [c[0] for c in worker_calls] == ["train"]
    assert "training.distribution=multi_worker" in worker_calls[0]


def test_drift_monitor_runs_on_a_schedule_with_the_jobs_account(rendered: dict[str, Docs]) -> None:
    cron = one(rendered["overlays/prod"], "CronJob", "mushroom-drift-monitor")
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    container = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["mushroom-pipeline"]
    assert container["args"][0] == "monitor-drift"


def _proxy_and_database_url(pod: dict[str, Any], container: dict[str, Any]) -> None:
    """The pod reaches Cloud SQL through a native Auth Proxy sidecar, the URL from a Secret."""
    (proxy,) = [c for c in pod.get("initContainers", []) if c["name"] == "cloud-sql-proxy"]
    assert proxy["restartPolicy"] == "Always", "a native sidecar: up before the app, down after"
    assert "$(CLOUD_SQL_INSTANCE)" in proxy["args"]
    assert "--private-ip" in proxy["args"]
    instance = proxy["env"][0]["valueFrom"]["configMapKeyRef"]
    assert (instance["name"], instance["key"]) == ("mushroom-cloudsql", "CLOUD_SQL_INSTANCE")
    assert proxy["securityContext"]["readOnlyRootFilesystem"] is True
    env = {e["name"]: e for e in container.get("env", [])}
    ref = env["MUSHROOM_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    assert (ref["name"], ref["key"]) == ("mushroom-db", "MUSHROOM_DATABASE_URL")


@pytest.mark.parametrize("name", APP_KUSTOMIZATIONS)
def test_api_and_cronjobs_share_one_cloud_sql_database(
    rendered: dict[str, Docs], name: str
) -> None:
    docs = rendered[name]
    api_pod = one(docs, "Deployment", "mushroom-api")["spec"]["template"]["spec"]
    _proxy_and_database_url(api_pod, _api_container(docs))
    for cron_name in ("mushroom-drift-monitor", "mushroom-db-prune"):
        cron = one(docs, "CronJob", cron_name)
        pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        _proxy_and_database_url(pod, pod["containers"][0])
        assert cron["spec"].get("suspend", False) is False, f"{cron_name} is suspended"
    cloudsql = one(docs, "ConfigMap", "mushroom-cloudsql")["data"]
    assert cloudsql["CLOUD_SQL_INSTANCE"].count(":") == 2
    config = one(docs, "ConfigMap", "mushroom-api-config")["data"]
    assert "MUSHROOM_DATABASE_URL" not in config, "the URL holds the password: Secret only"


def test_prune_cronjob_runs_the_retention_command(rendered: dict[str, Docs]) -> None:
    cron = one(rendered["overlays/prod"], "CronJob", "mushroom-db-prune")
    container = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["mushroom-db"]
    assert container["args"] == ["prune"]
    jobs = one(rendered["overlays/prod"], "ConfigMap", "mushroom-jobs-config")["data"]
    assert int(jobs["MUSHROOM_RETENTION_DAYS"]) > 7, "retention outlives the feedback window"


def test_backend_config_attaches_the_cloud_armor_policy_ansible_creates(
    rendered: dict[str, Docs],
) -> None:
    """The pods' own limiter is off in the cluster: the edge policy must exist and be attached."""
    backend = one(rendered["base"], "BackendConfig", "mushroom-api")["spec"]
    defaults = yaml.safe_load(
        (DEPLOYMENT / "ansible/roles/cloud_armor/defaults/main.yml").read_text(encoding="utf-8")
    )
    assert backend["securityPolicy"]["name"] == defaults["cloud_armor_policy"]
    tasks = (DEPLOYMENT / "ansible/roles/cloud_armor/tasks/main.yml").read_text(encoding="utf-8")
    assert "--enforce-on-key=IP" in tasks
    assert "--exceed-action=deny-429" in tasks
    provision = (DEPLOYMENT / "ansible/playbooks/provision.yml").read_text(encoding="utf-8")
    assert "- cloud_armor" in provision
