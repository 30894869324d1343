"""The promotion rule and `pack`: training's part of the registry.

Reading and writing the registry (bundles, champion pointer, promotion history) is
mushroom_common.registry; this module decides whether a candidate may become the champion: never
worse on the metrics rule, and passing the model tests (tests/model, run on the candidate's own
files by `run_model_tests`) when the caller gives them as `checks`.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from mushroom_common.bundle import (
    METADATA_FILE,
    BundleMetadata,
    PromotionEvent,
    hash_bundle_files,
    read_metadata,
    write_metadata,
)
from mushroom_common.registry import ModelRegistry
from mushroom_common.storage import Storage
from mushroom_training.evaluate import evaluate_bundle

logger = logging.getLogger(__name__)

# The promotion rule compares these test-split metrics: lower poison cost is better, higher
# macro-F1 is better.
RULE_METRICS = ("poison_cost", "macro_f1")
# Bundles measured on the field split (issue 23) are compared on field validation instead:
# none of its deadly/poisonous photos answered `edible`, top-1 not lower, toxic photos answered
# `dangerous` not fewer, edible photos answered `dangerous` not more than the champion's.
FIELD_RULE_METRICS = (
    "field_val_dangerous_answered_edible",
    "field_val_top1",
    "field_val_toxic_answered_dangerous",
    "field_val_edible_answered_dangerous",
)
# The model tests of a source checkout (an installed image has none: `model_tests()` is None).
REPO_ROOT = Path(__file__).resolve().parents[3]
MODEL_TESTS = REPO_ROOT / "model-training" / "tests" / "model" / "test_demo_bundle.py"
# A bundle check: None when the bundle folder passes, else why it fails.
BundleCheck = Callable[[Path], str | None]


class PromotionRefusedError(RuntimeError):
    """The candidate is worse than the champion (the refusal is logged in the history)."""

    def __init__(self, event: PromotionEvent) -> None:
        super().__init__(event.reason)
        self.event = event


def _rule_metrics(metrics: dict[str, float]) -> dict[str, float]:
    return {k: metrics[k] for k in RULE_METRICS if k in metrics}


# Safety is absolute on every photo set a bundle records (a check, not a choice: nothing is
# tuned on these): no deadly/poisonous photo answered `edible`.
SAFETY_METRICS = {
    "verdict_dangerous_as_edible": "dangerous test-split photos",
    "field_dangerous_answered_edible": "dangerous field-test photos",
    "field_unknown_dangerous_answered_edible": "dangerous photos of unknown species",
}


# The verdict targets (issue 23): a candidate may trade red answers inside them. At least this
# share of toxic field-validation photos answered `dangerous`, at most this share of edible ones.
TOXIC_DANGEROUS_FLOOR = 0.90
EDIBLE_DANGEROUS_CEILING = 0.20


def field_gate(candidate: dict[str, float], champion: dict[str, float] | None) -> list[str]:
    """Why a candidate with field-validation numbers is worse (empty: not worse).

    Safety is absolute (no dangerous photo answered `edible` on field validation nor on any set
    in `SAFETY_METRICS`); the rest is relative to a champion that has field numbers too. The red
    answers are judged against the champion *or* the verdict targets, whichever is easier: a
    model whose top-1 rises may move a toxic photo from red to amber ("do not eat, it could be
    X") as long as 90% stay red, and may flag a few more edible photos while at most 20% are.
    """
    worse: list[str] = []
    for key, what in SAFETY_METRICS.items():
        if candidate.get(key, 0.0) > 0:
            worse.append(f"{candidate[key]:.0f} {what} answered edible")
    if candidate["field_val_dangerous_answered_edible"] > 0:
        worse.append(
            f"{candidate['field_val_dangerous_answered_edible']:.0f} dangerous field-validation "
            "photos answered edible"
        )
    if champion is None or not all(k in champion for k in FIELD_RULE_METRICS):
        return worse
    eps = 1e-9
    if candidate["field_val_top1"] < champion["field_val_top1"] - eps:
        worse.append(
            f"field-val top-1 {candidate['field_val_top1']:.4f} < {champion['field_val_top1']:.4f}"
        )
    toxic_floor = min(champion["field_val_toxic_answered_dangerous"], TOXIC_DANGEROUS_FLOOR)
    if candidate["field_val_toxic_answered_dangerous"] < toxic_floor - eps:
        worse.append(
            "field-val toxic answered dangerous "
            f"{candidate['field_val_toxic_answered_dangerous']:.4f} < {toxic_floor:.4f}"
        )
    edible_ceiling = max(champion["field_val_edible_answered_dangerous"], EDIBLE_DANGEROUS_CEILING)
    if candidate["field_val_edible_answered_dangerous"] > edible_ceiling + eps:
        worse.append(
            "field-val edible answered dangerous "
            f"{candidate['field_val_edible_answered_dangerous']:.4f} > {edible_ceiling:.4f}"
        )
    return worse


def _champion_metrics_on(
    registry: ModelRegistry, champ: BundleMetadata, dataset_version: str
) -> dict[str, float]:
    """The champion's served-variant metrics on the candidate's test split."""
    if champ.dataset_version == dataset_version and all(k in champ.metrics for k in RULE_METRICS):
        return _rule_metrics(champ.metrics)
    logger.info("re-evaluating champion %s on the test split of %s", champ.version, dataset_version)
    with tempfile.TemporaryDirectory(prefix="champion-") as tmp:
        registry.download(champ.name, champ.version, Path(tmp))
        results = evaluate_bundle(
            Path(tmp), registry.storage, dataset_version, "test", [champ.serving_variant]
        )
    return _rule_metrics(results[champ.serving_variant])


def model_tests() -> Path | None:
    """The model tests file when this is a source checkout, else None."""
    return MODEL_TESTS if MODEL_TESTS.is_file() else None


def run_model_tests(bundle_dir: Path) -> str | None:
    """Run the model tests on a bundle folder (every test but the demo model's own targets).

    Args:
        bundle_dir: a local bundle folder (the candidate, downloaded).

    Returns:
        None when they pass, else the end of pytest's report.
    """
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        str(MODEL_TESTS),
        "--bundle",
        str(bundle_dir),
        "-m",
        "not demo_targets",
    ]
    logger.info("model tests on %s", bundle_dir)
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    if done.returncode == 0:
        return None
    tail = (done.stdout + done.stderr).strip().splitlines()[-12:]
    return f"model tests failed (pytest exit {done.returncode}): " + " | ".join(tail)


def _check_candidate(registry: ModelRegistry, name: str, version: str, check: BundleCheck) -> str:
    with tempfile.TemporaryDirectory(prefix="candidate-") as tmp:
        registry.download(name, version, Path(tmp))
        return check(Path(tmp)) or ""


def promote(
    storage: Storage,
    name: str,
    version: str,
    *,
    force: bool = False,
    reason: str = "",
    checks: BundleCheck | None = None,
) -> PromotionEvent:
    """Make a bundle version the champion if it is not worse than the current one.

    A candidate measured on the field split (`FIELD_RULE_METRICS` in its metadata, written by
    `mushroom-train field-head`) is judged on field validation (`field_gate`). Otherwise not
    worse means: poison cost <= the champion's and macro-F1 >= the champion's, both on the
    candidate's test split (the champion is re-evaluated there when it was trained on another
    dataset version); such a candidate cannot replace a champion that has field numbers. Either
    way `checks` (e.g. `run_model_tests`) must pass on the candidate's files.
    `force` promotes anyway; every attempt is appended to the history.

    Args:
        storage: the registry's storage.
        name: model name.
        version: the candidate version.
        force: promote even if worse (logged as forced).
        reason: a note kept in the history.
        checks: run on the downloaded candidate before it may become the champion.

    Returns:
        The recorded event.

    Raises:
        PromotionRefusedError: the candidate is worse and force is False.
    """
    registry = ModelRegistry(storage)
    candidate = registry.metadata(name, version)
    current = registry.champion(name)
    previous_metrics: dict[str, float] = {}
    worse: list[str] = []
    champ = (
        registry.metadata(name, current.version)
        if current is not None and current.version != version
        else None
    )
    if all(k in candidate.metrics for k in FIELD_RULE_METRICS):
        metrics = {
            k: candidate.metrics[k]
            for k in (*FIELD_RULE_METRICS, *SAFETY_METRICS)
            if k in candidate.metrics
        }
        if champ is not None:
            previous_metrics = {
                k: champ.metrics[k] for k in FIELD_RULE_METRICS if k in champ.metrics
            }
        worse = field_gate(metrics, previous_metrics if champ is not None else None)
        if champ is not None and len(previous_metrics) < len(FIELD_RULE_METRICS):
            logger.info(
                "champion %s has no field numbers: only field safety compared", champ.version
            )
    else:
        metrics = _rule_metrics(candidate.metrics)
        missing = [k for k in RULE_METRICS if k not in metrics]
        if missing:
            raise ValueError(
                f"{name}/{version} has no {', '.join(missing)} in its metadata metrics"
            )
        if champ is not None and all(k in champ.metrics for k in FIELD_RULE_METRICS):
            worse.append("the champion was measured on field photos and the candidate was not")
        elif champ is not None:
            previous_metrics = _champion_metrics_on(registry, champ, candidate.dataset_version)
            if metrics["poison_cost"] > previous_metrics["poison_cost"] + 1e-9:
                worse.append(
                    f"poison cost {metrics['poison_cost']:.4f} > "
                    f"{previous_metrics['poison_cost']:.4f}"
                )
            if metrics["macro_f1"] < previous_metrics["macro_f1"] - 1e-9:
                worse.append(
                    f"macro-F1 {metrics['macro_f1']:.4f} < {previous_metrics['macro_f1']:.4f}"
                )
    if checks is not None:
        failure = _check_candidate(registry, name, version, checks)
        if failure:
            worse.append(failure)
    accepted = not worse or force
    if not worse:
        verdict = "not worse than the champion" if current else "no champion yet"
    elif force:
        verdict = f"FORCED although worse: {'; '.join(worse)}"
    else:
        verdict = f"refused: {'; '.join(worse)}"
    now = datetime.now(UTC)
    event = PromotionEvent(
        name=name,
        version=version,
        previous_version=current.version if current else None,
        promoted_at=now,
        forced=force and bool(worse),
        accepted=accepted,
        reason=f"{verdict}" + (f" ({reason})" if reason else ""),
        metrics=metrics,
        previous_metrics=previous_metrics,
    )
    registry.record_promotion(event)
    if not accepted:
        logger.warning("promotion of %s/%s %s", name, version, verdict)
        raise PromotionRefusedError(event)
    registry.set_champion(name, version, event.reason, promoted_at=now)
    return event


def pack_bundle(
    source: Path, target: Path, variants: list[str], data_status: str | None = None
) -> BundleMetadata:
    """Copy a bundle keeping only some variants (e.g. for the repository), re-hashing its files.

    Args:
        source: a local bundle folder.
        target: the new folder (replaced).
        variants: variant names to keep; the serving variant must be among them.
        data_status: replaces the metadata's data_status when given.

    Returns:
        The new metadata.
    """
    metadata = read_metadata(source)
    if metadata.serving_variant not in variants:
        raise ValueError(f"the serving variant {metadata.serving_variant} must be kept")
    kept = [v for v in metadata.variants if v.name in variants]
    dropped_paths = {v.path for v in metadata.variants if v.name not in variants}
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source).as_posix()
        if not path.is_file() or path.name == METADATA_FILE:
            continue
        if any(rel == d or rel.startswith(f"{d}/") for d in dropped_paths):
            continue
        destination = target / rel
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, destination)
    packed = metadata.model_copy(update={"variants": kept, "files": hash_bundle_files(target)})
    if data_status is not None:
        packed.data_status = data_status
    write_metadata(target, packed)
    return packed
