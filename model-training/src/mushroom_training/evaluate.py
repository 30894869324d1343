"""Evaluating bundle variants (TFLite, as served) on a dataset version's split.

Every variant runs through mushroom_common.runtime, the code the API serves with, calibrated
with the variant's own temperature: what evaluation measures is what is served.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mushroom_common.bundle import BundleMetadata, read_metadata
from mushroom_common.dataset import read_manifest
from mushroom_common.runtime import BundleRuntime
from mushroom_common.storage import Storage
from mushroom_training.config import DataConfig
from mushroom_training.data import SplitData, load_dataset
from mushroom_training.metrics import classification_metrics

logger = logging.getLogger(__name__)

_MISSING = -1e9


# The exporter puts the mushroom score at this output (mushroom_common.bundle's contract).
SCORE_OUTPUT = 1


@dataclass
class VariantOutputs:
    """A variant's outputs on a split: raw logits, calibrated probabilities, mushroom scores."""

    logits: np.ndarray
    probabilities: np.ndarray
    scores: np.ndarray | None
    temperature: float


def metrics_for(
    logits: np.ndarray, model_labels: list[str], true_species: list[str], temperature: float
) -> dict[str, float]:
    """Metrics of model logits against true species ids, in the union of both label sets.

    Photos of species the model does not know count as errors; this lets two models with
    different label sets be compared on the same split.
    """
    union = sorted(set(model_labels) | set(true_species))
    index = {species: i for i, species in enumerate(union)}
    expanded = np.full((len(logits), len(union)), _MISSING, np.float64)
    expanded[:, [index[s] for s in model_labels]] = logits
    labels = np.array([index[s] for s in true_species], np.int64)
    return classification_metrics(expanded, labels, union, temperature)


def _outputs(runtime: BundleRuntime, images: np.ndarray) -> VariantOutputs:
    batch = runtime.run_batch(images)
    return VariantOutputs(
        batch.logits, batch.probabilities, batch.mushroom_scores, runtime.temperature
    )


def run_variant(
    model_path: Path,
    labels: list[str],
    size: int,
    temperature: float,
    images: np.ndarray,
    threads: int = 2,
) -> VariantOutputs:
    """Run a TFLite model whose bundle metadata is not written yet (the exporter's case)."""
    runtime = BundleRuntime(
        model_path,
        labels=labels,
        input_size=(size, size),
        temperature=temperature,
        score_output=SCORE_OUTPUT,
        num_threads=threads,
    )
    return _outputs(runtime, images)


def run_bundle_variant(
    bundle_dir: Path,
    metadata: BundleMetadata,
    variant: str,
    images: np.ndarray,
    threads: int = 2,
) -> VariantOutputs:
    """Run one variant of a bundle on uint8 photos, one at a time, as the API serves it."""
    return _outputs(
        BundleRuntime.for_variant(bundle_dir, metadata, variant, num_threads=threads), images
    )


def evaluate_bundle(
    bundle_dir: Path,
    storage: Storage,
    dataset_version: str | None = None,
    split: str = "test",
    variants: list[str] | None = None,
) -> dict[str, dict[str, float]]:
    """Evaluate a local bundle's TFLite variants on a dataset version's split.

    Args:
        bundle_dir: a bundle folder (metadata.json and the model files).
        storage: where the dataset version lives.
        dataset_version: the version (default: the bundle's own).
        split: "train", "val" or "test".
        variants: variant names (default: every TFLite variant).

    Returns:
        Variant name -> metrics.
    """
    metadata = read_metadata(bundle_dir)
    data = load_split(storage, metadata, dataset_version or metadata.dataset_version, split)
    results: dict[str, dict[str, float]] = {}
    for variant in metadata.variants:
        if variant.format != "tflite" or (variants and variant.name not in variants):
            continue
        outputs = run_bundle_variant(bundle_dir, metadata, variant.name, data.images)
        results[variant.name] = metrics_for(
            outputs.logits, metadata.labels, data.species, outputs.temperature
        )
        logger.info("%s on %s: %s", variant.name, split, results[variant.name])
    return results


def load_split(
    storage: Storage, metadata: BundleMetadata, dataset_version: str, split: str
) -> SplitData:
    """One split of a dataset version at the bundle's input size, every species kept."""
    config = DataConfig(dataset_version=dataset_version, image_size=metadata.input.height)
    # Every species of the version, so photos of species the model does not know stay in.
    species = sorted({row.species for row in read_manifest(storage, dataset_version)})
    dataset = load_dataset(storage, config, species, splits=(split,))
    return dataset.splits[split]
