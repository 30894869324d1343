"""The data steps: collect (folders, iNaturalist, API feedback) and build a dataset version."""

from __future__ import annotations

import hashlib
import logging
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mushroom_collector.build import BuildParams, build_dataset
from mushroom_collector.config import get_settings as get_collector_settings
from mushroom_collector.feedback import import_feedback
from mushroom_collector.folder import IMAGE_SUFFIXES, import_folder
from mushroom_collector.records import load_records
from mushroom_common.catalog import load_catalog
from mushroom_common.dataset import COLLECTED_PREFIX, is_complete, read_manifest
from mushroom_common.storage import Storage
from mushroom_common.store import PredictionStore, StoreError, resolve_database_url
from mushroom_pipeline.steps import canonical_json, sha256_text

logger = logging.getLogger(__name__)


class PipelineError(RuntimeError):
    """A step failed; the message says which and why."""


@dataclass(frozen=True)
class CollectOptions:
    """What the collect step gathers."""

    import_folders: list[Path] = field(default_factory=list)
    inat_species: list[str] | None = None
    max_per_species: int | None = None
    with_feedback: bool = False
    database_url: str | None = None

    @property
    def inat(self) -> bool:
        """Whether to collect from iNaturalist (asked for with species or a per-species cap)."""
        return self.inat_species is not None or self.max_per_species is not None


def folder_fingerprint(root: Path) -> str:
    """sha256 over every image file's relative path, size and modification time."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.suffix.lower() not in IMAGE_SUFFIXES or path.name.startswith("."):
            continue
        stat = path.stat()
        digest.update(
            f"{path.relative_to(root).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode()
        )
    return digest.hexdigest()


def open_feedback_store(storage: Storage, database_url: str | None) -> PredictionStore | None:
    """The API's feedback database, or None (warned) when it does not exist or cannot be read."""
    store = PredictionStore(resolve_database_url(database_url, storage))
    try:
        store.require_schema()
    except StoreError as exc:
        logger.warning("no feedback database to read (%s): nothing to import", exc)
        store.close()
        return None
    return store


def read_feedback_store(
    storage: Storage,
    database_url: str | None,
    read: Callable[[PredictionStore], Any],
    missing: str,
) -> Any:
    """`read` of the API's feedback database (closed after), or `missing` when there is none."""
    store = open_feedback_store(storage, database_url)
    if store is None:
        return missing
    try:
        return read(store)
    finally:
        store.close()


def feedback_fingerprint(store: PredictionStore) -> str:
    """sha256 of every feedback that shared its photo (id, verdict, species, photo key)."""
    shared = [[r.id, r.correct, r.species, r.photo_key] for r in store.feedback() if r.photo_key]
    return sha256_text(canonical_json(shared))


def collect_inputs(storage: Storage, options: CollectOptions) -> dict[str, Any]:
    """The collect step's inputs: folder fingerprints, iNaturalist query, feedback fingerprint."""
    inputs: dict[str, Any] = {
        "storage": storage.uri,
        "folders": [
            {"path": str(folder.resolve()), "fingerprint": folder_fingerprint(folder)}
            for folder in options.import_folders
        ],
    }
    if options.inat:
        inputs["inat"] = {
            "species": sorted(options.inat_species or []) or "catalog",
            "max_per_species": options.max_per_species,
        }
    if options.with_feedback:
        inputs["feedback"] = read_feedback_store(
            storage, options.database_url, feedback_fingerprint, "no-feedback-db"
        )
    return inputs


def run_cli(module: str, args: list[str], what: str) -> str:
    """Run another service's typer CLI in a subprocess of this interpreter; return its stdout."""
    command = [sys.executable, "-c", f"from {module} import app; app()", *args]
    logger.info("running %s", " ".join([module.split(".")[0].replace("_", "-"), *args]))
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.stderr.strip():
        for line in completed.stderr.strip().splitlines()[-20:]:
            logger.info("  %s", line)
    if completed.returncode != 0:
        raise PipelineError(f"{what} failed (exit {completed.returncode}); see the log above")
    return completed.stdout


def collect(storage: Storage, options: CollectOptions) -> dict[str, Any]:
    """Import the folders, collect from iNaturalist, import API feedback; return a summary."""
    catalog = load_catalog()
    outputs: dict[str, Any] = {"folders": {}}
    for folder in options.import_folders:
        summary = import_folder(storage, folder, catalog, quiet=True)
        outputs["folders"][str(folder)] = {
            "found": summary.found,
            "imported": summary.imported,
            "already_imported": summary.already_imported,
            "invalid": len(summary.invalid),
        }
    storage_args = ["--storage", storage.uri]
    if options.inat:
        args = ["inat", *storage_args, "--quiet"]
        if options.inat_species:
            args += ["--species", ",".join(options.inat_species)]
        if options.max_per_species is not None:
            args += ["--max-per-species", str(options.max_per_species)]
        outputs["inat"] = run_cli("mushroom_collector.cli", args, "iNaturalist collection").strip()
    if options.with_feedback:

        def import_shared(store: PredictionStore) -> dict[str, Any]:
            imported = import_feedback(storage, catalog, store, quiet=True)
            return {
                "imported": imported.imported,
                "approved": imported.approved,
                "already_imported": imported.already_imported,
                "skipped": dict(imported.skipped),
            }

        outputs["feedback"] = read_feedback_store(
            storage, options.database_url, import_shared, "no feedback database"
        )
    outputs["records"] = len(storage.list(f"{COLLECTED_PREFIX}/"))
    return outputs


def build_params() -> BuildParams:
    """Build parameters from the collector's settings (as `mushroom-collect build` does)."""
    settings = get_collector_settings()
    return BuildParams(
        seed=settings.seed,
        train_fraction=settings.train_fraction,
        val_fraction=settings.val_fraction,
        test_fraction=settings.test_fraction,
        min_image_side=settings.min_image_side,
        near_duplicate_distance=settings.near_duplicate_distance,
        group_distance=settings.group_distance,
    )


def build_inputs(storage: Storage) -> dict[str, Any]:
    """The build step's inputs: every collected record key and the build parameters."""
    keys = storage.list(f"{COLLECTED_PREFIX}/")
    return {
        "storage": storage.uri,
        "collected": sha256_text("\n".join(keys)),
        "records": len(keys),
        "params": build_params().identity(),
    }


def check_feedback_splits(storage: Storage, version_id: str) -> dict[str, int]:
    """Refuse a version where unreviewed feedback photos sit in val or test.

    Returns:
        The number of feedback photos per split.
    """
    unreviewed = {r.content_hash for r in load_records(storage, "feedback") if r.needs_review}
    per_split = {"train": 0, "val": 0, "test": 0}
    misplaced = []
    for row in read_manifest(storage, version_id):
        if row.source != "feedback":
            continue
        per_split[row.split] += 1
        if row.split != "train" and row.content_hash in unreviewed:
            misplaced.append(row.content_hash)
    if misplaced:
        raise PipelineError(
            f"dataset version {version_id} puts {len(misplaced)} unreviewed feedback photos in "
            "val/test; they may only teach (train), never grade"
        )
    return per_split


def build(storage: Storage) -> dict[str, Any]:
    """Build (or find) the dataset version of everything collected.

    The pipeline's build step then runs `check_feedback_splits` on it (definition.py).
    """
    result = build_dataset(storage, load_catalog(), build_params(), quiet=True)
    counts = result.report.get("counts", {})
    return {
        "dataset_version": result.version_id,
        "created": result.created,
        "photos": counts.get("total"),
        "species": counts.get("species"),
        "per_split": counts.get("per_split"),
        "removed": {
            k: v for k, v in result.report.get("removed", {}).items() if isinstance(v, int)
        },
    }


def dataset_still_there(storage: Storage) -> Any:
    """A validity check for the build step's record: the version is still complete."""

    def check(outputs: dict[str, Any]) -> bool:
        return is_complete(storage, str(outputs.get("dataset_version", "")))

    return check
