"""The model registry in storage: the only code that builds `models/...` keys.

Layout (see docs/contracts.md):

    models/<name>/<version>/metadata.json   BundleMetadata
    models/<name>/<version>/<files...>      the bundle's model files, report, plots
    models/<name>/champion.json             ChampionPointer: the version the API serves
    models/<name>/promotions.jsonl          PromotionEvent per line, oldest first

Every name and version is checked as an identifier where it enters (an argument, a pointer read
back from storage), so no text from storage can turn into a path outside `models/<name>/`.
A champion pointer that is absent means "no champion"; one that cannot be read (storage outage)
or that is corrupt raises, so a caller never mistakes an outage for an empty registry.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from mushroom_common.bundle import (
    METADATA_FILE,
    BundleIntegrityError,
    BundleMetadata,
    ChampionPointer,
    PromotionEvent,
    check_identifier,
    check_relative_path,
    read_metadata,
    verify_bundle,
)
from mushroom_common.storage import ObjectNotFoundError, Storage, StorageError

logger = logging.getLogger(__name__)

MODELS_PREFIX = "models"
CHAMPION_FILE = "champion.json"
PROMOTIONS_FILE = "promotions.jsonl"


class RegistryError(RuntimeError):
    """Base class of registry failures."""


class InvalidIdentifierError(RegistryError, ValueError):
    """A model name or version that is not a plain identifier (e.g. contains '..' or '/')."""


class RegistryUnavailableError(RegistryError):
    """The registry's storage cannot be read or written right now (outage, credentials)."""


class InvalidPointerError(RegistryError):
    """`champion.json` exists but is not a valid pointer (corrupt JSON, invalid version)."""


class BundleNotFoundError(RegistryError):
    """The registry has no such bundle version (no metadata.json)."""


class InvalidBundleError(RegistryError):
    """A stored bundle's metadata is corrupt or its files do not match their hashes."""


def _identifier(value: str, what: str) -> str:
    try:
        return check_identifier(value, what)
    except ValueError as exc:
        raise InvalidIdentifierError(str(exc)) from None


class ModelRegistry:
    """Typed access to the bundles, champion pointers and promotion history in one storage.

    Args:
        storage: the storage root holding `models/`.
    """

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    # ------------------------------------------------------------------ keys (the only ones)

    def _model_prefix(self, name: str) -> str:
        return f"{MODELS_PREFIX}/{_identifier(name, 'model name')}"

    def bundle_prefix(self, name: str, version: str) -> str:
        """Storage prefix of a bundle version: `models/<name>/<version>`."""
        return f"{self._model_prefix(name)}/{_identifier(version, 'version')}"

    def bundle_uri(self, name: str, version: str) -> str:
        """Full `file://` or `gs://` URI of a bundle version's folder."""
        return self.storage.uri_for(self.bundle_prefix(name, version))

    # ------------------------------------------------------------------ reading

    def champion(self, name: str) -> ChampionPointer | None:
        """The champion pointer of a model name; None only when no pointer exists.

        Raises:
            InvalidIdentifierError: the name is not an identifier.
            RegistryUnavailableError: storage cannot be read.
            InvalidPointerError: the pointer is corrupt, names another model or an invalid
                version.
        """
        key = f"{self._model_prefix(name)}/{CHAMPION_FILE}"
        try:
            data = self.storage.read_bytes(key)
        except ObjectNotFoundError:
            return None
        except StorageError as exc:
            raise RegistryUnavailableError(
                f"the champion of {name} cannot be read from {self.storage.uri}: {exc}"
            ) from exc
        try:
            pointer = ChampionPointer.model_validate_json(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first.get("loc", ())) or "the file"
            raise InvalidPointerError(
                f"the champion pointer of {name} is not valid ({where}: {first.get('msg')})"
            ) from None
        if pointer.name != name:
            raise InvalidPointerError(
                f"the champion pointer of {name} names another model ({pointer.name!r})"
            )
        return pointer

    def metadata(self, name: str, version: str) -> BundleMetadata:
        """A stored bundle's metadata.

        Raises:
            BundleNotFoundError: no such version.
            InvalidBundleError: the metadata is corrupt or names another bundle.
            RegistryUnavailableError: storage cannot be read.
        """
        key = f"{self.bundle_prefix(name, version)}/{METADATA_FILE}"
        try:
            data = self.storage.read_bytes(key)
        except ObjectNotFoundError:
            raise BundleNotFoundError(f"the registry has no bundle {name}/{version}") from None
        except StorageError as exc:
            raise RegistryUnavailableError(
                f"bundle {name}/{version} cannot be read from {self.storage.uri}: {exc}"
            ) from exc
        try:
            metadata = BundleMetadata.model_validate_json(data)
        except ValidationError as exc:
            raise InvalidBundleError(
                f"the metadata of bundle {name}/{version} is not valid: {exc.errors()[0]['msg']}"
            ) from None
        if (metadata.name, metadata.version) != (name, version):
            raise InvalidBundleError(
                f"the metadata under {name}/{version} describes {metadata.name}/{metadata.version}"
            )
        return metadata

    def has_version(self, name: str, version: str) -> bool:
        """Whether the bundle version exists (its metadata.json is stored)."""
        key = f"{self.bundle_prefix(name, version)}/{METADATA_FILE}"
        try:
            return self.storage.exists(key)
        except StorageError as exc:
            raise RegistryUnavailableError(f"the registry cannot be read: {exc}") from exc

    def versions(self, name: str) -> list[str]:
        """Versions of a model name that have metadata, sorted (oldest first for our versions)."""
        prefix = f"{self._model_prefix(name)}/"
        suffix = f"/{METADATA_FILE}"
        found = []
        for key in self._list(prefix):
            rest = key[len(prefix) :]
            if rest.endswith(suffix) and rest.count("/") == 1:
                version = rest[: -len(suffix)]
                with contextlib.suppress(InvalidIdentifierError):
                    found.append(_identifier(version, "version"))
        return sorted(found)

    def names(self) -> list[str]:
        """Every model name in the registry."""
        names = set()
        for key in self._list(f"{MODELS_PREFIX}/"):
            parts = key.split("/")
            if len(parts) >= 3:
                with contextlib.suppress(InvalidIdentifierError):
                    names.add(_identifier(parts[1], "model name"))
        return sorted(names)

    def history(self, name: str) -> list[PromotionEvent]:
        """Every promotion attempt of a model name, oldest first."""
        key = f"{self._model_prefix(name)}/{PROMOTIONS_FILE}"
        try:
            text = self.storage.read_text(key)
        except ObjectNotFoundError:
            return []
        except StorageError as exc:
            raise RegistryUnavailableError(f"the promotion history cannot be read: {exc}") from exc
        return [PromotionEvent.model_validate_json(line) for line in text.splitlines() if line]

    def download(
        self, name: str, version: str, target: Path, paths: list[str] | None = None
    ) -> BundleMetadata:
        """Copy a bundle version into a local folder and check the files' sha256.

        Args:
            name: model name.
            version: bundle version.
            target: local folder (created; files already there are overwritten).
            paths: bundle files to copy besides metadata.json (default: the whole folder).

        Returns:
            The bundle's metadata (`target/metadata.json` is written too).

        Raises:
            InvalidBundleError: a file is missing or does not match its recorded hash.
        """
        metadata = self.metadata(name, version)
        prefix = self.bundle_prefix(name, version)
        wanted = [f.path for f in metadata.files] if paths is None else paths
        target.mkdir(parents=True, exist_ok=True)
        try:
            if paths is None:
                # The whole folder, files written after the hashes (rules.json) included.
                self.storage.download_tree(prefix, target)
            else:
                for rel in wanted:
                    check_relative_path(rel)
                    self.storage.download_file(f"{prefix}/{rel}", target / rel)
                (target / METADATA_FILE).write_text(
                    metadata.model_dump_json(indent=2) + "\n", "utf-8"
                )
        except ObjectNotFoundError as exc:
            raise InvalidBundleError(f"bundle {name}/{version} lacks a file: {exc}") from exc
        except StorageError as exc:
            raise RegistryUnavailableError(
                f"bundle {name}/{version} cannot be downloaded: {exc}"
            ) from exc
        if metadata.files:
            try:
                verify_bundle(target, metadata, wanted)
            except BundleIntegrityError as exc:
                raise InvalidBundleError(f"bundle {name}/{version}: {exc}") from exc
        return metadata

    # ------------------------------------------------------------------ writing

    def publish(self, bundle_dir: Path) -> str:
        """Upload a local bundle folder under its metadata's name and version.

        Returns:
            The URI of the stored bundle.
        """
        metadata = read_metadata(bundle_dir)
        prefix = self.bundle_prefix(metadata.name, metadata.version)
        try:
            self.storage.upload_tree(bundle_dir, prefix)
        except StorageError as exc:
            raise RegistryUnavailableError(f"bundle cannot be uploaded: {exc}") from exc
        return self.storage.uri_for(prefix)

    def set_champion(
        self, name: str, version: str, reason: str, promoted_at: datetime | None = None
    ) -> ChampionPointer:
        """Point the champion of a model name at an existing version (no rule: see training)."""
        if not self.has_version(name, version):
            raise BundleNotFoundError(f"the registry has no bundle {name}/{version}")
        pointer = ChampionPointer(
            name=name, version=version, promoted_at=promoted_at or datetime.now(UTC), reason=reason
        )
        key = f"{self._model_prefix(name)}/{CHAMPION_FILE}"
        try:
            self.storage.write_text(
                key, pointer.model_dump_json(indent=2) + "\n", "application/json"
            )
        except StorageError as exc:
            raise RegistryUnavailableError(f"the champion cannot be written: {exc}") from exc
        logger.info("%s/%s is the champion (%s)", name, version, reason)
        return pointer

    def record_promotion(self, event: PromotionEvent) -> None:
        """Append one promotion attempt to the model name's history."""
        key = f"{self._model_prefix(event.name)}/{PROMOTIONS_FILE}"
        try:
            try:
                existing = self.storage.read_text(key)
            except ObjectNotFoundError:
                existing = ""
            self.storage.write_text(
                key, existing + event.model_dump_json() + "\n", "application/x-ndjson"
            )
        except StorageError as exc:
            raise RegistryUnavailableError(f"the promotion cannot be recorded: {exc}") from exc

    def _list(self, prefix: str) -> list[str]:
        try:
            return self.storage.list(prefix)
        except StorageError as exc:
            raise RegistryUnavailableError(f"the registry cannot be listed: {exc}") from exc
