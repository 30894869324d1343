"""Phase 2 on fresh views: a new augmented view of every photo at every draw, so the fixed cached
views cannot be memorised (`training.phase2_views: fresh`)."""

from __future__ import annotations

import logging
import time
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from mushroom_training import efficientnet_lite as lite
from mushroom_training.config import TrainConfig
from mushroom_training.data import fresh_view_dataset
from mushroom_training.model import Network, set_top_trainable
from mushroom_training.phase2 import (
    PhaseTwoViews,
    compile_phase2,
    imagenet_logits,
    keeps_shared_detector,
)
from mushroom_training.session import balanced_weights, early_stopping, soft_target_loss

logger = logging.getLogger(__name__)


def _distillation_kl(
    network: Network, config: TrainConfig, trunk_maps: Any, top_features: Any
) -> Any:
    """Each view's KL between the ImageNet answers of a frozen copy of the top and of the moving
    top, as a model output (so both see the same fresh view)."""
    assert network.imagenet_head is not None
    size = network.image_size
    first_top = lite.NUM_BLOCKS - config.model.fine_tune_blocks
    teacher_top = lite.build_top(first_top, size, name="distillation_teacher_top")
    teacher_top.set_weights(network.top.get_weights())
    teacher_top.trainable = False
    teacher_pool = keras.layers.GlobalAveragePooling2D(name="teacher_pool")
    teacher = network.imagenet_head(teacher_pool(teacher_top(trunk_maps)))
    student = imagenet_logits(network, top_features)
    t = config.training.detector_distillation_temperature
    return keras.layers.Lambda(
        lambda pair: keras.ops.expand_dims(
            soft_target_loss(keras.ops.softmax(pair[0] / t, axis=-1), pair[1], t), -1
        ),
        output_shape=(1,),
        name="imagenet_kl",
    )([teacher, student])


def fine_tune_top_on_fresh_views(
    network: Network,
    train: PhaseTwoViews,
    val: PhaseTwoViews,
    num_classes: int,
    config: TrainConfig,
    callbacks: list[keras.callbacks.Callback],
) -> None:
    """Phase 2 on a fresh augmented view of every photo at every draw (`train.inputs` are uint8
    photos): the frozen trunk runs on each, so it costs a trunk pass per view, but the fixed
    cached views cannot be memorised.

    With a shared detector, a frozen copy of the top gives the ImageNet answers to distil on
    the same views.
    """
    batch = config.data.batch_size
    stream = fresh_view_dataset(
        train.inputs,
        train.labels,
        balanced_weights(train.labels, num_classes, config),
        config.data,
        config.training.seed,
        batch,
    )
    distil = keeps_shared_detector(network, config)
    size = network.image_size
    pixels = keras.Input((size, size, 3), dtype="uint8", name="pixels")
    trunk_maps = network.trunk(network.preprocessing(keras.ops.cast(pixels, "float32")))
    top_features = network.top(trunk_maps)
    outputs = {"species": keras.layers.Identity(name="species")(network.head(top_features))}
    if distil:
        outputs["imagenet_kl"] = _distillation_kl(network, config, trunk_maps, top_features)
    set_top_trainable(network, True)
    phase2 = keras.Model(pixels, outputs)
    # The "imagenet_kl" output already is each view's distillation loss.
    compile_phase2(
        phase2,
        config,
        ("imagenet_kl", lambda _, kl: keras.ops.mean(kl, axis=-1)) if distil else None,
    )

    def targets(labels: Any) -> dict[str, Any]:
        species = {"species": tf.one_hot(labels, num_classes)}
        if not distil:
            return species
        return species | {"imagenet_kl": tf.zeros((tf.shape(labels)[0], 1))}

    stream = stream.map(lambda x, y, *w: (x, targets(y), *w))
    val_targets = {k: np.asarray(v) for k, v in targets(tf.constant(val.labels)).items()}
    started = time.monotonic()
    phase2.fit(
        stream,
        steps_per_epoch=-(-len(train.labels) // batch),
        validation_data=(val.inputs, val_targets),
        validation_batch_size=batch,
        epochs=config.training.phase2_epochs,
        shuffle=False,  # the stream reshuffles itself
        verbose=0,
        callbacks=[early_stopping(config), *callbacks],
    )
    set_top_trainable(network, False)
    logger.info("phase 2 (fresh views) done in %.1f s", time.monotonic() - started)
