"""Finding, downloading, verifying and swapping the served model bundle."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from mushroom_api.config import Settings
from mushroom_api.services.classifier import Classifier, ModelLoadError
from mushroom_common.bundle import (
    CHAMPION_FILE,
    METADATA_FILE,
    MODELS_PREFIX,
    BundleIntegrityError,
    BundleMetadata,
    ChampionPointer,
    bundle_prefix,
    read_metadata,
    verify_bundle,
)
from mushroom_common.catalog import Catalog
from mushroom_common.storage import ObjectNotFoundError, Storage, StorageError

logger = logging.getLogger(__name__)


class NoModelError(RuntimeError):
    """Neither a champion nor the fallback bundle can be served."""


@dataclass(frozen=True)
class BundleLocation:
    """A local bundle folder ready to load."""

    bundle_dir: Path
    metadata: BundleMetadata
    source: str


def champion_key(model_name: str) -> str:
    """Storage key of a model name's champion pointer."""
    return f"{MODELS_PREFIX}/{model_name}/{CHAMPION_FILE}"


def read_champion(storage: Storage, model_name: str) -> ChampionPointer | None:
    """The champion pointer, or None when the registry has none (or cannot be read)."""
    try:
        return ChampionPointer.model_validate(storage.read_json(champion_key(model_name)))
    except ObjectNotFoundError:
        return None
    except (StorageError, ValidationError, ValueError) as exc:
        logger.warning("cannot read the champion of %s: %s", model_name, exc)
        return None


def fetch_champion(storage: Storage, pointer: ChampionPointer, cache_dir: Path) -> BundleLocation:
    """Download the champion's metadata and serving file into the cache and verify them."""
    prefix = bundle_prefix(pointer.name, pointer.version)
    metadata = BundleMetadata.model_validate_json(storage.read_bytes(f"{prefix}/{METADATA_FILE}"))
    variant = metadata.variant()
    if variant.format != "tflite":
        raise ModelLoadError(f"serving variant {variant.name} is {variant.format}, not tflite")
    target = cache_dir / pointer.name / pointer.version
    target_file = target / variant.path
    if not _verified(target, metadata, variant.path):
        (cache_dir / pointer.name).mkdir(parents=True, exist_ok=True)
        # A private staging folder: several processes may share the cache.
        staging = Path(
            tempfile.mkdtemp(prefix=f".{pointer.version}-", dir=cache_dir / pointer.name)
        )
        try:
            storage.download_file(f"{prefix}/{variant.path}", staging / variant.path)
            (staging / METADATA_FILE).write_text(metadata.model_dump_json(indent=2), "utf-8")
            verify_bundle(staging, metadata, [variant.path])
            if not _verified(target, metadata, variant.path):
                shutil.rmtree(target, ignore_errors=True)
                with contextlib.suppress(OSError):  # another process may have just put it there
                    staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        verify_bundle(target, metadata, [variant.path])
    logger.info("champion %s/%s ready at %s", pointer.name, pointer.version, target_file)
    return BundleLocation(target, metadata, storage.uri_for(prefix))


def _verified(bundle_dir: Path, metadata: BundleMetadata, path: str) -> bool:
    try:
        verify_bundle(bundle_dir, metadata, [path])
    except BundleIntegrityError:
        return False
    return True


def local_bundle(bundle_dir: Path) -> BundleLocation:
    """A bundle folder on disk (the demo model), verified."""
    metadata = read_metadata(bundle_dir)
    variant = metadata.variant()
    if variant.format != "tflite":
        raise ModelLoadError(f"serving variant {variant.name} is {variant.format}, not tflite")
    if metadata.files:
        verify_bundle(bundle_dir, metadata, [variant.path])
    return BundleLocation(bundle_dir, metadata, bundle_dir.as_uri())


def locate_bundle(
    settings: Settings, storage: Storage, fallback_on_broken_champion: bool = True
) -> BundleLocation:
    """The champion of `settings.model_name`, else the fallback (demo) bundle.

    Args:
        settings: the API settings.
        storage: the storage root holding the registry.
        fallback_on_broken_champion: when a champion exists but cannot be served, use the
            fallback (at startup) instead of raising (on reload, where the served model stays).

    Returns:
        The local bundle to load.
    """
    pointer = read_champion(storage, settings.model_name)
    if pointer is not None:
        try:
            return fetch_champion(storage, pointer, settings.model_cache_dir)
        except (
            StorageError,
            ValidationError,
            BundleIntegrityError,
            ModelLoadError,
            KeyError,
        ) as exc:
            if not fallback_on_broken_champion:
                raise ModelLoadError(
                    f"champion {pointer.name}/{pointer.version} cannot be served: {exc}"
                ) from exc
            logger.error(
                "champion %s/%s cannot be served (%s); using the fallback bundle",
                pointer.name,
                pointer.version,
                exc,
            )
    fallback = settings.fallback_bundle_dir
    if not (fallback / METADATA_FILE).is_file():
        raise NoModelError(
            f"no champion for model {settings.model_name!r} in {storage.uri} and no bundle at "
            f"{fallback}"
        )
    try:
        return local_bundle(fallback)
    except (ValidationError, BundleIntegrityError, KeyError, OSError) as exc:
        raise NoModelError(f"the fallback bundle at {fallback} is not usable: {exc}") from exc


def load_classifier(location: BundleLocation, settings: Settings, catalog: Catalog) -> Classifier:
    """Load a located bundle fully (every interpreter, one warm-up call)."""
    unknown = [label for label in location.metadata.labels if label not in catalog]
    if unknown:
        raise ModelLoadError(f"labels not in the species catalog: {', '.join(unknown)}")
    model_path = location.bundle_dir / location.metadata.variant().path
    return Classifier(
        location.metadata,
        model_path,
        pool_size=settings.interpreter_pool_size,
        num_threads=settings.interpreter_threads,
        source=location.source,
    )


class ModelHolder:
    """The served classifier; replaced atomically by `reload`.

    Requests take the current reference once and keep it, so a swap never changes the model
    under an in-flight request, and nobody sees a half-loaded one: the new classifier is fully
    loaded before the single reference assignment.
    """

    def __init__(self, settings: Settings, storage: Storage, catalog: Catalog) -> None:
        self.settings = settings
        self.storage = storage
        self.catalog = catalog
        self.current: Classifier | None = None
        self.last_error: str | None = None
        self._reload_lock = threading.Lock()

    def reload(self) -> Classifier:
        """Locate and load the champion (or fallback) and swap it in; raise when none loads."""
        with self._reload_lock:
            try:
                current = self.current
                location = locate_bundle(
                    self.settings, self.storage, fallback_on_broken_champion=current is None
                )
                if current is not None and (
                    current.metadata.name,
                    current.metadata.version,
                    current.source,
                ) == (location.metadata.name, location.metadata.version, location.source):
                    return current
                classifier = load_classifier(location, self.settings, self.catalog)
            except (NoModelError, ModelLoadError, StorageError, ValidationError) as exc:
                self.last_error = str(exc)
                raise
            previous, self.current = self.current, classifier
            self.last_error = None
            # The previous classifier is not shut down: requests that hold it may still submit
            # work; its threads exit when the last reference goes.
            if previous is not None:
                logger.info(
                    "now serving %s/%s (was %s/%s)",
                    classifier.metadata.name,
                    classifier.metadata.version,
                    previous.metadata.name,
                    previous.metadata.version,
                )
            return classifier

    def champion_changed(self) -> bool:
        """Whether the registry's champion differs from what is served."""
        pointer = read_champion(self.storage, self.settings.model_name)
        current = self.current
        if pointer is None:
            return current is None
        if current is None:
            return True
        return (pointer.name, pointer.version) != (current.metadata.name, current.metadata.version)

    async def watch(self, interval_s: float) -> None:
        """Poll the champion pointer and reload when it changes (runs until cancelled)."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                if await asyncio.to_thread(self.champion_changed):
                    await asyncio.to_thread(self.reload)
            except (NoModelError, ModelLoadError, StorageError, ValidationError) as exc:
                logger.error("model watcher could not reload: %s", exc)
