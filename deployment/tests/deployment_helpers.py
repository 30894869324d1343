"""Helpers of the deployment tests: repository paths, tools, and kustomize rendering."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOYMENT = REPO_ROOT / "deployment"
K8S = DEPLOYMENT / "k8s"
ANSIBLE = DEPLOYMENT / "ansible"
SCRIPTS = DEPLOYMENT / "scripts"
# Kubernetes minor versions the manifests must satisfy: GKE's oldest supported and the newest
# schemas kubernetes-validate bundles.
K8S_VERSIONS = ("1.33.0", "1.37.0")


def tool(name: str) -> str:
    """Path of a command-line tool: the venv's own first, then PATH; skip the test if absent."""
    beside_python = Path(sys.executable).parent / name
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed")
    return found


def run_tool(
    args: Sequence[str],
    *,
    cwd: Path = REPO_ROOT,
    env: dict[str, str] | None = None,
    expect_rc: int = 0,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run a tool and fail with its full output when the exit status is not `expect_rc`."""
    merged_env = {**os.environ, "NO_COLOR": "1", **(env or {})}
    result = subprocess.run(
        list(args),
        cwd=cwd,
        env=merged_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == expect_rc, (
        f"{' '.join(args)} exited with {result.returncode} (expected {expect_rc})\n"
        f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    )
    return result


def kustomize_command() -> list[str]:
    """`kustomize build` or `kubectl kustomize`, whichever is installed (skip when neither)."""
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    pytest.skip("neither kustomize nor kubectl is installed")


def render_kustomization(path: Path) -> list[dict[str, Any]]:
    """The documents `kustomize build <path>` renders."""
    result = run_tool([*kustomize_command(), str(path)], timeout=60)
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    """The rendered documents of one kind (and name prefix, for hash-suffixed ConfigMaps)."""
    return [
        d
        for d in docs
        if d["kind"] == kind and (name is None or d["metadata"]["name"].startswith(name))
    ]


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    """The single rendered document of one kind (and name prefix)."""
    found = find(docs, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


SITE_PLAYBOOK = """\
- name: Render the site kustomizations as the deploy and run-job roles do
  hosts: localhost
  gather_facts: false
  vars_files:
    - {derived}
  tasks:
    - name: Make the folders
      ansible.builtin.file:
        path: "{{{{ build_dir }}}}/{{{{ item }}}}"
        state: directory
        mode: "0755"
      loop: [app, jobs]
    - name: Render the app's site kustomization
      ansible.builtin.template:
        src: {template}
        dest: "{{{{ build_dir }}}}/app/kustomization.yaml"
        mode: "0644"
      vars:
        k8s_deploy_overlay: "{{{{ k8s_dir }}}}/overlays/{{{{ mushroom_env }}}}"
        k8s_deploy_app: true
    - name: Render the Jobs' site kustomization
      ansible.builtin.template:
        src: {template}
        dest: "{{{{ build_dir }}}}/jobs/kustomization.yaml"
        mode: "0644"
      vars:
        k8s_deploy_overlay: "{{{{ k8s_dir }}}}/overlays/{{{{ mushroom_env }}}}/jobs"
        k8s_deploy_target_dir: "{{{{ build_dir }}}}/jobs"
        k8s_deploy_app: false
"""
SITE_PROJECT = "mushroom-test-123"
SITE_TAG = "0123456789abcdef0123456789abcdef01234567"


def render_site(env: str, out_dir: Path) -> Path:
    """Render deployment/ansible's site kustomizations for `env` into out_dir/{app,jobs}."""
    playbook = out_dir / "render-site.yml"
    playbook.write_text(
        SITE_PLAYBOOK.format(
            derived=ANSIBLE / "playbooks/vars/derived.yml",
            template=ANSIBLE / "roles/k8s_deploy/templates/kustomization.yaml.j2",
        ),
        encoding="utf-8",
    )
    run_tool(
        [
            tool("ansible-playbook"),
            "--inventory",
            str(ANSIBLE / f"inventory/{env}"),
            str(playbook),
            "--extra-vars",
            f"repo_root={REPO_ROOT} build_dir={out_dir} image_tag={SITE_TAG}",
        ],
        cwd=ANSIBLE,
        env={
            "GCP_PROJECT_ID": SITE_PROJECT,
            "MUSHROOM_DOMAIN": f"{env}.mushroom.test",
            "ANSIBLE_LOCAL_TEMP": str(out_dir / ".ansible-tmp"),
        },
    )
    return out_dir
