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

from mushroom_common.storage import Storage, open_storage
from mushroom_training import efficientnet_lite as lite
from mushroom_training.config import Settings, TrainConfig, dump_config, get_settings
from mushroom_training.data import LoadedDataset, load_dataset, view_dataset, views_per_photo
from mushroom_training.metrics import classification_metrics, fit_temperature
from mushroom_training.model import Network, build_network, save_network, set_top_trainable
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
        metrics = {f"{self.phase}/{k}": float(v) for k, v in (logs or {}).items()}
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
    for view in range(int(views.max(initial=0))):
        started = time.monotonic()
        chosen = np.flatnonzero(views > view)
        for batch in view_dataset(
            images[chosen], config.data, config.training.seed, view, config.data.batch_size, chosen
        ):
            out = extractor(batch, training=False)
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
    train: tuple[np.ndarray, np.ndarray, np.ndarray | None],
    val: tuple[np.ndarray, np.ndarray],
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
            keras.callbacks.EarlyStopping(
                monitor="val_loss",
                patience=config.training.early_stopping_patience,
                restore_best_weights=True,
            ),
            *callbacks,
        ],
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


def _train_teacher(
    network: Network,
    features: _Features,
    val: _Features,
    dataset: LoadedDataset,
    config: TrainConfig,
    tracker: Tracker,
    history: dict[str, list[float]],
) -> None:
    n = len(dataset.labels)
    batch = config.data.batch_size
    weights = _class_weights(features.labels, n) if config.data.class_weights else None
    train_weights = _sample_weights(features.labels, weights)
    y_train, y_val = _one_hot(features.labels, n), _one_hot(val.labels, n)

    # Phase 1: the head on pooled features of the frozen top (GAP is linear: same as the full head).
    pool = keras.Sequential([network.top, keras.layers.GlobalAveragePooling2D()])
    pooled_train = _predict(pool, features.teacher, batch)
    pooled_val = _predict(pool, val.teacher, batch)
    inputs = keras.Input(pooled_train.shape[1:])
    dense = network.head.get_layer("species_logits")
    phase1 = keras.Model(inputs, dense(network.head.get_layer("head_dropout")(inputs)))
    _compile(phase1, config.training.phase1_learning_rate, config)
    started = time.monotonic()
    _fit(
        phase1,
        (pooled_train, y_train, train_weights),
        (pooled_val, y_val),
        config.training.phase1_epochs,
        config,
        [_EpochLogger(tracker, "phase1", history)],
    )
    logger.info("phase 1 done in %.1f s", time.monotonic() - started)

    if config.model.fine_tune_blocks == 0 or config.training.phase2_epochs == 0:
        return
    # Phase 2: the top blocks and the head at a lower learning rate, batch norm frozen.
    set_top_trainable(network, True)
    trunk_out = keras.Input(features.teacher.shape[1:])
    phase2 = keras.Model(trunk_out, network.head(network.top(trunk_out)))
    _compile(phase2, config.training.phase2_learning_rate, config)
    started = time.monotonic()
    _fit(
        phase2,
        (features.teacher, y_train, train_weights),
        (val.teacher, y_val),
        config.training.phase2_epochs,
        config,
        [_EpochLogger(tracker, "phase2", history)],
    )
    set_top_trainable(network, False)
    logger.info("phase 2 done in %.1f s", time.monotonic() - started)


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
        z = logits / t
        e = np.exp(z - z.max(axis=1, keepdims=True))
        probabilities: np.ndarray = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
        return probabilities

    def loss(y_true: Any, y_pred: Any) -> Any:
        hard, soft_target = y_true[:, :num_classes], y_true[:, num_classes:]
        ce = keras.losses.categorical_crossentropy(hard, y_pred, from_logits=True)
        log_student = keras.ops.log_softmax(y_pred / t, axis=-1)
        kl = keras.ops.sum(
            soft_target * (keras.ops.log(keras.ops.clip(soft_target, 1e-8, 1.0)) - log_student),
            axis=-1,
        )
        return alpha * kl * t * t + (1 - alpha) * ce

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
            _train_teacher(network, train_features, val, dataset, config, tracker, history)

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
