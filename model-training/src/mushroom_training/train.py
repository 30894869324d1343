"""Training: cached trunk features, phase 1 (head), phase 2 (top blocks), temperature, student."""

from __future__ import annotations

import json
import logging
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from pydantic import BaseModel, ConfigDict, Field

from mushroom_common.catalog import load_catalog
from mushroom_common.storage import Storage, open_storage
from mushroom_training import efficientnet_lite as lite
from mushroom_training.config import Settings, TrainConfig, dump_config, get_settings
from mushroom_training.data import (
    LoadedDataset,
    fresh_view_dataset,
    load_dataset,
    view_dataset,
    views_per_photo,
)
from mushroom_training.metrics import classification_metrics, fit_temperature, softmax
from mushroom_training.model import Network, build_network, save_network, set_top_trainable
from mushroom_training.open_set import choose_held_out, evaluate_open_set, known_label_index
from mushroom_training.tracking import Tracker, start_run

logger = logging.getLogger(__name__)

RUN_FILE = "run.json"
CONFIG_FILE = "config.yaml"
WEIGHTS_FILE = "model.weights.h5"
STUDENT_WEIGHTS_FILE = "student.weights.h5"
HISTORY_FILE = "history.json"
PREDICTIONS_FILE = "predictions.npz"


class RunInfo(BaseModel):
    """`run.json`: what a training run produced and from what."""

    model_config = ConfigDict(extra="forbid")

    run_id: str
    run_name: str
    dataset_version: str
    labels: list[str]
    image_size: int
    backbone: str
    weights_loaded: str
    temperature: float
    student_temperature: float | None = None
    git_revision: str
    command: str
    seed: int
    created_at: datetime
    train_seconds: float
    counts: dict[str, int]
    val_metrics: dict[str, float] = Field(default_factory=dict)
    test_metrics: dict[str, float] = Field(default_factory=dict)
    student_test_metrics: dict[str, float] = Field(default_factory=dict)
    studies: dict[str, Any] = Field(
        default_factory=dict,
        description="open-set run and ablations (genus loss, resolution/JPEG degradation)",
    )


@dataclass
class TrainResult:
    """What `train` returns."""

    run_id: str
    run_dir: Path
    metrics: dict[str, float]


def git_revision() -> str:
    """The code's git commit (with '-dirty' when the tree has changes), or 'unknown'."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}-dirty" if dirty else head


def distribution_strategy(name: str) -> tf.distribute.Strategy:
    """The tf.distribute strategy named by the config."""
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


class _EpochLogger(keras.callbacks.Callback):  # type: ignore[misc]  # keras is untyped
    def __init__(self, tracker: Tracker, phase: str, history: dict[str, list[float]]) -> None:
        super().__init__()
        self.tracker = tracker
        self.phase = phase
        self.history = history

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        # A model with several outputs reports its species accuracy as "species_accuracy".
        metrics = {
            f"{self.phase}/{k.replace('species_accuracy', 'accuracy')}": float(v)
            for k, v in (logs or {}).items()
        }
        for key, value in metrics.items():
            self.history.setdefault(key, []).append(value)
        self.tracker.log_metrics(metrics, step=epoch)


@dataclass
class _Features:
    """Trunk outputs of every view (teacher and student) and the labels they belong to."""

    teacher: np.ndarray
    student: np.ndarray | None
    labels: np.ndarray


def _extractor(network: Network, student_trunk: keras.Model | None, size: int) -> keras.Model:
    pixels = keras.Input((size, size, 3), dtype="uint8", name="pixels")
    x = keras.ops.cast(pixels, "float32")
    outputs = [network.trunk(network.preprocessing(x))]
    if student_trunk is not None:
        student_size = int(student_trunk.input_shape[1])
        small = keras.layers.Resizing(student_size, student_size, interpolation="bilinear")(x)
        outputs.append(student_trunk(lite.preprocessing_layer("student_scale")(small)))
    return keras.Model(pixels, outputs, name="extractor")


def _extract(
    extractor: keras.Model,
    images: np.ndarray,
    labels: np.ndarray,
    config: TrainConfig,
    views: np.ndarray,
) -> _Features:
    """Trunk outputs of view v of every photo that has more than v views."""
    teacher: list[np.ndarray] = []
    student: list[np.ndarray] = []
    view_labels: list[np.ndarray] = []
    # One compiled graph: 1.8x the photos per second of eager calls on this CPU (oneDNN fuses
    # the convolutions with their batch norm and activation).
    forward = tf.function(lambda batch: extractor(batch, training=False), reduce_retracing=True)
    for view in range(int(views.max(initial=0))):
        started = time.monotonic()
        chosen = np.flatnonzero(views > view)
        for batch in view_dataset(
            images[chosen], config.data, config.training.seed, view, config.data.batch_size, chosen
        ):
            out = forward(batch)
            if not isinstance(out, list | tuple):  # a one-output model returns the tensor
                out = [out]
            teacher.append(np.asarray(out[0], np.float32))
            if len(out) > 1:
                student.append(np.asarray(out[1], np.float32))
        view_labels.append(labels[chosen])
        logger.info("view %d: %d photos in %.1f s", view, len(chosen), time.monotonic() - started)
    return _Features(
        teacher=np.concatenate(teacher),
        student=np.concatenate(student) if student else None,
        labels=np.concatenate(view_labels),
    )


def _class_weights(labels: np.ndarray, num_classes: int) -> dict[int, float]:
    """Inverse-frequency weights of the training views (mean weight 1 per view)."""
    counts = np.bincount(labels, minlength=num_classes)
    return {i: float(len(labels) / (num_classes * c)) if c else 0.0 for i, c in enumerate(counts)}


def _one_hot(labels: np.ndarray, n: int) -> np.ndarray:
    one_hot: np.ndarray = np.eye(n, dtype=np.float32)[labels]
    return one_hot


def _sample_weights(labels: np.ndarray, weights: dict[int, float] | None) -> np.ndarray | None:
    if weights is None:
        return None
    return np.array([weights[int(i)] for i in labels], np.float32)


def _predict(model: keras.Model, x: np.ndarray, batch_size: int) -> np.ndarray:
    return np.asarray(model.predict(x, batch_size=batch_size, verbose=0), np.float32)


def _fit(
    model: keras.Model,
    train: tuple[np.ndarray, Any, np.ndarray | None],
    val: tuple[np.ndarray, Any],
    epochs: int,
    config: TrainConfig,
    callbacks: list[keras.callbacks.Callback],
) -> None:
    x, y, weights = train
    model.fit(
        x,
        y,
        sample_weight=weights,
        validation_data=val,
        epochs=epochs,
        batch_size=config.data.batch_size,
        shuffle=True,
        verbose=0,
        callbacks=[
            _early_stopping(config),
            *callbacks,
        ],
    )


def _early_stopping(config: TrainConfig) -> keras.callbacks.EarlyStopping:
    return keras.callbacks.EarlyStopping(
        monitor="val_loss",
        patience=config.training.early_stopping_patience,
        restore_best_weights=True,
    )


def _compile(model: keras.Model, lr: float, config: TrainConfig, loss: Any = None) -> None:
    model.compile(
        optimizer=keras.optimizers.AdamW(lr, weight_decay=config.training.weight_decay),
        loss=loss
        or keras.losses.CategoricalCrossentropy(
            from_logits=True, label_smoothing=config.training.label_smoothing
        ),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")] if loss is None else [],
    )


def genus_indices(labels: list[str]) -> tuple[list[str], np.ndarray]:
    """The genera of the labels (sorted) and each label's genus index."""
    catalog = load_catalog()
    genus_of = [catalog.get(label).genus for label in labels]
    genera = sorted(set(genus_of))
    return genera, np.array([genera.index(g) for g in genus_of], np.int64)


@dataclass
class HeadData:
    """Pooled backbone features and labels of the views a head is trained and validated on."""

    train: np.ndarray
    train_labels: np.ndarray
    val: np.ndarray
    val_labels: np.ndarray


def fit_head(
    dense: keras.layers.Dense,
    dropout: keras.layers.Layer,
    data: HeadData,
    labels: list[str],
    config: TrainConfig,
    tracker: Tracker,
    history: dict[str, list[float]],
    phase: str = "phase1",
    genus_loss_weight: float | None = None,
) -> None:
    """Train a species layer on pooled features, optionally with the auxiliary genus loss.

    The genus head shares the features and is trained jointly (FungiCLEF 2024's winning recipe
    used a genus-level auxiliary loss); it is dropped afterwards, only `dense` is kept.
    """
    weight = config.model.genus_loss_weight if genus_loss_weight is None else genus_loss_weight
    num_classes = len(labels)
    weights = _class_weights(data.train_labels, num_classes) if config.data.class_weights else None
    train_weights = _sample_weights(data.train_labels, weights)
    inputs = keras.Input(data.train.shape[1:])
    features = dropout(inputs)
    species = keras.layers.Identity(name="species")(dense(features))
    y_train: Any = _one_hot(data.train_labels, num_classes)
    y_val: Any = _one_hot(data.val_labels, num_classes)
    smoothing = config.training.label_smoothing
    optimizer = keras.optimizers.AdamW(
        config.training.phase1_learning_rate, weight_decay=config.training.weight_decay
    )
    if weight > 0:
        genera, genus_of = genus_indices(labels)
        genus = keras.layers.Dense(len(genera), name="genus")(features)
        model = keras.Model(inputs, {"species": species, "genus": genus})
        y_train = {"species": y_train, "genus": _one_hot(genus_of[data.train_labels], len(genera))}
        y_val = {"species": y_val, "genus": _one_hot(genus_of[data.val_labels], len(genera))}
        model.compile(
            optimizer=optimizer,
            loss={
                "species": keras.losses.CategoricalCrossentropy(
                    from_logits=True, label_smoothing=smoothing
                ),
                "genus": keras.losses.CategoricalCrossentropy(
                    from_logits=True, label_smoothing=smoothing
                ),
            },
            loss_weights={"species": 1.0, "genus": weight},
        )
    else:
        model = keras.Model(inputs, species)
        model.compile(
            optimizer=optimizer,
            loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=smoothing),
        )
    started = time.monotonic()
    _fit(
        model,
        (data.train, y_train, train_weights),
        (data.val, y_val),
        config.training.phase1_epochs,
        config,
        [_EpochLogger(tracker, phase, history)],
    )
    logger.info("%s: head trained in %.1f s", phase, time.monotonic() - started)


def pooled(network: Network, features: np.ndarray, batch_size: int) -> np.ndarray:
    """Global-average-pooled top features (the species head's input) of cached trunk outputs."""
    pool = keras.Sequential([network.top, keras.layers.GlobalAveragePooling2D()])
    return _predict(pool, features, batch_size)


def dense_logits(dense: keras.layers.Dense, pooled_features: np.ndarray) -> np.ndarray:
    """A dense layer's logits in numpy (dropout is off at inference)."""
    kernel, bias = (np.asarray(w, np.float64) for w in dense.get_weights())
    logits: np.ndarray = pooled_features.astype(np.float64) @ kernel + bias
    return logits


def _train_teacher(
    network: Network,
    features: _Features,
    val: _Features,
    dataset: LoadedDataset,
    config: TrainConfig,
    tracker: Tracker,
    history: dict[str, list[float]],
    pooled_views: HeadData | None = None,
) -> None:
    n = len(dataset.labels)
    batch = config.data.batch_size

    # Phase 1: the head on pooled features of the frozen top (GAP is linear: same as the full head).
    data = pooled_views or HeadData(
        pooled(network, features.teacher, batch),
        features.labels,
        pooled(network, val.teacher, batch),
        val.labels,
    )
    fit_head(
        network.head.get_layer("species_logits"),
        network.head.get_layer("head_dropout"),
        data,
        dataset.labels,
        config,
        tracker,
        history,
    )

    if config.model.fine_tune_blocks == 0 or config.training.phase2_epochs == 0:
        return
    if config.training.phase2_views == "fresh":
        train_split, val_split = dataset.splits["train"], dataset.splits["val"]
        fine_tune: Any = fine_tune_top_on_fresh_views
        train = PhaseTwoViews(train_split.images, train_split.labels)
        validation = PhaseTwoViews(val_split.images, val_split.labels)
    else:
        fine_tune = fine_tune_top
        train = PhaseTwoViews(features.teacher, features.labels)
        validation = PhaseTwoViews(val.teacher, val.labels)
    fine_tune(network, train, validation, n, config, [_EpochLogger(tracker, "phase2", history)])


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
    weights = _class_weights(train.labels, num_classes) if config.data.class_weights else None
    train_weights = _sample_weights(train.labels, weights)
    train_targets = {"species": _one_hot(train.labels, num_classes)}
    val_targets = {"species": _one_hot(val.labels, num_classes)}
    distil = _keeps_shared_detector(network, config)
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
        outputs["imagenet"] = _imagenet_logits(network, top_features)
    phase2 = keras.Model(trunk_out, outputs)
    _compile_phase2(
        phase2,
        config,
        ("imagenet", lambda soft, logits: _soft_target_loss(soft, logits, t)) if distil else None,
    )
    started = time.monotonic()
    _fit(
        phase2,
        (train.inputs, train_targets, train_weights),
        (val.inputs, val_targets),
        config.training.phase2_epochs,
        config,
        callbacks,
    )
    set_top_trainable(network, False)
    logger.info("phase 2 done in %.1f s", time.monotonic() - started)


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
    weights = _class_weights(train.labels, num_classes) if config.data.class_weights else None
    stream = fresh_view_dataset(
        train.inputs,
        train.labels,
        _sample_weights(train.labels, weights),
        config.data,
        config.training.seed,
        batch,
    )
    distil = _keeps_shared_detector(network, config)
    size = network.image_size
    pixels = keras.Input((size, size, 3), dtype="uint8", name="pixels")
    trunk_maps = network.trunk(network.preprocessing(keras.ops.cast(pixels, "float32")))
    top_features = network.top(trunk_maps)
    outputs = {"species": keras.layers.Identity(name="species")(network.head(top_features))}
    if distil:
        assert network.imagenet_head is not None
        first_top = lite.NUM_BLOCKS - config.model.fine_tune_blocks
        teacher_top = lite.build_top(first_top, size, name="distillation_teacher_top")
        teacher_top.set_weights(network.top.get_weights())
        teacher_top.trainable = False
        teacher_pool = keras.layers.GlobalAveragePooling2D(name="teacher_pool")
        teacher = network.imagenet_head(teacher_pool(teacher_top(trunk_maps)))
        student = _imagenet_logits(network, top_features)
        t = config.training.detector_distillation_temperature
        outputs["imagenet_kl"] = keras.layers.Lambda(
            lambda pair: keras.ops.expand_dims(
                _soft_target_loss(keras.ops.softmax(pair[0] / t, axis=-1), pair[1], t), -1
            ),
            output_shape=(1,),
            name="imagenet_kl",
        )([teacher, student])
    set_top_trainable(network, True)
    phase2 = keras.Model(pixels, outputs)
    # The "imagenet_kl" output already is each view's distillation loss.
    _compile_phase2(
        phase2,
        config,
        ("imagenet_kl", lambda _, kl: keras.ops.mean(kl, axis=-1)) if distil else None,
    )
    training = config.training

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
        epochs=training.phase2_epochs,
        shuffle=False,  # the stream reshuffles itself
        verbose=0,
        callbacks=[_early_stopping(config), *callbacks],
    )
    set_top_trainable(network, False)
    logger.info("phase 2 (fresh views) done in %.1f s", time.monotonic() - started)


def _keeps_shared_detector(network: Network, config: TrainConfig) -> bool:
    """Whether phase 2 distils the ImageNet head's answers (the detector reads the moving top)."""
    return (
        network.imagenet_head is not None
        and network.detector_top is None
        and config.training.detector_distillation > 0
    )


def _imagenet_logits(network: Network, top_features: Any) -> Any:
    assert network.imagenet_head is not None
    pooled_top = keras.layers.GlobalAveragePooling2D(name="imagenet_pool")(top_features)
    return keras.layers.Identity(name="imagenet")(network.imagenet_head(pooled_top))


def imagenet_soft_targets(
    network: Network, trunk_maps: np.ndarray, t: float, batch: int
) -> np.ndarray:
    """ImageNet probabilities of the current top on cached trunk outputs, softened at the
    distillation temperature `t` (not the bundle's calibration, which belongs to the runtime)."""
    trunk_out = keras.Input(trunk_maps.shape[1:])
    model = keras.Model(trunk_out, _imagenet_logits(network, network.top(trunk_out)))
    return softmax(_predict(model, trunk_maps, batch), t).astype(np.float32)


def _soft_target_loss(soft_target: Any, logits: Any, t: float) -> Any:
    """KL(soft target || softmax(logits / t)), times t^2 so its gradients keep their scale."""
    log_student = keras.ops.log_softmax(logits / t, axis=-1)
    kl = keras.ops.sum(
        soft_target * (keras.ops.log(keras.ops.clip(soft_target, 1e-8, 1.0)) - log_student),
        axis=-1,
    )
    return kl * t * t


def _compile_phase2(
    model: keras.Model, config: TrainConfig, distillation: tuple[str, Any] | None
) -> None:
    """Species cross-entropy, plus, for a shared detector, learning without forgetting on the
    frozen ImageNet head (the output named in `distillation`, with its loss): the fine-tuned
    blocks must keep answering like ImageNet's, or the shared detector drifts."""
    training = config.training
    losses: dict[str, Any] = {
        "species": keras.losses.CategoricalCrossentropy(
            from_logits=True, label_smoothing=training.label_smoothing
        )
    }
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


def _top1(logits: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(logits.argmax(axis=1) == labels))


def _genus_top1(logits: np.ndarray, labels: np.ndarray, species: list[str]) -> float:
    _, genus_of = genus_indices(species)
    return float(np.mean(genus_of[logits.argmax(axis=1)] == genus_of[labels]))


def _fresh_head(num_classes: int, config: TrainConfig, name: str) -> tuple[Any, Any]:
    return (
        keras.layers.Dense(num_classes, name=f"{name}_logits", dtype="float32"),
        keras.layers.Dropout(config.model.dropout, name=f"{name}_dropout"),
    )


def run_studies(
    network: Network,
    extractor: keras.Model,
    head_data: HeadData,
    test_pooled: np.ndarray,
    test_labels: np.ndarray,
    dataset: LoadedDataset,
    train_views: np.ndarray,
    config: TrainConfig,
    tracker: Tracker,
    history: dict[str, list[float]],
) -> dict[str, Any]:
    """The open-set run and the ablations, each a head trained on the same cached features.

    Returns:
        JSON-ready results for run.json and the report.
    """
    labels = dataset.labels
    studies: dict[str, Any] = {"test_labels": test_labels.tolist()}
    if config.open_set.holdout_fraction > 0:
        studies["open_set"] = _open_set_run(
            head_data, test_pooled, test_labels, dataset, config, tracker, history
        )
    if not config.training.ablations:
        return studies
    if config.model.genus_loss_weight > 0:
        dense, dropout = _fresh_head(len(labels), config, "no_genus")
        fit_head(dense, dropout, head_data, labels, config, tracker, history, "no_genus", 0.0)
        dense_g, dropout_g = _fresh_head(len(labels), config, "with_genus")
        fit_head(dense_g, dropout_g, head_data, labels, config, tracker, history, "with_genus")
        without, with_genus = dense_logits(dense, test_pooled), dense_logits(dense_g, test_pooled)
        studies["genus_loss"] = {
            "weight": config.model.genus_loss_weight,
            "without": {
                "top1": _top1(without, test_labels),
                "genus_top1": _genus_top1(without, test_labels, labels),
            },
            "with": {
                "top1": _top1(with_genus, test_labels),
                "genus_top1": _genus_top1(with_genus, test_labels, labels),
            },
        }
        studies["test_logits_no_genus"] = without.tolist()
    data = config.data
    if data.min_resolution > 0 or data.jpeg_quality_min > 0:
        plain = config.model_copy(deep=True)
        plain.data.min_resolution = 0
        plain.data.jpeg_quality_min = 0
        split = dataset.splits["train"]
        plain_features = _extract(extractor, split.images, split.labels, plain, train_views)
        plain_data = HeadData(
            pooled(network, plain_features.teacher, data.batch_size),
            plain_features.labels,
            head_data.val,
            head_data.val_labels,
        )
        dense, dropout = _fresh_head(len(labels), config, "no_degradation")
        fit_head(dense, dropout, plain_data, labels, config, tracker, history, "no_degradation")
        studies["test_logits_no_degradation"] = dense_logits(dense, test_pooled).tolist()
    return studies


def _open_set_run(
    head_data: HeadData,
    test_pooled: np.ndarray,
    test_labels: np.ndarray,
    dataset: LoadedDataset,
    config: TrainConfig,
    tracker: Tracker,
    history: dict[str, list[float]],
) -> dict[str, Any]:
    """Train a head without the left-out species and measure the unknown-species scores."""
    settings = config.open_set
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
    dense, dropout = _fresh_head(len(known), config, "open_set")
    fit_head(
        dense,
        dropout,
        HeadData(train_x, train_y, val_x, val_y),
        known,
        config,
        tracker,
        history,
        "open_set",
    )
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
    tracker.log_metrics({f"open_set/auroc_{k}": v for k, v in result.auroc.items()})
    return result.model_dump(mode="json")


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


def _distill(
    head: keras.Model,
    features: _Features,
    val: _Features,
    teacher_train: np.ndarray,
    teacher_val: np.ndarray,
    num_classes: int,
    config: TrainConfig,
    tracker: Tracker,
    history: dict[str, list[float]],
) -> None:
    t, alpha = config.student.temperature, config.student.alpha

    def soft(logits: np.ndarray) -> np.ndarray:
        return softmax(logits, t).astype(np.float32)

    def loss(y_true: Any, y_pred: Any) -> Any:
        hard, soft_target = y_true[:, :num_classes], y_true[:, num_classes:]
        ce = keras.losses.categorical_crossentropy(hard, y_pred, from_logits=True)
        return alpha * _soft_target_loss(soft_target, y_pred, t) + (1 - alpha) * ce

    assert features.student is not None
    assert val.student is not None
    y_train = np.concatenate([_one_hot(features.labels, num_classes), soft(teacher_train)], axis=1)
    y_val = np.concatenate([_one_hot(val.labels, num_classes), soft(teacher_val)], axis=1)
    _compile(head, config.student.learning_rate, config, loss=loss)
    started = time.monotonic()
    _fit(
        head,
        (features.student, y_train, None),
        (val.student, y_val),
        config.student.epochs,
        config,
        [_EpochLogger(tracker, "student", history)],
    )
    logger.info("distillation done in %.1f s", time.monotonic() - started)


def train(
    config: TrainConfig,
    *,
    storage: Storage | None = None,
    settings: Settings | None = None,
    command: str = "",
) -> TrainResult:
    """Train a classifier on a dataset version and save the run (weights, config, metrics).

    Args:
        config: the run configuration (logged with the run).
        storage: where the dataset version lives (default: `TRAIN_STORAGE_URI` or
            `MUSHROOM_STORAGE_URI`).
        settings: service settings (default: `get_settings()`).
        command: the command line that started the run, recorded for reproduction.

    Returns:
        The tracking run id, the local run folder and the Keras model's test metrics.
    """
    settings = settings or get_settings()
    storage = storage or open_storage(settings.storage_uri)
    started = time.monotonic()
    keras.utils.set_random_seed(config.training.seed)
    if settings.threads:
        tf.config.threading.set_intra_op_parallelism_threads(settings.threads)
    policy = {"off": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}
    keras.mixed_precision.set_dtype_policy(policy[config.training.mixed_precision])
    dataset = load_dataset(storage, config.data)
    n = len(dataset.labels)
    with start_run(storage, settings, config.run_name) as tracker:
        run_dir = settings.runs_dir / tracker.run_id
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / CONFIG_FILE).write_text(dump_config(config), "utf-8")
        tracker.log_params(config.model_dump(mode="json"))
        tracker.set_tags({"dataset_version": dataset.version_id, "git_revision": git_revision()})
        history: dict[str, list[float]] = {}
        strategy = distribution_strategy(config.training.distribution)
        with strategy.scope():
            network = build_network(config, n, settings.weights_cache_dir)
            student_trunk = student_head = None
            if config.student.enabled:
                student_trunk, student_head = build_student(config, n, settings.weights_cache_dir)
            extractor = _extractor(network, student_trunk, config.data.image_size)
            splits = dataset.splits
            data = config.data
            train_views = views_per_photo(
                splits["train"].labels, data.augment_views, data.balance_views, data.max_views
            )
            train_features = _extract(
                extractor, splits["train"].images, splits["train"].labels, config, train_views
            )
            one_view = np.ones(len(splits["val"]), np.int64)
            val = _extract(extractor, splits["val"].images, splits["val"].labels, config, one_view)
            one_view = np.ones(len(splits["test"]), np.int64)
            test = _extract(
                extractor, splits["test"].images, splits["test"].labels, config, one_view
            )
            batch = config.data.batch_size
            head_data = HeadData(
                pooled(network, train_features.teacher, batch),
                train_features.labels,
                pooled(network, val.teacher, batch),
                val.labels,
            )
            test_pooled = pooled(network, test.teacher, batch)
            studies = run_studies(
                network,
                extractor,
                head_data,
                test_pooled,
                test.labels,
                dataset,
                train_views,
                config,
                tracker,
                history,
            )
            _train_teacher(
                network, train_features, val, dataset, config, tracker, history, head_data
            )

            trunk_in = keras.Input(train_features.teacher.shape[1:])
            teacher_logits = keras.Model(trunk_in, network.head(network.top(trunk_in)))
            val_logits = _predict(teacher_logits, val.teacher, config.data.batch_size)
            test_logits = _predict(teacher_logits, test.teacher, config.data.batch_size)
            temperature = fit_temperature(val_logits, val.labels)
            student_val = student_test = None
            student_temperature = None
            if student_head is not None:
                train_logits = _predict(
                    teacher_logits, train_features.teacher, config.data.batch_size
                )
                _distill(
                    student_head,
                    train_features,
                    val,
                    train_logits,
                    val_logits,
                    n,
                    config,
                    tracker,
                    history,
                )
                assert val.student is not None
                assert test.student is not None
                student_val = _predict(student_head, val.student, config.data.batch_size)
                student_test = _predict(student_head, test.student, config.data.batch_size)
                student_temperature = fit_temperature(student_val, val.labels)

        val_metrics = classification_metrics(val_logits, val.labels, dataset.labels, temperature)
        test_metrics = classification_metrics(test_logits, test.labels, dataset.labels, temperature)
        student_metrics: dict[str, float] = {}
        if student_test is not None and student_temperature is not None:
            student_metrics = classification_metrics(
                student_test, test.labels, dataset.labels, student_temperature
            )
        tracker.log_metrics({f"val/{k}": v for k, v in val_metrics.items()})
        tracker.log_metrics({f"test/{k}": v for k, v in test_metrics.items()})
        tracker.log_metrics({f"student_test/{k}": v for k, v in student_metrics.items()})
        tracker.log_metrics({"temperature": temperature})

        save_network(network, run_dir / WEIGHTS_FILE)
        if student_trunk is not None and student_head is not None:
            assemble_student(student_trunk, student_head, config.data.image_size).save_weights(
                run_dir / STUDENT_WEIGHTS_FILE
            )
        predictions = {
            "val_logits": val_logits,
            "val_labels": val.labels,
            "test_logits": test_logits,
            "test_labels": test.labels,
        }
        if student_val is not None and student_test is not None:
            predictions |= {"student_val_logits": student_val, "student_test_logits": student_test}
        np.savez(run_dir / PREDICTIONS_FILE, **predictions)  # type: ignore[arg-type]  # numpy stub: **kwds typed as bool
        (run_dir / HISTORY_FILE).write_text(json.dumps(history, indent=2), "utf-8")
        info = RunInfo(
            run_id=tracker.run_id,
            run_name=config.run_name,
            dataset_version=dataset.version_id,
            labels=dataset.labels,
            image_size=config.data.image_size,
            backbone=config.model.backbone,
            weights_loaded=network.weights_loaded,
            temperature=temperature,
            student_temperature=student_temperature,
            git_revision=git_revision(),
            command=command,
            seed=config.training.seed,
            created_at=datetime.now(UTC),
            train_seconds=time.monotonic() - started,
            counts={split: len(data) for split, data in splits.items()},
            val_metrics=val_metrics,
            test_metrics=test_metrics,
            student_test_metrics=student_metrics,
            studies=studies,
        )
        (run_dir / RUN_FILE).write_text(info.model_dump_json(indent=2), "utf-8")
        tracker.log_artifacts(run_dir, "run")
        keras.mixed_precision.set_dtype_policy("float32")
        logger.info(
            "run %s: test top-1 %.3f, macro-F1 %.3f, poison cost %.3f, T=%.2f (%.0f s)",
            tracker.run_id,
            test_metrics["top1"],
            test_metrics["macro_f1"],
            test_metrics["poison_cost"],
            temperature,
            info.train_seconds,
        )
        return TrainResult(tracker.run_id, run_dir, test_metrics)


def read_run(run_dir: Path) -> tuple[RunInfo, TrainConfig]:
    """A saved run's info and config."""
    from mushroom_training.config import load_config

    info = RunInfo.model_validate_json((run_dir / RUN_FILE).read_text("utf-8"))
    return info, load_config(run_dir / CONFIG_FILE)
