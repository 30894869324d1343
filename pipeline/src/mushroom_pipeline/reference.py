"""The reference for drift monitoring: the served model's confidences on its test split.

Computed by running the bundle's serving variant through mushroom_common.runtime (the code the
API serves with) on the dataset version's test split, decoded the way the API does (upright RGB,
one bilinear resize). The result is cached in storage under
`monitoring/reference/<name>/<version>.json`.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from mushroom_common.bundle import BundleMetadata
from mushroom_common.dataset import read_manifest
from mushroom_common.registry import ModelRegistry, RegistryError
from mushroom_common.runtime import BundleRuntime
from mushroom_common.storage import Storage
from mushroom_pipeline.drift import Reference
from mushroom_training.preprocess import photo_to_input

logger = logging.getLogger(__name__)

REFERENCE_PREFIX = "monitoring/reference"


class ReferenceError(RuntimeError):
    """No reference distribution can be made (no served model, no test photos)."""


def champion_version(storage: Storage, name: str) -> str:
    """The registry's champion version of a model name."""
    try:
        pointer = ModelRegistry(storage).champion(name)
    except RegistryError as exc:
        raise ReferenceError(str(exc)) from exc
    if pointer is None:
        raise ReferenceError(f"model {name!r} has no champion in {storage.uri}")
    return pointer.version


def run_tflite_reference(
    storage: Storage, metadata: BundleMetadata, max_photos: int
) -> tuple[list[float], list[float]]:
    """Run the serving variant on (up to max_photos of) the test split, as the API does.

    Returns:
        (top-1 calibrated confidences, mushroom scores); the scores are empty without a detector.
    """
    variant = metadata.variant()
    rows = [r for r in read_manifest(storage, metadata.dataset_version) if r.split == "test"]
    if not rows:
        raise ReferenceError(f"dataset version {metadata.dataset_version} has no test photos")
    rows = rows[:max_photos]
    height, width = metadata.input.height, metadata.input.width
    with tempfile.TemporaryDirectory(prefix="mushroom-reference-") as tmp:
        bundle_dir = Path(tmp)
        try:
            ModelRegistry(storage).download(
                metadata.name, metadata.version, bundle_dir, [variant.path]
            )
            runtime = BundleRuntime.for_variant(bundle_dir, metadata, num_threads=1)
        except (RegistryError, RuntimeError) as exc:
            raise ReferenceError(f"the serving variant cannot be run: {exc}") from exc
        confidences: list[float] = []
        scores: list[float] = []
        for row in rows:
            answer = runtime.run(photo_to_input(storage.read_bytes(row.image_key), height, width))
            confidences.append(float(answer.probabilities.max()))
            if answer.mushroom_score is not None:
                scores.append(answer.mushroom_score)
    return confidences, scores


def load_reference(
    storage: Storage, name: str, version: str | None = None, max_photos: int = 500
) -> Reference:
    """The reference of a bundle (the champion by default), computed once and cached.

    Args:
        storage: the storage holding the registry and the dataset version.
        name: the registry name.
        version: the bundle version; None means the current champion.
        max_photos: most test photos to run through the model.

    Returns:
        The reference distribution.
    """
    version = version or champion_version(storage, name)
    cache_key = f"{REFERENCE_PREFIX}/{name}/{version}.json"
    if storage.exists(cache_key):
        logger.info("reference of %s/%s read from %s", name, version, cache_key)
        return Reference.model_validate_json(storage.read_bytes(cache_key))
    try:
        metadata = ModelRegistry(storage).metadata(name, version)
    except RegistryError as exc:
        raise ReferenceError(str(exc)) from exc
    detector = metadata.mushroom_detector
    source = "tflite_test_split"
    logger.info("computing the reference of %s/%s on its test split with LiteRT", name, version)
    confidences, scores = run_tflite_reference(storage, metadata, max_photos)
    reference = Reference(
        model_name=name,
        model_version=version,
        dataset_version=metadata.dataset_version,
        source=source,
        confidences=confidences,
        mushroom_scores=scores,
        detector_threshold=detector.threshold if detector else None,
    )
    storage.write_text(cache_key, reference.model_dump_json() + "\n", "application/json")
    return reference
