"""Phase 1: a species layer trained on the pooled features of the frozen backbone."""

from __future__ import annotations

import logging
from typing import Any

import keras
import numpy as np

from mushroom_common.catalog import load_catalog
from mushroom_training.config import TrainConfig
from mushroom_training.features import HeadData
from mushroom_training.session import (
    TrainingSession,
    balanced_weights,
    categorical_loss,
    fit,
    one_hot,
)

logger = logging.getLogger(__name__)


def genus_indices(labels: list[str]) -> tuple[list[str], np.ndarray]:
    """The genera of the labels (sorted) and each label's genus index."""
    catalog = load_catalog()
    genus_of = [catalog.get(label).genus for label in labels]
    genera = sorted(set(genus_of))
    return genera, np.array([genera.index(g) for g in genus_of], np.int64)


def fresh_head(num_classes: int, config: TrainConfig, name: str) -> tuple[Any, Any]:
    """A new species layer and its dropout, named for the study that trains them."""
    return (
        keras.layers.Dense(num_classes, name=f"{name}_logits", dtype="float32"),
        keras.layers.Dropout(config.model.dropout, name=f"{name}_dropout"),
    )


def fit_head(
    session: TrainingSession,
    head: tuple[keras.layers.Dense, keras.layers.Layer],
    data: HeadData,
    labels: list[str],
    phase: str = "phase1",
    genus_loss_weight: float | None = None,
) -> None:
    """Train a species layer (dense, dropout) on pooled features, optionally with the auxiliary
    genus loss.

    The genus head shares the features and is trained jointly (FungiCLEF 2024's winning recipe
    used a genus-level auxiliary loss); it is dropped afterwards, only the dense layer is kept.
    """
    config = session.config
    dense, dropout = head
    weight = config.model.genus_loss_weight if genus_loss_weight is None else genus_loss_weight
    num_classes = len(labels)
    train_weights = balanced_weights(data.train_labels, num_classes, config)
    inputs = keras.Input(data.train.shape[1:])
    features = dropout(inputs)
    species = keras.layers.Identity(name="species")(dense(features))
    y_train: Any = one_hot(data.train_labels, num_classes)
    y_val: Any = one_hot(data.val_labels, num_classes)
    optimizer = keras.optimizers.AdamW(
        config.training.phase1_learning_rate, weight_decay=config.training.weight_decay
    )
    if weight > 0:
        genera, genus_of = genus_indices(labels)
        genus = keras.layers.Dense(len(genera), name="genus")(features)
        model = keras.Model(inputs, {"species": species, "genus": genus})
        y_train = {"species": y_train, "genus": one_hot(genus_of[data.train_labels], len(genera))}
        y_val = {"species": y_val, "genus": one_hot(genus_of[data.val_labels], len(genera))}
        model.compile(
            optimizer=optimizer,
            loss={"species": categorical_loss(config), "genus": categorical_loss(config)},
            loss_weights={"species": 1.0, "genus": weight},
        )
    else:
        model = keras.Model(inputs, species)
        model.compile(optimizer=optimizer, loss=categorical_loss(config))
    train_set, val_set = (data.train, y_train, train_weights), (data.val, y_val)
    epochs, callbacks = config.training.phase1_epochs, [session.epoch_logger(phase)]
    fit(model, train_set, val_set, epochs, config, callbacks, f"{phase} head")
