"""The rules file and model file the phone downloads for on-device identification."""

from __future__ import annotations

import threading
from pathlib import Path

from mushroom_api.services.classifier import Classifier
from mushroom_api.services.model_files import ModelFileDamagedError
from mushroom_common.bundle import sha256_file
from mushroom_common.catalog import Catalog
from mushroom_common.rules_export import RulesDocument, build_rules_document
from mushroom_common.verdict import VerdictRules

_lock = threading.Lock()
_hashes: dict[tuple[str, str, str], str] = {}


def model_sha256(classifier: Classifier) -> str:
    """The served model file's sha256: the bundle's record, else hashed once per model."""
    metadata = classifier.metadata
    key = (metadata.name, metadata.version, str(classifier.model_path))
    with _lock:
        known = _hashes.get(key)
    if known is not None:
        return known
    path = metadata.variant().path
    recorded = next((f.sha256 for f in metadata.files if f.path == path), None)
    digest = recorded or sha256_file(classifier.model_path)
    with _lock:
        _hashes[key] = digest
    return digest


def phone_rules(classifier: Classifier, catalog: Catalog, rules: VerdictRules) -> RulesDocument:
    """The rules document of the served model, with the thresholds the API applies."""
    return build_rules_document(
        classifier.metadata, catalog, model_sha256=model_sha256(classifier), rules=rules
    )


_verified: dict[Path, tuple[int, int, int]] = {}


def model_file(classifier: Classifier, sha256: str) -> Path | None:
    """The served model file when `sha256` names it; None for any other (older) model.

    The file is hashed again whenever it changed on disk since it was last found intact (it is
    served as immutable: damaged bytes would stay in phones for good).

    Raises:
        ModelFileDamagedError: the file on disk no longer has that sha256.
    """
    if sha256 != model_sha256(classifier):
        return None
    path = classifier.model_path
    try:
        found = path.stat()
    except OSError as exc:
        raise ModelFileDamagedError(f"{path.name} is missing") from exc
    signature = (found.st_ino, found.st_size, found.st_mtime_ns)
    with _lock:
        if _verified.get(path) == signature:
            return path
    if sha256_file(path) != sha256:
        raise ModelFileDamagedError(f"{path.name} does not match its sha256")
    with _lock:
        _verified[path] = signature
    return path
