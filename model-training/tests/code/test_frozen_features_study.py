"""The frozen-features study: label suspects, heads, mixup and danger scores (the real data
runs only from the command line)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from mushroom_common.catalog import load_catalog
from mushroom_training.config import TrainConfig
from mushroom_training.metrics import top_k_accuracy
from mushroom_training.studies.frozen_features import (
    PooledSplits,
    danger_score_aurocs,
    label_suspects,
    logits_of,
    mixed_pairs,
    per_species_subset,
    train_head,
)


def test_a_photo_is_suspect_only_when_its_label_is_unlikely_and_a_rival_is_likely() -> None:
    out_of_fold = np.array(
        [
            [0.01, 0.90, 0.09],  # labelled 0, the heads say 1: suspect
            [0.01, 0.50, 0.49],  # labelled 0, no rival over half: kept
            [0.30, 0.60, 0.10],  # labelled 0 with 30%: kept
            [0.00, 0.95, 0.05],  # labelled 1 and agreed: kept
        ]
    )
    suspects = label_suspects(out_of_fold, np.array([0, 0, 0, 1]), own_below=0.05)
    assert suspects.tolist() == [True, False, False, False]


def test_a_head_learns_separable_features_and_top_k_counts_hits() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 40)
    features = np.eye(3)[labels] * 4 + rng.normal(0, 0.3, (120, 3))
    config = TrainConfig.model_validate({"data": {"dataset_version": "ds-x"}})
    head = train_head(features.astype(np.float32), labels, 3, config, epochs=150, hidden=8)
    logits = logits_of(head, features.astype(np.float32))
    assert top_k_accuracy(logits, labels, 1) > 0.95
    assert top_k_accuracy(logits, labels, 3) == 1.0


def test_mixup_mixes_each_example_with_a_partner_of_its_batch() -> None:
    x = tf.constant([[0.0, 0.0], [10.0, 10.0], [0.0, 10.0], [10.0, 0.0]])
    y = tf.constant(np.eye(4, dtype=np.float32))
    mixed_x, mixed_y = (np.asarray(t) for t in mixed_pairs(x, y, alpha=0.4))
    # Targets stay distributions over at most two photos; features stay between theirs.
    assert np.allclose(mixed_y.sum(axis=1), 1.0)
    assert ((mixed_y > 1e-6).sum(axis=1) <= 2).all()
    assert (mixed_x >= 0).all()
    assert (mixed_x <= 10).all()
    # The features are the same mixture of the same photos as the targets.
    assert np.allclose(mixed_y @ np.asarray(x), mixed_x, atol=1e-4)


def test_a_mixup_head_still_learns_separable_features() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 40)
    features = (np.eye(3)[labels] * 4 + rng.normal(0, 0.3, (120, 3))).astype(np.float32)
    config = TrainConfig.model_validate({"data": {"dataset_version": "ds-x"}})
    head = train_head(features, labels, 3, config, epochs=400, mixup_alpha=0.2)
    assert top_k_accuracy(logits_of(head, features), labels, 1) > 0.95


def test_danger_scores_rank_dangerous_photos_first_when_species_are_separable() -> None:
    catalog = load_catalog()
    dangerous = [e.id for e in catalog.species if e.edibility.is_dangerous][:2]
    harmless = [e.id for e in catalog.species if e.edibility.is_edible][:2]
    species = dangerous + harmless
    rng = np.random.default_rng(1)

    def split(per_species: int) -> tuple[np.ndarray, np.ndarray]:
        labels = np.repeat(np.arange(4), per_species)
        return (np.eye(4)[labels] * 4 + rng.normal(0, 0.3, (len(labels), 4))).astype(
            np.float32
        ), labels

    (train_x, train_y), (test_x, test_y) = split(30), split(10)
    config = TrainConfig.model_validate({"data": {"dataset_version": "ds-x"}})
    pooled = PooledSplits(
        {"train": train_x, "test": test_x}, {"train": train_y, "test": test_y}, species
    )
    aurocs = danger_score_aurocs(pooled, config, epochs=150)
    assert set(aurocs) == {
        "summed dangerous species probability (served)",
        "binary deadly-or-poisonous head",
        "mean of the two",
    }
    assert all(value > 0.95 for value in aurocs.values())


def test_a_learning_curve_subset_keeps_the_fraction_of_every_species_and_at_least_one() -> None:
    labels = np.array([0] * 8 + [1] * 4 + [2])
    keep = per_species_subset(labels, 0.5, seed=3)
    assert [int(keep[labels == s].sum()) for s in (0, 1, 2)] == [4, 2, 1]
    assert per_species_subset(labels, 0.5, seed=3).tolist() == keep.tolist()  # deterministic
    assert per_species_subset(labels, 1.0, seed=3).all()
