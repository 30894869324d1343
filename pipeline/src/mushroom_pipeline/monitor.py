"""`monitor-drift`: read the API's prediction log, compare with the reference, write the report."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from mushroom_common.registry import InvalidIdentifierError, ModelRegistry
from mushroom_common.storage import Storage
from mushroom_common.store import (
    PredictionRecord,
    PredictionStore,
    StoreError,
    resolve_database_url,
)
from mushroom_pipeline.drift import DriftReport, DriftThresholds, Window, analyse, render_markdown
from mushroom_pipeline.reference import ReferenceError, champion_version, load_reference

logger = logging.getLogger(__name__)

DRIFT_PREFIX = "monitoring/drift"


@dataclass(frozen=True)
class DriftResult:
    """The report and where it was written."""

    report: DriftReport
    markdown: str
    json_key: str
    markdown_key: str


def read_predictions(
    storage: Storage, database_url: str | None, since: datetime | None = None
) -> list[PredictionRecord]:
    """Every logged prediction (optionally since a time), oldest first.

    Args:
        storage: the storage root (its local folder holds the default SQLite database).
        database_url: the database (None: `MUSHROOM_DATABASE_URL`, else the local default).
        since: ignore answers before this time.
    """
    store = PredictionStore(resolve_database_url(database_url, storage))
    try:
        store.require_schema()
        return store.predictions(since)
    except StoreError as exc:
        raise ReferenceError(
            f"the prediction log cannot be read ({exc}): is the API logging predictions?"
        ) from exc
    finally:
        store.close()


def served_model(
    storage: Storage,
    predictions: list[PredictionRecord],
    model_name: str | None,
    model_version: str | None,
) -> tuple[str, str]:
    """Which bundle to compare against: the one named, else the newest logged one, else champion."""
    newest = predictions[-1] if predictions else None
    name = model_name or (newest.model_name if newest else None)
    if name is None:
        raise ReferenceError("no model name given and no prediction logged: use --model-name")
    if model_version:
        return name, model_version
    if newest is not None and newest.model_name == name:
        try:
            if ModelRegistry(storage).has_version(name, newest.model_version):
                return name, newest.model_version
        except InvalidIdentifierError as exc:
            logger.warning("the prediction log names an invalid model version: %s", exc)
        logger.info(
            "the newest answers came from %s/%s, which is not in the registry: using the champion",
            name,
            newest.model_version,
        )
    return name, champion_version(storage, name)


def monitor_drift(
    storage: Storage,
    database_url: str | None,
    thresholds: DriftThresholds,
    *,
    window: Window = "day",
    model_name: str | None = None,
    model_version: str | None = None,
    since: datetime | None = None,
    reference_photos: int = 500,
) -> DriftResult:
    """Build the drift report and write it to `monitoring/drift/<time>/report.{json,md}`.

    Args:
        storage: the storage holding the registry and the dataset versions.
        database_url: the API's prediction log (None: `MUSHROOM_DATABASE_URL` or the default).
        thresholds: when a window counts as drifted.
        window: hour, day or week.
        model_name: registry name (default: the newest logged answer's model).
        model_version: the bundle to compare with (default: the newest logged one, or champion).
        since: ignore answers before this time.
        reference_photos: most test photos to run through the model for the reference.

    Returns:
        The report, its Markdown and the storage keys written.
    """
    predictions = read_predictions(storage, database_url, since)
    name, version = served_model(storage, predictions, model_name, model_version)
    reference = load_reference(storage, name, version, reference_photos)
    now = datetime.now(UTC)
    report = analyse(predictions, reference, thresholds, window, now=now)
    markdown = render_markdown(report)
    prefix = f"{DRIFT_PREFIX}/{now:%Y%m%dT%H%M%S%fZ}"
    json_key, markdown_key = f"{prefix}/report.json", f"{prefix}/report.md"
    storage.write_text(json_key, report.model_dump_json(indent=2) + "\n", "application/json")
    storage.write_text(markdown_key, markdown, "text/markdown")
    logger.info(
        "%d answers in %d %s windows; drift: %s; report in %s",
        len(predictions),
        len(report.windows),
        window,
        "yes" if report.drift else "no",
        storage.uri_for(markdown_key),
    )
    return DriftResult(report, markdown, json_key, markdown_key)
