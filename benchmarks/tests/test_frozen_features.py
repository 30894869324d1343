"""frozen_features.py: label suspects and heads (the real data runs only as a script)."""

from __future__ import annotations

import numpy as np
from frozen_features import label_suspects, logits_of, train_head

from mushroom_training.config import TrainConfig
from mushroom_training.metrics import top_k_accuracy


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
