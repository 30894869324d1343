"""Phase 2: the top blocks and the head fine-tuned on cached trunk outputs, with learning without
forgetting for a detector that shares the top."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from mushroom_training.config import TrainConfig
from mushroom_training.metrics import softmax
from mushroom_training.model import Network, set_top_trainable
from mushroom_training.session import (
    balanced_weights,
    categorical_loss,
    fit,
    one_hot,
    predict,
    soft_target_loss,
)

logger = logging.getLogger(__name__)


@dataclass
class PhaseTwoViews:
    """What phase 2 trains on: cached trunk outputs (`fine_tune_top`) or uint8 photos
    (`fine_tune_top_on_fresh_views`), and their species indices."""

    inputs: np.ndarray
    labels: np.ndarray


def fine_tune_top(
    network: Network,
    train: PhaseTwoViews,
    val: PhaseTwoViews,
    num_classes: int,
    config: TrainConfig,
    callbacks: list[keras.callbacks.Callback],
) -> None:
    """Phase 2: the top blocks and the head at a lower learning rate, batch norm frozen.

    When the detector shares the top (no frozen copy), the ImageNet head's answers on the frozen
    blocks are distilled into the moving ones, so the served model stays one backbone.
    """
    batch = config.data.batch_size
    train_weights = balanced_weights(train.labels, num_classes, config)
    train_targets = {"species": one_hot(train.labels, num_classes)}
    val_targets = {"species": one_hot(val.labels, num_classes)}
    distil = keeps_shared_detector(network, config)
    if distil:
        # What the ImageNet head says on the frozen blocks, before they move.
        t = config.training.detector_distillation_temperature
        train_targets["imagenet"] = imagenet_soft_targets(network, train.inputs, t, batch)
        val_targets["imagenet"] = imagenet_soft_targets(network, val.inputs, t, batch)
    set_top_trainable(network, True)
    trunk_out = keras.Input(train.inputs.shape[1:])
    top_features = network.top(trunk_out)
    outputs = {"species": keras.layers.Identity(name="species")(network.head(top_features))}
    if distil:
        outputs["imagenet"] = imagenet_logits(network, top_features)
    phase2 = keras.Model(trunk_out, outputs)
    compile_phase2(
        phase2,
        config,
        ("imagenet", lambda soft, logits: soft_target_loss(soft, logits, t)) if distil else None,
    )
    train_set, val_set = (train.inputs, train_targets, train_weights), (val.inputs, val_targets)
    fit(phase2, train_set, val_set, config.training.phase2_epochs, config, callbacks, "phase 2")
    set_top_trainable(network, False)


def keeps_shared_detector(network: Network, config: TrainConfig) -> bool:
    """Whether phase 2 distils the ImageNet head's answers (the detector reads the moving top)."""
    return (
        network.imagenet_head is not None
        and network.detector_top is None
        and config.training.detector_distillation > 0
    )


def imagenet_logits(network: Network, top_features: Any) -> Any:
    """The ImageNet head's logits on the top's feature maps."""
    assert network.imagenet_head is not None
    pooled_top = keras.layers.GlobalAveragePooling2D(name="imagenet_pool")(top_features)
    return keras.layers.Identity(name="imagenet")(network.imagenet_head(pooled_top))


def imagenet_soft_targets(
    network: Network, trunk_maps: np.ndarray, t: float, batch: int
) -> np.ndarray:
    """ImageNet probabilities of the current top on cached trunk outputs, softened at the
    distillation temperature `t` (not the bundle's calibration, which belongs to the runtime)."""
    trunk_out = keras.Input(trunk_maps.shape[1:])
    model = keras.Model(trunk_out, imagenet_logits(network, network.top(trunk_out)))
    return softmax(predict(model, trunk_maps, batch), t).astype(np.float32)


def compile_phase2(
    model: keras.Model, config: TrainConfig, distillation: tuple[str, Any] | None
) -> None:
    """Species cross-entropy, plus, for a shared detector, learning without forgetting on the
    frozen ImageNet head (the output named in `distillation`, with its loss): the fine-tuned
    blocks must keep answering like ImageNet's, or the shared detector drifts."""
    training = config.training
    losses: dict[str, Any] = {"species": categorical_loss(config)}
    weights = {"species": 1.0}
    if distillation is not None:
        name, loss = distillation
        losses[name], weights[name] = loss, training.detector_distillation
    model.compile(
        optimizer=keras.optimizers.AdamW(
            training.phase2_learning_rate, weight_decay=training.weight_decay
        ),
        loss=losses,
        loss_weights=weights,
        metrics={"species": [keras.metrics.CategoricalAccuracy(name="accuracy")]},
    )
