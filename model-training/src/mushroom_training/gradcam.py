"""Grad-CAM heat maps from the Keras model: where the network looked for a class."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from mushroom_training.model import Network


def grad_cam(network: Network, image: np.ndarray, class_index: int) -> np.ndarray:
    """Grad-CAM of one uint8 (H, W, 3) photo for one class, on the last feature map.

    Args:
        network: the trained network.
        image: the model input (already resized).
        class_index: output index of the class to explain.

    Returns:
        A float (H, W) map in [0, 1], same size as the photo.
    """
    x = tf.cast(image[np.newaxis], tf.float32)
    features = network.top(network.trunk(network.preprocessing(x)), training=False)
    with tf.GradientTape() as tape:
        tape.watch(features)
        logits = network.head(features, training=False)
        target = logits[:, class_index]
    gradients = tape.gradient(target, features)
    weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * features, axis=-1))[0]
    peak = float(tf.reduce_max(cam))
    cam = cam / peak if peak > 0 else cam
    resized = tf.image.resize(cam[..., tf.newaxis], image.shape[:2], method="bilinear")[..., 0]
    heat_map: np.ndarray = np.clip(resized.numpy(), 0.0, 1.0)
    return heat_map
