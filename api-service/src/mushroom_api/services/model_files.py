"""The served model's file on disk, checked against its bundle's sha256 before any route reads it
again (an /explain copy, the phone's download)."""

from __future__ import annotations

from pathlib import Path

from mushroom_api.services.classifier import ModelLoadError
from mushroom_common.bundle import BundleIntegrityError, BundleMetadata, verify_bundle


class ModelFileDamagedError(ModelLoadError):
    """The model file on disk no longer matches the sha256 its bundle records."""


def verify_model_file(metadata: BundleMetadata, bundle_dir: Path) -> None:
    """Check the serving file against its recorded sha256 (bundles that record none pass).

    Raises:
        ModelFileDamagedError: the file is missing or its bytes changed.
    """
    if not metadata.files:
        return
    try:
        verify_bundle(bundle_dir, metadata, [metadata.variant().path])
    except BundleIntegrityError as exc:
        raise ModelFileDamagedError(str(exc)) from exc
