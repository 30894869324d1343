"""The open-set run: a head trained without some species, to measure how well the unknown-species
scores tell their photos from the known species'."""

from __future__ import annotations

from typing import Any

import numpy as np

from mushroom_training.data import LoadedDataset
from mushroom_training.features import CachedSplits, HeadData, dense_logits
from mushroom_training.open_set import choose_held_out, evaluate_open_set, known_label_index
from mushroom_training.phase1 import fit_head, fresh_head
from mushroom_training.session import TrainingSession


def open_set_run(
    session: TrainingSession, dataset: LoadedDataset, cached: CachedSplits
) -> dict[str, Any]:
    """Train a head without the left-out species and measure the unknown-species scores."""
    settings = session.config.open_set
    head_data, test_pooled, test_labels = cached.head_data, cached.test_pooled, cached.test.labels
    labels = dataset.labels
    held_out = choose_held_out(
        labels, settings.holdout_fraction, settings.min_dangerous, settings.seed
    )
    known = [label for label in labels if label not in held_out]
    remap = known_label_index(labels, held_out)

    def keep(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mask = remap[y] >= 0
        return x[mask], remap[y[mask]]

    train_x, train_y = keep(head_data.train, head_data.train_labels)
    val_x, val_y = keep(head_data.val, head_data.val_labels)
    test_x, test_y = keep(test_pooled, test_labels)
    # Every photo of a left-out species is unknown to this head: train (original view only),
    # val and test. View 0 of every train photo comes first in the cached views.
    n_train = len(dataset.splits["train"])
    unknown = np.concatenate(
        [
            head_data.train[:n_train][remap[head_data.train_labels[:n_train]] < 0],
            head_data.val[remap[head_data.val_labels] < 0],
            test_pooled[remap[test_labels] < 0],
        ]
    )
    dense, dropout = fresh_head(len(known), session.config, "open_set")
    fit_head(session, (dense, dropout), HeadData(train_x, train_y, val_x, val_y), known, "open_set")
    result = evaluate_open_set(
        held_out=held_out,
        val_logits=dense_logits(dense, val_x),
        known_test_logits=dense_logits(dense, test_x),
        known_test_labels=test_y,
        unknown_logits=dense_logits(dense, unknown),
        embeddings={"train": train_x, "known_test": test_x, "unknown": unknown},
        train_labels=train_y,
        known_pass_rate=settings.known_pass_rate,
    )
    session.tracker.log_metrics({f"open_set/auroc_{k}": v for k, v in result.auroc.items()})
    return result.model_dump(mode="json")
