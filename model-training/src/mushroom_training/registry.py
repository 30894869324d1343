"""The model registry in storage: bundles under `models/<name>/<version>/`, a champion pointer and
the promotion history."""

from __future__ import annotations

import logging
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from mushroom_common.bundle import (
    CHAMPION_FILE,
    METADATA_FILE,
    MODELS_PREFIX,
    PROMOTIONS_FILE,
    BundleMetadata,
    ChampionPointer,
    PromotionEvent,
    bundle_prefix,
    hash_bundle_files,
    read_metadata,
    verify_bundle,
    write_metadata,
)
from mushroom_common.storage import ObjectNotFoundError, Storage
from mushroom_training.evaluate import evaluate_bundle

logger = logging.getLogger(__name__)

# The promotion rule compares these test-split metrics: lower poison cost is better, higher
# macro-F1 is better.
RULE_METRICS = ("poison_cost", "macro_f1")


class PromotionRefusedError(RuntimeError):
    """The candidate is worse than the champion (the refusal is logged in the history)."""

    def __init__(self, event: PromotionEvent) -> None:
        super().__init__(event.reason)
        self.event = event


def read_bundle_metadata(storage: Storage, name: str, version: str) -> BundleMetadata:
    """A stored bundle's metadata."""
    return BundleMetadata.model_validate_json(
        storage.read_text(f"{bundle_prefix(name, version)}/{METADATA_FILE}")
    )


def list_versions(storage: Storage, name: str) -> list[str]:
    """Versions of a model name that have metadata, oldest first."""
    suffix = f"/{METADATA_FILE}"
    prefix = f"{MODELS_PREFIX}/{name}/"
    return sorted(
        key[len(prefix) : -len(suffix)]
        for key in storage.list(prefix)
        if key.endswith(suffix) and key.count("/") == 3
    )


def list_model_names(storage: Storage) -> list[str]:
    """Every model name in the registry."""
    return sorted(
        {key.split("/")[1] for key in storage.list(f"{MODELS_PREFIX}/") if key.count("/") >= 2}
    )


def champion(storage: Storage, name: str) -> ChampionPointer | None:
    """The current champion of a model name, if any."""
    try:
        return ChampionPointer.model_validate_json(
            storage.read_text(f"{MODELS_PREFIX}/{name}/{CHAMPION_FILE}")
        )
    except ObjectNotFoundError:
        return None


def promotion_history(storage: Storage, name: str) -> list[PromotionEvent]:
    """Every promotion attempt, oldest first."""
    try:
        text = storage.read_text(f"{MODELS_PREFIX}/{name}/{PROMOTIONS_FILE}")
    except ObjectNotFoundError:
        return []
    return [PromotionEvent.model_validate_json(line) for line in text.splitlines() if line.strip()]


def _append_event(storage: Storage, event: PromotionEvent) -> None:
    key = f"{MODELS_PREFIX}/{event.name}/{PROMOTIONS_FILE}"
    try:
        existing = storage.read_text(key)
    except ObjectNotFoundError:
        existing = ""
    storage.write_text(key, existing + event.model_dump_json() + "\n", "application/x-ndjson")


def download_bundle(storage: Storage, name: str, version: str, target: Path) -> BundleMetadata:
    """Copy a stored bundle to a local folder and verify its files against the metadata."""
    storage.download_tree(bundle_prefix(name, version), target)
    metadata = read_metadata(target)
    verify_bundle(target, metadata)
    return metadata


def _rule_metrics(metrics: dict[str, float]) -> dict[str, float]:
    return {k: metrics[k] for k in RULE_METRICS if k in metrics}


def _champion_metrics_on(
    storage: Storage, champ: BundleMetadata, dataset_version: str
) -> dict[str, float]:
    """The champion's served-variant metrics on the candidate's test split."""
    if champ.dataset_version == dataset_version and all(k in champ.metrics for k in RULE_METRICS):
        return _rule_metrics(champ.metrics)
    logger.info("re-evaluating champion %s on the test split of %s", champ.version, dataset_version)
    with tempfile.TemporaryDirectory(prefix="champion-") as tmp:
        download_bundle(storage, champ.name, champ.version, Path(tmp))
        results = evaluate_bundle(
            Path(tmp), storage, dataset_version, "test", [champ.serving_variant]
        )
    return _rule_metrics(results[champ.serving_variant])


def promote(
    storage: Storage, name: str, version: str, *, force: bool = False, reason: str = ""
) -> PromotionEvent:
    """Make a bundle version the champion if it is not worse than the current one.

    Not worse means: poison cost <= the champion's and macro-F1 >= the champion's, both on the
    candidate's test split (the champion is re-evaluated there when it was trained on another
    dataset version). `force` promotes anyway; every attempt is appended to the history.

    Args:
        storage: the registry's storage.
        name: model name.
        version: the candidate version.
        force: promote even if worse (logged as forced).
        reason: a note kept in the history.

    Returns:
        The recorded event.

    Raises:
        PromotionRefusedError: the candidate is worse and force is False.
    """
    candidate = read_bundle_metadata(storage, name, version)
    metrics = _rule_metrics(candidate.metrics)
    missing = [k for k in RULE_METRICS if k not in metrics]
    if missing:
        raise ValueError(f"{name}/{version} has no {', '.join(missing)} in its metadata metrics")
    current = champion(storage, name)
    previous_metrics: dict[str, float] = {}
    worse: list[str] = []
    if current is not None and current.version != version:
        champ = read_bundle_metadata(storage, name, current.version)
        previous_metrics = _champion_metrics_on(storage, champ, candidate.dataset_version)
        if metrics["poison_cost"] > previous_metrics["poison_cost"] + 1e-9:
            worse.append(
                f"poison cost {metrics['poison_cost']:.4f} > {previous_metrics['poison_cost']:.4f}"
            )
        if metrics["macro_f1"] < previous_metrics["macro_f1"] - 1e-9:
            worse.append(f"macro-F1 {metrics['macro_f1']:.4f} < {previous_metrics['macro_f1']:.4f}")
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
    _append_event(storage, event)
    if not accepted:
        logger.warning("promotion of %s/%s %s", name, version, verdict)
        raise PromotionRefusedError(event)
    pointer = ChampionPointer(name=name, version=version, promoted_at=now, reason=event.reason)
    storage.write_text(
        f"{MODELS_PREFIX}/{name}/{CHAMPION_FILE}",
        pointer.model_dump_json(indent=2) + "\n",
        "application/json",
    )
    logger.info("%s/%s is the champion (%s)", name, version, verdict)
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
    import shutil

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
