"""The studies of a training run: the open-set run and the ablations (genus loss, resolution and
JPEG degradation), each a head trained on the same cached features as the served one."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from mushroom_training.data import LoadedDataset
from mushroom_training.features import CachedSplits, HeadData, dense_logits, extract, pooled
from mushroom_training.model import Network
from mushroom_training.phase1 import fit_head, fresh_head, genus_indices
from mushroom_training.session import TrainingSession
from mushroom_training.studies.open_set_run import open_set_run


def _top1(logits: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(logits.argmax(axis=1) == labels))


def _genus_top1(logits: np.ndarray, labels: np.ndarray, species: list[str]) -> float:
    _, genus_of = genus_indices(species)
    return float(np.mean(genus_of[logits.argmax(axis=1)] == genus_of[labels]))


def _genus_loss_study(
    session: TrainingSession, labels: list[str], cached: CachedSplits
) -> tuple[dict[str, Any], np.ndarray]:
    """Top-1 and genus top-1 of a head without and with the auxiliary genus loss."""
    config, test_labels = session.config, cached.test.labels
    without_head = fresh_head(len(labels), config, "no_genus")
    fit_head(session, without_head, cached.head_data, labels, "no_genus", 0.0)
    with_head = fresh_head(len(labels), config, "with_genus")
    fit_head(session, with_head, cached.head_data, labels, "with_genus")
    without = dense_logits(without_head[0], cached.test_pooled)
    with_genus = dense_logits(with_head[0], cached.test_pooled)
    return {
        "weight": config.model.genus_loss_weight,
        "without": {
            "top1": _top1(without, test_labels),
            "genus_top1": _genus_top1(without, test_labels, labels),
        },
        "with": {
            "top1": _top1(with_genus, test_labels),
            "genus_top1": _genus_top1(with_genus, test_labels, labels),
        },
    }, without


def _no_degradation_logits(
    session: TrainingSession,
    network: Network,
    extractor: keras.Model,
    dataset: LoadedDataset,
    cached: CachedSplits,
) -> np.ndarray:
    """Test logits of a head trained on train views without the resolution/JPEG degradation."""
    plain = session.config.model_copy(deep=True)
    plain.data.min_resolution = 0
    plain.data.jpeg_quality_min = 0
    split = dataset.splits["train"]
    plain_features = extract(extractor, split.images, split.labels, plain, cached.train_views)
    plain_data = HeadData(
        pooled(network, plain_features.teacher, session.batch_size),
        plain_features.labels,
        cached.head_data.val,
        cached.head_data.val_labels,
    )
    head = fresh_head(len(dataset.labels), session.config, "no_degradation")
    fit_head(session, head, plain_data, dataset.labels, "no_degradation")
    return dense_logits(head[0], cached.test_pooled)


def run_studies(
    session: TrainingSession,
    network: Network,
    extractor: keras.Model,
    dataset: LoadedDataset,
    cached: CachedSplits,
) -> dict[str, Any]:
    """The open-set run and the ablations, each a head trained on the same cached features.

    Returns:
        JSON-ready results for run.json and the report.
    """
    config = session.config
    studies: dict[str, Any] = {"test_labels": cached.test.labels.tolist()}
    if config.open_set.holdout_fraction > 0:
        studies["open_set"] = open_set_run(session, dataset, cached)
    if not config.training.ablations:
        return studies
    if config.model.genus_loss_weight > 0:
        studies["genus_loss"], without = _genus_loss_study(session, dataset.labels, cached)
        studies["test_logits_no_genus"] = without.tolist()
    if config.data.min_resolution > 0 or config.data.jpeg_quality_min > 0:
        no_degradation = _no_degradation_logits(session, network, extractor, dataset, cached)
        studies["test_logits_no_degradation"] = no_degradation.tolist()
    return studies
