"""The reference for drift monitoring: the served model's confidences on its test split.

Taken from the bundle's evaluation report when it lists per-photo confidences; otherwise computed
by running the bundle's serving TFLite model with LiteRT on the dataset version's test split, the
way the API does (upright RGB, one bilinear resize, softmax of logits / temperature). The result
is cached in storage under `monitoring/reference/<name>/<version>.json`.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from mushroom_common.bundle import (
    CHAMPION_FILE,
    METADATA_FILE,
    BundleMetadata,
    ChampionPointer,
    bundle_prefix,
    verify_bundle,
)
from mushroom_common.dataset import read_manifest
from mushroom_common.storage import ObjectNotFoundError, Storage
from mushroom_pipeline.drift import Reference
from mushroom_training.preprocess import photo_to_input

logger = logging.getLogger(__name__)

REFERENCE_PREFIX = "monitoring/reference"
REPORT_CANDIDATES = ("report.json", "report/report.json", "evaluation/report.json")
PER_PHOTO_KEYS = ("test_predictions", "per_photo", "predictions")


class ReferenceError(RuntimeError):
    """No reference distribution can be made (no served model, no test photos)."""


def champion_version(storage: Storage, name: str) -> str:
    """The version `models/<name>/champion.json` points at."""
    try:
        pointer = ChampionPointer.model_validate_json(
            storage.read_bytes(f"models/{name}/{CHAMPION_FILE}")
        )
    except ObjectNotFoundError as exc:
        raise ReferenceError(f"model {name!r} has no champion in {storage.uri}") from exc
    return pointer.version


def read_bundle_metadata(storage: Storage, name: str, version: str) -> BundleMetadata:
    """A registry bundle's metadata."""
    key = f"{bundle_prefix(name, version)}/{METADATA_FILE}"
    try:
        return BundleMetadata.model_validate_json(storage.read_bytes(key))
    except ObjectNotFoundError as exc:
        raise ReferenceError(f"bundle {name}/{version} has no {METADATA_FILE}") from exc


def _confidences_from_report(report: Any) -> list[float] | None:
    """Per-photo top-1 confidences, when the report lists them."""
    if not isinstance(report, dict):
        return None
    for key in PER_PHOTO_KEYS:
        rows = report.get(key)
        if isinstance(rows, list) and rows and all(isinstance(r, dict) for r in rows):
            values = [r.get("confidence", r.get("top_probability")) for r in rows]
            if all(isinstance(v, int | float) for v in values):
                return [float(v) for v in values]
    return None


def _softmax_max(logits: npt.NDArray[np.float64], temperature: float) -> float:
    scaled = logits / temperature
    scaled -= scaled.max()
    exp = np.exp(scaled)
    return float((exp / exp.sum()).max())


def _dequantized(interpreter: Any, detail: dict[str, Any]) -> npt.NDArray[np.float64]:
    raw = np.asarray(interpreter.get_tensor(detail["index"]))
    if raw.dtype in (np.int8, np.uint8):
        scale, zero_point = detail["quantization"]
        dequantized: npt.NDArray[np.float64] = (raw.astype(np.float64) - zero_point) * scale
        return dequantized
    return raw.astype(np.float64)


def _output_details(
    outputs: list[dict[str, Any]], metadata: BundleMetadata
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Logits ([1, labels]) and mushroom score ([1, 1]) outputs, matched by shape like the API."""
    n = len(metadata.labels)
    shapes = [tuple(int(d) for d in np.asarray(o["shape"]).reshape(-1)) for o in outputs]
    logits_at = [i for i, s in enumerate(shapes) if s == (1, n)]
    if not logits_at:
        raise ReferenceError(f"the model has no [1, {n}] logits output (outputs: {shapes})")
    logits_pos = logits_at[0]
    if metadata.mushroom_detector is None:
        return outputs[logits_pos], None
    scores = [i for i, s in enumerate(shapes) if s == (1, 1) and i != logits_pos]
    return outputs[logits_pos], (outputs[scores[0]] if scores else None)


def run_tflite_reference(
    storage: Storage, metadata: BundleMetadata, max_photos: int
) -> tuple[list[float], list[float]]:
    """Run the serving TFLite variant on (up to max_photos of) the test split.

    Returns:
        (confidences, mushroom scores); the scores are empty without a detector.
    """
    from ai_edge_litert.interpreter import Interpreter

    variant = metadata.variant()
    if variant.format != "tflite":
        raise ReferenceError(f"serving variant {variant.name} is not a TFLite model")
    rows = [r for r in read_manifest(storage, metadata.dataset_version) if r.split == "test"]
    if not rows:
        raise ReferenceError(f"dataset version {metadata.dataset_version} has no test photos")
    rows = rows[:max_photos]
    prefix = bundle_prefix(metadata.name, metadata.version)
    with tempfile.TemporaryDirectory(prefix="mushroom-reference-") as tmp:
        bundle_dir = Path(tmp)
        storage.download_file(f"{prefix}/{variant.path}", bundle_dir / variant.path)
        if metadata.files:
            verify_bundle(bundle_dir, metadata, [variant.path])
        interpreter = Interpreter(model_path=str(bundle_dir / variant.path), num_threads=1)
        interpreter.allocate_tensors()
        input_index = int(interpreter.get_input_details()[0]["index"])
        logits_out, score_out = _output_details(interpreter.get_output_details(), metadata)
        confidences: list[float] = []
        scores: list[float] = []
        height, width = metadata.input.height, metadata.input.width
        for row in rows:
            pixels = photo_to_input(storage.read_bytes(row.image_key), height, width)
            interpreter.set_tensor(input_index, pixels[np.newaxis, ...])
            interpreter.invoke()
            logits = _dequantized(interpreter, logits_out)[0]
            confidences.append(_softmax_max(logits, metadata.temperature))
            if score_out is not None:
                raw = float(_dequantized(interpreter, score_out).reshape(-1)[0])
                scores.append(min(max(raw, 0.0), 1.0))
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
    metadata = read_bundle_metadata(storage, name, version)
    detector = metadata.mushroom_detector
    confidences: list[float] | None = None
    source = "bundle_report"
    for candidate in REPORT_CANDIDATES:
        key = f"{bundle_prefix(name, version)}/{candidate}"
        if storage.exists(key):
            confidences = _confidences_from_report(storage.read_json(key))
            if confidences:
                break
    scores: list[float] = []
    if not confidences:
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
