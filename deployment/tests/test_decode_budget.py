"""The API pod's memory limit holds its workers' decode budgets (issue 25 item 2).

Each worker process counts its own decode memory (`API_DECODE_TOTAL_BYTES`: concurrent decodes
wait beyond it, then 503) and its own request bodies (`API_UPLOAD_BUDGET_BYTES`); the server
starts one worker per CPU of the pod's limit. The decode budget counts what the decoders really
allocate: `benchmarks/decode_memory.py` measured each format's worst-case photo against the
estimate, and the latest report is read here, so 8 concurrent worst-case photos of any format
fit the limit instead of adding up (2.15 GB for 8 progressive JPEGs before the fix).
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from deployment_helpers import K8S, REPO_ROOT, one, render_kustomization

APP_KUSTOMIZATIONS = ["base", "overlays/dev", "overlays/prod"]
# Peak resident memory of one idle-to-busy worker with the demo model, outside decoding: at most
# 289 MiB measured under /predict load (benchmarks/RESULTS.md, issue 16); rounded up.
WORKER_RSS_MIB = 320
RESULTS = REPO_ROOT / "benchmarks" / "results"
MIB = 1024 * 1024


def _quantity(value: str) -> float:
    """A Kubernetes quantity in bytes (memory) or cores (cpu)."""
    units = {"Ki": 1024, "Mi": MIB, "Gi": 1024 * MIB, "m": 0.001}
    for suffix, factor in units.items():
        if value.endswith(suffix):
            return float(value[: -len(suffix)]) * factor
    return float(value)


def _latest_decode_report() -> dict[str, Any]:
    reports = sorted(RESULTS.glob("decode_memory-*.json"))
    assert reports, "run benchmarks/decode_memory.py"
    report: dict[str, Any] = json.loads(reports[-1].read_text(encoding="utf-8"))
    return report


def _api_pod(name: str) -> tuple[dict[str, str], float, int]:
    """The API's config, its pod's memory limit in bytes and its worker count, as rendered."""
    docs = render_kustomization(K8S / name)
    config: dict[str, str] = one(docs, "ConfigMap", "mushroom-api-config")["data"]
    container = one(docs, "Deployment", "mushroom-api")["spec"]["template"]["spec"]["containers"][0]
    limit = _quantity(container["resources"]["limits"]["memory"])
    workers = max(1, math.ceil(_quantity(str(container["resources"]["limits"]["cpu"]))))
    return config, limit, workers


def test_the_decode_estimate_holds_for_every_measured_format() -> None:
    rows = _latest_decode_report()["rows"]
    assert {"progressive JPEG", "WebP", "PNG RGB"} <= {row["photo"] for row in rows}
    for row in rows:
        assert row["measured"] <= 1.1 * row["estimate"], row["photo"]


@pytest.mark.parametrize("name", APP_KUSTOMIZATIONS)
def test_every_workers_budgets_fit_the_pod_memory_limit(name: str) -> None:
    config, limit, workers = _api_pod(name)
    budget = int(config["API_DECODE_BUDGET_BYTES"])
    total = int(config["API_DECODE_TOTAL_BYTES"])
    uploads = int(config["API_UPLOAD_BUDGET_BYTES"])
    assert budget <= total, "one photo's budget must fit the worker's total"
    # The estimate may be 10 % under the real peak (checked above).
    per_worker = WORKER_RSS_MIB * MIB + 1.1 * total + uploads
    assert workers * per_worker <= limit, (
        f"{name}: {workers} workers x {per_worker / MIB:.0f} MiB > {limit / MIB:.0f} MiB"
    )


def test_eight_worst_case_photos_of_each_format_fit_one_pod() -> None:
    config, limit, workers = _api_pod("base")
    budget = int(config["API_DECODE_BUDGET_BYTES"])
    total = int(config["API_DECODE_TOTAL_BYTES"])
    for row in _latest_decode_report()["rows"]:
        if row["estimate"] > budget:
            continue  # refused from its header, before any pixel is decoded
        # 8 photos spread over the workers; each worker runs what its total holds, the rest wait.
        per_worker = math.ceil(8 / workers)
        at_once = min(per_worker, max(1, total // row["estimate"]))
        peak = workers * (WORKER_RSS_MIB * MIB + at_once * row["measured"])
        assert peak <= limit, f"{row['photo']}: {peak / MIB:.0f} MiB"
