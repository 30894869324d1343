"""tf.data input pipelines over a dataset version in storage (local folder or GCS)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

from mushroom_common.dataset import ManifestRow, list_dataset_versions, read_manifest
from mushroom_common.storage import ObjectNotFoundError, Storage
from mushroom_training.config import DataConfig
from mushroom_training.preprocess import photo_to_input

logger = logging.getLogger(__name__)

AUTOTUNE = tf.data.AUTOTUNE


@dataclass
class SplitData:
    """One split's photos, decoded and resized to the model input (uint8)."""

    rows: list[ManifestRow]
    labels: np.ndarray
    images: np.ndarray = field(repr=False)

    @property
    def species(self) -> list[str]:
        return [row.species for row in self.rows]

    def __len__(self) -> int:
        return len(self.rows)


@dataclass
class LoadedDataset:
    """A dataset version ready for training: labels in output order and the three splits."""

    version_id: str
    labels: list[str]
    splits: dict[str, SplitData]

    def class_weights(self) -> dict[int, float]:
        """Inverse-frequency weights of the train split (mean weight 1 per photo)."""
        counts = np.bincount(self.splits["train"].labels, minlength=len(self.labels))
        total = counts.sum()
        return {
            i: float(total / (len(self.labels) * c)) if c else 0.0 for i, c in enumerate(counts)
        }


def views_per_photo(
    labels: np.ndarray, augment_views: int, balance: bool, max_views: int
) -> np.ndarray:
    """How many views (the photo plus augmented copies) each train photo gets.

    Balanced: photos of rare species get more augmented copies, up to `max_views`, so every
    species contributes about as many views as the most common one.
    """
    base = 1 + augment_views
    views = np.full(len(labels), base, np.int64)
    if balance and len(labels):
        counts = np.bincount(labels)
        target = counts.max() * base
        per_class = np.clip(np.round(target / np.maximum(counts, 1)), base, max(base, max_views))
        views = per_class[labels].astype(np.int64)
    return views


def resolve_version(storage: Storage, version_id: str | None) -> str:
    """The given version, or the newest complete one in storage."""
    if version_id:
        return version_id
    versions = list_dataset_versions(storage)
    if not versions:
        raise ObjectNotFoundError(
            f"no complete dataset version under {storage.uri_for('datasets')}"
        )
    return versions[-1]


def decoded_images(storage: Storage, rows: list[ManifestRow], size: int) -> tf.data.Dataset:
    """A cached tf.data pipeline of uint8 (size, size, 3) photos read from storage, in row order."""
    keys = [row.image_key for row in rows]

    def load(key: tf.Tensor) -> np.ndarray:
        return photo_to_input(storage.read_bytes(key.numpy().decode("utf-8")), size, size)

    def load_tf(key: tf.Tensor) -> tf.Tensor:
        image = tf.py_function(load, [key], Tout=tf.uint8)
        image.set_shape((size, size, 3))
        return image

    dataset = tf.data.Dataset.from_tensor_slices(tf.constant(keys, dtype=tf.string))
    # py_function decoding in parallel, order kept; decoded photos cached in memory.
    return dataset.map(load_tf, num_parallel_calls=AUTOTUNE, deterministic=True).cache()


def load_dataset(
    storage: Storage,
    config: DataConfig,
    labels: list[str] | None = None,
    splits: tuple[str, ...] = ("train", "val", "test"),
) -> LoadedDataset:
    """Read a dataset version's manifest and decode every photo once.

    Args:
        storage: where the dataset version lives.
        config: which version, the image size and an optional per-split cap.
        labels: the output order to use (default: sorted species of the train split).
        splits: which splits to decode.

    Returns:
        The decoded splits with integer labels.
    """
    version_id = resolve_version(storage, config.dataset_version)
    rows = read_manifest(storage, version_id)
    by_split: dict[str, list[ManifestRow]] = {"train": [], "val": [], "test": []}
    for row in sorted(rows, key=lambda r: (r.split, r.species, r.content_hash)):
        by_split[row.split].append(row)
    if labels is None:
        labels = sorted({row.species for row in by_split["train"]})
    index = {species: i for i, species in enumerate(labels)}
    decoded: dict[str, SplitData] = {}
    for split in splits:
        split_rows = by_split[split]
        kept = [row for row in split_rows if row.species in index]
        if len(kept) < len(split_rows):
            logger.warning(
                "%s: %d photos of species outside the model's labels left out",
                split,
                len(split_rows) - len(kept),
            )
        if config.max_photos_per_split is not None:
            kept = _stratified_cap(kept, config.max_photos_per_split)
        images = np.zeros((len(kept), config.image_size, config.image_size, 3), np.uint8)
        for i, image in enumerate(decoded_images(storage, kept, config.image_size)):
            images[i] = image.numpy()
        decoded[split] = SplitData(
            rows=kept, labels=np.array([index[r.species] for r in kept], np.int64), images=images
        )
        logger.info("%s: %d photos", split, len(kept))
    return LoadedDataset(version_id=version_id, labels=labels, splits=decoded)


def _stratified_cap(rows: list[ManifestRow], cap: int) -> list[ManifestRow]:
    per_species: dict[str, list[ManifestRow]] = {}
    for row in rows:
        per_species.setdefault(row.species, []).append(row)
    share = max(1, math.ceil(cap / max(1, len(per_species))))
    return [row for group in per_species.values() for row in group[:share]][:cap]


# ----------------------------------------------------------------------------- augmentation


def _rotate(image: tf.Tensor, angle: tf.Tensor) -> tf.Tensor:
    """Rotate a float (H, W, 3) image about its centre, filling with reflected pixels."""
    height = tf.cast(tf.shape(image)[0], tf.float32)
    width = tf.cast(tf.shape(image)[1], tf.float32)
    cos, sin = tf.cos(angle), tf.sin(angle)
    x_offset = ((width - 1) - (cos * (width - 1) - sin * (height - 1))) / 2.0
    y_offset = ((height - 1) - (sin * (width - 1) + cos * (height - 1))) / 2.0
    transform = tf.stack([cos, -sin, x_offset, sin, cos, y_offset, 0.0, 0.0])[tf.newaxis]
    rotated = tf.raw_ops.ImageProjectiveTransformV3(
        images=image[tf.newaxis],
        transforms=transform,
        output_shape=tf.shape(image)[:2],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="REFLECT",
    )
    return rotated[0]


def augment(image: tf.Tensor, seed: tf.Tensor, config: DataConfig) -> tf.Tensor:
    """Random flip, resized crop, colour jitter and small rotation of a uint8 photo (stateless).

    Args:
        image: uint8 (H, W, 3).
        seed: int32/int64 shape-[2] seed: the same seed gives the same augmentation.
        config: augmentation strengths.

    Returns:
        The augmented uint8 (H, W, 3) photo.
    """
    size = tf.shape(image)[:2]
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=10)
    # The field-like steps draw from their own seeds, so turning them on leaves every other
    # step's draw (and so the views of configs without them) unchanged.
    field_seeds = tf.random.experimental.stateless_split(seeds[0], num=6)
    x = tf.image.stateless_random_flip_left_right(image, seeds[0])
    begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image),
        bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
        seed=seeds[1],
        min_object_covered=0.0,
        aspect_ratio_range=(3 / 4, 4 / 3),
        area_range=(config.crop_scale_min, 1.0),
        use_image_if_no_bounding_boxes=True,
    )
    x = tf.slice(x, begin, crop_size)
    x = tf.image.resize(x, size, method="bilinear")
    jitter = config.colour_jitter
    if jitter > 0:
        x = tf.image.stateless_random_brightness(x, 255.0 * jitter * 0.5, seeds[2])
        x = tf.image.stateless_random_contrast(x, 1 - jitter, 1 + jitter, seeds[3])
        x = tf.image.stateless_random_saturation(x, 1 - jitter, 1 + jitter, seeds[4])
        x = tf.image.stateless_random_hue(x, jitter * 0.1, seeds[5])
    if config.rotation_degrees > 0:
        limit = config.rotation_degrees * math.pi / 180
        angle = tf.random.stateless_uniform((), seeds[6], -limit, limit)
        x = _rotate(x, angle)
    x = _field_like(x, field_seeds, config)
    x = tf.cast(tf.clip_by_value(tf.round(x), 0, 255), tf.uint8)
    degrade = tf.random.stateless_uniform((), seeds[7]) < config.degrade_probability
    if config.min_resolution > 0:
        x = tf.cond(
            degrade, lambda: _lower_resolution(x, seeds[8], config.min_resolution), lambda: x
        )
    if config.jpeg_quality_min > 0:
        x = tf.cond(
            degrade,
            lambda: tf.image.stateless_random_jpeg_quality(
                x, config.jpeg_quality_min, 95, seeds[9]
            ),
            lambda: x,
        )
    return x


def _field_like(image: tf.Tensor, seeds: tf.Tensor, config: DataConfig) -> tf.Tensor:
    """Zoom-out, white balance, blur and sensor noise of a float (H, W, 3) view (each optional).

    Web thumbnails are close-ups, evenly lit and sharp; someone else's field photo is often a
    small mushroom in litter, under another camera's white balance, a little out of focus.
    """
    x = image
    if config.zoom_out_min < 1:
        scale = tf.random.stateless_uniform((), seeds[0], config.zoom_out_min, 1.0)
        x = _zoom_out(x, scale)
    if config.white_balance > 0:
        spread = config.white_balance
        gains = tf.random.stateless_uniform((3,), seeds[1], 1 - spread, 1 + spread)
        x = x * gains
    if config.blur_probability > 0:
        draws = tf.random.stateless_uniform((2,), seeds[2])
        sigma = 0.5 + 1.5 * draws[1]
        x = tf.cond(draws[0] < config.blur_probability, lambda: _gaussian_blur(x, sigma), lambda: x)
    if config.noise_probability > 0:
        draws = tf.random.stateless_uniform((2,), seeds[3])
        noise = tf.random.stateless_normal(tf.shape(x), seeds[4]) * (2.0 + 8.0 * draws[1])
        x = tf.cond(draws[0] < config.noise_probability, lambda: x + noise, lambda: x)
    return x


def _zoom_out(image: tf.Tensor, scale: tf.Tensor) -> tf.Tensor:
    """Shrink a float view by `scale` and fill the frame around it with its mirrored edges."""
    size = tf.shape(image)[:2]
    small = tf.maximum(tf.cast(tf.round(tf.cast(size, tf.float32) * scale), tf.int32), 1)
    shrunk = tf.image.resize(image, small, method="area", antialias=True)
    pad_top = (size[0] - small[0]) // 2
    pad_left = (size[1] - small[1]) // 2
    paddings = [
        [pad_top, size[0] - small[0] - pad_top],
        [pad_left, size[1] - small[1] - pad_left],
        [0, 0],
    ]
    # SYMMETRIC padding adds at most the shrunk view's own side on each edge, which is why
    # zoom_out_min is at least 1/3.
    framed = tf.pad(shrunk, paddings, mode="SYMMETRIC")
    return tf.ensure_shape(tf.reshape(framed, [size[0], size[1], 3]), [None, None, 3])


def _gaussian_blur(image: tf.Tensor, sigma: tf.Tensor) -> tf.Tensor:
    """Blur a float (H, W, 3) view with a separable Gaussian of the given sigma (radius 4)."""
    offsets = tf.range(-4, 5, dtype=tf.float32)
    kernel = tf.exp(-0.5 * tf.square(offsets / sigma))
    kernel = kernel / tf.reduce_sum(kernel)
    batch = image[tf.newaxis]
    horizontal = tf.tile(tf.reshape(kernel, [1, 9, 1, 1]), [1, 1, 3, 1])
    vertical = tf.tile(tf.reshape(kernel, [9, 1, 1, 1]), [1, 1, 3, 1])
    batch = tf.nn.depthwise_conv2d(
        tf.pad(batch, [[0, 0], [0, 0], [4, 4], [0, 0]], mode="REFLECT"),
        horizontal,
        [1, 1, 1, 1],
        "VALID",
    )
    batch = tf.nn.depthwise_conv2d(
        tf.pad(batch, [[0, 0], [4, 4], [0, 0], [0, 0]], mode="REFLECT"),
        vertical,
        [1, 1, 1, 1],
        "VALID",
    )
    return batch[0]


def _lower_resolution(image: tf.Tensor, seed: tf.Tensor, min_side: int) -> tf.Tensor:
    """Shrink a uint8 photo to a random side in [min_side, its side] and enlarge it back."""
    size = tf.shape(image)[:2]
    side = tf.random.stateless_uniform((), seed, min_side, tf.reduce_max(size) + 1, dtype=tf.int32)
    scale = tf.cast(side, tf.float32) / tf.cast(tf.reduce_max(size), tf.float32)
    small = tf.maximum(tf.cast(tf.round(tf.cast(size, tf.float32) * scale), tf.int32), 1)
    shrunk = tf.image.resize(image, small, method="area", antialias=True)
    restored = tf.image.resize(shrunk, size, method="bilinear")
    return tf.cast(tf.clip_by_value(tf.round(restored), 0, 255), tf.uint8)


def view_dataset(
    images: np.ndarray,
    config: DataConfig,
    seed: int,
    view: int,
    batch_size: int,
    photo_ids: np.ndarray | None = None,
) -> tf.data.Dataset:
    """Batched uint8 photos: view 0 is the photos as they are, views >= 1 augmented (train only).

    Each photo's augmentation is seeded by (seed, view, its id): `photo_ids` (default: positions)
    keep it the same when only a subset of the photos is passed.
    """
    dataset = tf.data.Dataset.from_tensor_slices(images)
    if view > 0:
        ids = np.arange(len(images)) if photo_ids is None else photo_ids
        indices = tf.data.Dataset.from_tensor_slices(ids.astype(np.int64))
        dataset = tf.data.Dataset.zip((dataset, indices)).map(
            lambda image, i: augment(
                image, tf.stack([tf.constant(seed, tf.int64) * 1000 + view, i]), config
            ),
            num_parallel_calls=AUTOTUNE,
            deterministic=True,
        )
    return dataset.batch(batch_size).prefetch(AUTOTUNE)


def fresh_view_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    weights: np.ndarray | None,
    config: DataConfig,
    seed: int,
    batch_size: int,
) -> tf.data.Dataset:
    """An endless, reshuffled stream of (augmented photo, label[, weight]) batches.

    Every draw of a photo gets its own augmentation (seeded by the draw's position in the
    stream), so training that runs several epochs over it never sees the same view twice, unlike
    the fixed cached views.
    """
    photos = tf.constant(images)
    targets = tf.constant(labels.astype(np.int64))
    sample_weights = None if weights is None else tf.constant(weights.astype(np.float32))
    order = (
        tf.data.Dataset.range(len(images))
        .shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
        .repeat()
    )
    dataset = tf.data.Dataset.zip((tf.data.Dataset.counter(), order))

    def view(draw: tf.Tensor, photo: tf.Tensor) -> tuple[tf.Tensor, ...]:
        image = augment(photos[photo], tf.stack([tf.constant(seed, tf.int64), draw]), config)
        label = targets[photo]
        if sample_weights is None:
            return image, label
        return image, label, sample_weights[photo]

    return (
        dataset.map(view, num_parallel_calls=AUTOTUNE, deterministic=True)
        .batch(batch_size)
        .prefetch(AUTOTUNE)
    )
