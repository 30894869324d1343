"""The distillation student: a truncated Lite0 trunk at a lower resolution with a small head,
trained on the teacher's softened answers."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from mushroom_training import efficientnet_lite as lite
from mushroom_training.config import TrainConfig
from mushroom_training.features import CachedSplits
from mushroom_training.metrics import fit_temperature, softmax
from mushroom_training.session import TrainingSession, fit, one_hot, predict, soft_target_loss

logger = logging.getLogger(__name__)


@dataclass
class StudentOutcome:
    """The trained student's logits on val and test and its fitted temperature."""

    val_logits: np.ndarray
    test_logits: np.ndarray
    temperature: float


def build_student(
    config: TrainConfig, num_classes: int, cache_dir: Path
) -> tuple[keras.Model, keras.Model]:
    """The distillation student: a truncated, frozen Lite0 trunk at a lower resolution and a small
    trainable head. Returns (trunk, head)."""
    student = config.student
    trunk = lite.build_trunk(student.blocks, student.image_size)
    trunk.name = "student_trunk"
    if config.model.weights == "imagenet":
        lite.load_imagenet_weights([trunk], cache_dir)
    trunk.trainable = False
    inputs = keras.Input(trunk.output_shape[1:], name="student_features")
    x = keras.layers.Conv2D(256, 1, use_bias=False, name="student_conv")(inputs)
    x = keras.layers.BatchNormalization(name="student_bn")(x)
    x = keras.layers.ReLU(6.0, name="student_relu6")(x)
    x = keras.layers.GlobalAveragePooling2D(name="student_pool")(x)
    x = keras.layers.Dropout(config.model.dropout, name="student_dropout")(x)
    logits = keras.layers.Dense(num_classes, name="student_logits", dtype="float32")(x)
    return trunk, keras.Model(inputs, logits, name="student_head")


def assemble_student(
    trunk: keras.Model,
    head: keras.Model,
    image_size: int,
    input_dtype: str = "uint8",
    batch_size: int | None = None,
) -> keras.Model:
    """Student: RGB pixels at the bundle's input size -> {"logits"} (resized inside)."""
    pixels = keras.Input(
        (image_size, image_size, 3), batch_size=batch_size, dtype=input_dtype, name="pixels"
    )
    x = keras.layers.Identity(name="as_float")(keras.ops.cast(pixels, "float32"))
    size = int(trunk.input_shape[1])
    if size != image_size:
        x = keras.layers.Resizing(size, size, interpolation="bilinear", name="student_resize")(x)
    logits = head(trunk(lite.preprocessing_layer("student_scale")(x)))
    return keras.Model(
        pixels, {"logits": keras.layers.Identity(name="logits")(logits)}, name="student"
    )


def distill(
    session: TrainingSession,
    head: keras.Model,
    cached: CachedSplits,
    teacher_train: np.ndarray,
    teacher_val: np.ndarray,
    num_classes: int,
) -> StudentOutcome:
    """Train the student head on the cached student trunk outputs against the hard labels and the
    teacher's logits softened at the student temperature, then calibrate it on val."""
    config = session.config
    t, alpha = config.student.temperature, config.student.alpha
    train, val, test = cached.train, cached.val, cached.test

    def soft(logits: np.ndarray) -> np.ndarray:
        return softmax(logits, t).astype(np.float32)

    def loss(y_true: Any, y_pred: Any) -> Any:
        hard, soft_target = y_true[:, :num_classes], y_true[:, num_classes:]
        ce = keras.losses.categorical_crossentropy(hard, y_pred, from_logits=True)
        return alpha * soft_target_loss(soft_target, y_pred, t) + (1 - alpha) * ce

    assert train.student is not None
    assert val.student is not None
    assert test.student is not None
    y_train = np.concatenate([one_hot(train.labels, num_classes), soft(teacher_train)], axis=1)
    y_val = np.concatenate([one_hot(val.labels, num_classes), soft(teacher_val)], axis=1)
    head.compile(
        optimizer=keras.optimizers.AdamW(
            config.student.learning_rate, weight_decay=config.training.weight_decay
        ),
        loss=loss,
        metrics=[],
    )
    train_set, val_set = (train.student, y_train, None), (val.student, y_val)
    callbacks = [session.epoch_logger("student")]
    fit(head, train_set, val_set, config.student.epochs, config, callbacks, "distillation")
    val_logits = predict(head, val.student, session.batch_size)
    test_logits = predict(head, test.student, session.batch_size)
    return StudentOutcome(val_logits, test_logits, fit_temperature(val_logits, val.labels))
