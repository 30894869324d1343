"""The served model bundle: a local cache of registry bundles and the hot swap.

Reading the registry (champion pointer, metadata, verified downloads) is mushroom_common.registry;
this module decides what to serve:
- the champion, downloaded once into the cache (source "registry");
- at startup only, when the champion cannot be read or served: the last champion this cache
  served (source "cache"), else the demo bundle (source "demo_fallback"), with the reason kept
  for /readyz;
- the demo bundle when the registry truly has no champion at startup (source "demo_fallback").
A reload never replaces a served model by a fallback: when the registry cannot be read, its
pointer is corrupt or the new bundle cannot be served, the served model stays and reload raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from mushroom_api.config import Settings
from mushroom_api.services import metrics
from mushroom_api.services.classifier import Classifier, ModelLoadError
from mushroom_common.bundle import (
    METADATA_FILE,
    BundleIntegrityError,
    BundleMetadata,
    ChampionPointer,
    read_metadata,
    verify_bundle,
)
from mushroom_common.catalog import Catalog
from mushroom_common.registry import (
    BundleNotFoundError,
    InvalidBundleError,
    InvalidIdentifierError,
    InvalidPointerError,
    ModelRegistry,
    RegistryError,
    RegistryUnavailableError,
)

logger = logging.getLogger(__name__)

Source = Literal["registry", "cache", "demo_fallback"]
# The last champion this cache served, so a restart during an outage serves it again.
LAST_SERVED_FILE = "last-served.json"


class NoModelError(RuntimeError):
    """Neither a champion nor the fallback bundle can be served."""


class ReloadRefusedError(RuntimeError):
    """A reload that keeps the served model: the registry or the new bundle is not usable.

    Attributes:
        reason: a short code for the metric (registry_unavailable, invalid_pointer, ...).
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class BundleLocation:
    """A local bundle folder ready to load."""

    bundle_dir: Path
    metadata: BundleMetadata
    uri: str
    source: Source


def _check_servable(metadata: BundleMetadata) -> None:
    variant = metadata.variant()
    if variant.format != "tflite":
        raise ModelLoadError(f"serving variant {variant.name} is {variant.format}, not tflite")


def _verified(bundle_dir: Path, metadata: BundleMetadata, path: str) -> bool:
    try:
        verify_bundle(bundle_dir, metadata, [path])
    except BundleIntegrityError:
        return False
    return True


def fetch_champion(
    registry: ModelRegistry, pointer: ChampionPointer, cache_dir: Path
) -> BundleLocation:
    """The champion's metadata and serving file in the cache, downloaded when missing."""
    metadata = registry.metadata(pointer.name, pointer.version)
    _check_servable(metadata)
    variant = metadata.variant()
    target = cache_dir / pointer.name / pointer.version
    if not _verified(target, metadata, variant.path):
        (cache_dir / pointer.name).mkdir(parents=True, exist_ok=True)
        # A private staging folder: several processes may share the cache.
        staging = Path(
            tempfile.mkdtemp(prefix=f".{pointer.version}-", dir=cache_dir / pointer.name)
        )
        try:
            registry.download(pointer.name, pointer.version, staging, [variant.path])
            if not _verified(target, metadata, variant.path):
                shutil.rmtree(target, ignore_errors=True)
                with contextlib.suppress(OSError):  # another process may have just put it there
                    staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        verify_bundle(target, metadata, [variant.path])
    logger.info("champion %s/%s ready at %s", pointer.name, pointer.version, target)
    return BundleLocation(
        target, metadata, registry.bundle_uri(pointer.name, pointer.version), "registry"
    )


def local_bundle(bundle_dir: Path, source: Source) -> BundleLocation:
    """A verified bundle folder on disk (the demo model, or a cached champion)."""
    metadata = read_metadata(bundle_dir)
    _check_servable(metadata)
    if metadata.files:
        verify_bundle(bundle_dir, metadata, [metadata.variant().path])
    return BundleLocation(bundle_dir, metadata, bundle_dir.as_uri(), source)


def _remember_served(location: BundleLocation) -> None:
    """Note the served champion in the cache (best effort: the cache may be read-only)."""
    pointer = location.bundle_dir.parent / LAST_SERVED_FILE
    try:
        pointer.write_text(location.metadata.version, "utf-8")
    except OSError as exc:
        logger.warning("cannot note the served champion in %s: %s", pointer, exc)


def cached_champion(settings: Settings) -> BundleLocation | None:
    """The champion this cache served last, else the newest intact bundle in the cache.

    When the registry cannot be read, the last downloaded champion is still a better answer
    than the demo model; a cache filled by another process (no note of what was served) still
    counts, newest first.
    """
    folder = settings.model_cache_dir / settings.model_name
    try:
        version = (folder / LAST_SERVED_FILE).read_text("utf-8").strip()
        return local_bundle(folder / version, "cache")
    except (OSError, ValueError, KeyError, ModelLoadError) as exc:
        logger.info("no noted champion in %s: %s", folder, exc)
    candidates: list[BundleLocation] = []
    for candidate in sorted(folder.iterdir()) if folder.is_dir() else []:
        if candidate.name.startswith(".") or not (candidate / METADATA_FILE).is_file():
            continue
        try:
            candidates.append(local_bundle(candidate, "cache"))
        except (OSError, ValueError, KeyError, ModelLoadError) as exc:
            logger.warning("cached bundle %s is not usable: %s", candidate.name, exc)
    if not candidates:
        return None
    return max(candidates, key=lambda location: location.metadata.created_at)


def demo_bundle(settings: Settings) -> BundleLocation:
    """The fallback (demo) bundle."""
    fallback = settings.fallback_bundle_dir
    if not (fallback / METADATA_FILE).is_file():
        raise NoModelError(f"no bundle at {fallback}")
    try:
        return local_bundle(fallback, "demo_fallback")
    except (ValidationError, BundleIntegrityError, KeyError, OSError, ModelLoadError) as exc:
        raise NoModelError(f"the fallback bundle at {fallback} is not usable: {exc}") from exc


def load_classifier(location: BundleLocation, settings: Settings, catalog: Catalog) -> Classifier:
    """Load a located bundle fully (every interpreter, one warm-up call)."""
    unknown = [label for label in location.metadata.labels if label not in catalog]
    if unknown:
        raise ModelLoadError(f"labels not in the species catalog: {', '.join(unknown)}")
    return Classifier(
        location.metadata,
        location.bundle_dir,
        pool_size=settings.interpreter_pool_size,
        num_threads=settings.interpreter_threads,
        source=location.uri,
    )


class ModelHolder:
    """The served classifier; replaced atomically by `reload`.

    Requests take the current reference once and keep it, so a swap never changes the model
    under an in-flight request, and nobody sees a half-loaded one: the new classifier is fully
    loaded before the single reference assignment.
    """

    def __init__(self, settings: Settings, registry: ModelRegistry, catalog: Catalog) -> None:
        self.settings = settings
        self.registry = registry
        self.catalog = catalog
        self.current: Classifier | None = None
        self.source: Source | None = None
        # Why the served model is not the registry's champion (None when it is, or when the
        # registry has no champion at all); /readyz shows it.
        self.degraded_reason: str | None = None
        self.last_error: str | None = None
        self._reload_lock = threading.Lock()

    def reload(self) -> Classifier:
        """Serve the registry's champion; at first start fall back to the cache or demo.

        Raises:
            ReloadRefusedError: a model is served and the champion cannot replace it (it stays).
            NoModelError: nothing is served and nothing can be.
        """
        with self._reload_lock:
            try:
                classifier = self._reload()
            except (ReloadRefusedError, NoModelError) as exc:
                self.last_error = str(exc)
                metrics.MODEL_RELOADS.labels(outcome="failed").inc()
                reason = exc.reason if isinstance(exc, ReloadRefusedError) else "no_model"
                metrics.MODEL_RELOAD_FAILURES.labels(reason=reason).inc()
                logger.error("reload failed (%s): %s", reason, exc)
                raise
            metrics.MODEL_RELOADS.labels(outcome="ok").inc()
            return classifier

    def _reload(self) -> Classifier:
        current = self.current
        try:
            pointer = self.registry.champion(self.settings.model_name)
            if pointer is not None:
                if (
                    current is not None
                    and self.source == "registry"
                    and (current.metadata.name, current.metadata.version)
                    == (pointer.name, pointer.version)
                ):
                    if _verified(
                        current.bundle_dir, current.metadata, current.metadata.variant().path
                    ):
                        return current
                    # The cached copy was damaged after it loaded (/explain and phones read it
                    # again): download it again and serve a fresh load of it.
                    logger.warning(
                        "the cached champion %s/%s is damaged: downloading it again",
                        pointer.name,
                        pointer.version,
                    )
                location = fetch_champion(self.registry, pointer, self.settings.model_cache_dir)
                classifier = self._load(location)
                _remember_served(location)
                return self._swap(classifier, location.source, None)
        except (
            RegistryError,
            ModelLoadError,
            BundleIntegrityError,
            ValidationError,
            KeyError,
            OSError,
        ) as exc:
            code, sentence = _reason(exc)
            if current is not None:
                raise ReloadRefusedError(f"{sentence} ({exc}).", code) from exc
            logger.error("%s: %s", sentence, exc)
            location = cached_champion(self.settings) or demo_bundle(self.settings)
            label = "last cached champion" if location.source == "cache" else "demo"
            degraded = f"{sentence}, so the {label} model is served"
            return self._swap(self._load_fallback(location), location.source, degraded)
        # The registry has no champion: the demo model, but only when nothing is served yet.
        if current is None:
            location = demo_bundle(self.settings)
            return self._swap(self._load_fallback(location), location.source, None)
        if self.source == "demo_fallback":
            return current
        raise ReloadRefusedError(
            f"The registry has no champion for {self.settings.model_name}.", "no_champion"
        )

    def _load_fallback(self, location: BundleLocation) -> Classifier:
        try:
            return self._load(location)
        except ModelLoadError as exc:
            raise NoModelError(
                f"the fallback bundle at {location.uri} cannot be served: {exc}"
            ) from exc

    def _load(self, location: BundleLocation) -> Classifier:
        return load_classifier(location, self.settings, self.catalog)

    def _swap(self, classifier: Classifier, source: Source, degraded: str | None) -> Classifier:
        previous, self.current = self.current, classifier
        self.source = source
        self.degraded_reason = degraded
        self.last_error = None
        # The previous classifier is not shut down: requests that hold it may still submit
        # work; its threads exit when the last reference goes.
        if previous is not None and previous is not classifier:
            logger.info(
                "now serving %s/%s (was %s/%s)",
                classifier.metadata.name,
                classifier.metadata.version,
                previous.metadata.name,
                previous.metadata.version,
            )
        return classifier

    def champion_changed(self) -> bool:
        """Whether the registry's champion differs from what is served (raises when unreadable)."""
        pointer = self.registry.champion(self.settings.model_name)
        current = self.current
        if pointer is None:
            return current is None
        if current is None or self.source != "registry":
            return True
        return (pointer.name, pointer.version) != (current.metadata.name, current.metadata.version)

    async def watch(self, interval_s: float) -> None:
        """Poll the champion pointer and reload when it changes (runs until cancelled).

        No error ends the loop: a failed poll or reload is logged and counted, and the next
        poll tries again, so later promotions still load.
        """
        while True:
            await asyncio.sleep(interval_s)
            try:
                if await asyncio.to_thread(self.champion_changed):
                    await asyncio.to_thread(self.reload)
            except (ReloadRefusedError, NoModelError) as exc:
                logger.error("model watcher could not reload: %s", exc)
            except RegistryError as exc:
                metrics.MODEL_WATCH_ERRORS.labels(kind=type(exc).__name__).inc()
                logger.error("model watcher cannot read the registry: %s", exc)
            except Exception as exc:  # the watcher must outlive any failure
                metrics.MODEL_WATCH_ERRORS.labels(kind=type(exc).__name__).inc()
                logger.exception("model watcher failed unexpectedly; it keeps polling")


def _reason(exc: Exception) -> tuple[str, str]:
    """A metric code and a public sentence (no URIs or paths) on why the champion is unusable."""
    if isinstance(exc, RegistryUnavailableError):
        return "registry_unavailable", "The model registry cannot be read right now"
    if isinstance(exc, InvalidPointerError | InvalidIdentifierError):
        return "invalid_pointer", "The registry's champion pointer is not valid"
    if isinstance(exc, BundleNotFoundError):
        return "bundle_missing", "The champion's bundle is not in the registry"
    if isinstance(exc, InvalidBundleError | BundleIntegrityError | ValidationError):
        return "bundle_damaged", "The champion's bundle is damaged"
    return "load_failed", "The champion cannot be loaded"
