"""Starting without the registry: serve the last downloaded champion, else the demo model.

When storage is unreachable at startup the registry is not empty, only out of reach. Refusing to
serve would turn a storage outage into an API outage, so the API serves the newest verified
bundle in its download cache (the champion it served last), or the demo bundle, and /readyz says
which and why. The reload watcher, or POST /admin/reload, moves to the real champion later.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from mushroom_api.services.classifier import Classifier, ModelLoadError
from mushroom_api.services.model_store import (
    BundleLocation,
    ModelHolder,
    NoModelError,
    load_classifier,
    local_bundle,
)
from mushroom_common.bundle import METADATA_FILE, BundleIntegrityError

logger = logging.getLogger(__name__)

_UNUSABLE = (ValidationError, BundleIntegrityError, ModelLoadError, KeyError, OSError)


@dataclass(frozen=True)
class StandIn:
    """A model served because the registry could not be read, and the sentence that says so."""

    classifier: Classifier
    reason: str


def cached_bundles(cache_dir: Path, model_name: str) -> list[BundleLocation]:
    """Verified bundles of `model_name` in the download cache, newest first."""
    folder = cache_dir / model_name
    if not folder.is_dir():
        return []
    found = []
    for candidate in folder.iterdir():
        if candidate.name.startswith(".") or not (candidate / METADATA_FILE).is_file():
            continue
        try:
            found.append(local_bundle(candidate))
        except _UNUSABLE as exc:
            logger.warning("cached bundle %s is not usable: %s", candidate, exc)
    return sorted(found, key=lambda location: location.metadata.created_at, reverse=True)


def serve_without_registry(holder: ModelHolder, reason: str) -> StandIn | None:
    """Serve the newest cached champion, else the fallback bundle, as a stand-in.

    Args:
        holder: the model holder whose `current` is still None.
        reason: why the registry could not be read (logged; never shown to the public).

    Returns:
        The stand-in now in `holder.current`, or None when no model could be loaded.
    """
    settings = holder.settings
    candidates = cached_bundles(settings.model_cache_dir, settings.model_name)
    what = "the last downloaded champion"
    if not candidates:
        try:
            candidates = [local_bundle(settings.fallback_bundle_dir)]
        except _UNUSABLE as exc:
            logger.error("the fallback bundle is not usable either: %s", exc)
            return None
        what = "the demo model"
    for location in candidates:
        try:
            classifier = load_classifier(location, settings, holder.catalog)
        except (*_UNUSABLE, NoModelError) as exc:
            logger.error("cannot serve %s: %s", location.source, exc)
            continue
        holder.current = classifier
        sentence = (
            f"The model registry is unreachable, so {what} ({location.metadata.name}/"
            f"{location.metadata.version}) is served until it answers."
        )
        logger.warning("%s (%s)", sentence, reason)
        return StandIn(classifier, sentence)
    return None
