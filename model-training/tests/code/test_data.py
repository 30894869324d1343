"""Input pipeline: decoding from storage, the shared resize and stateless augmentation."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from mushroom_common.storage import Storage
from mushroom_training.config import DataConfig
from mushroom_training.data import fresh_view_dataset, load_dataset, view_dataset, views_per_photo
from mushroom_training.preprocess import photo_to_input


def test_dataset_version_decodes_to_uint8_inputs_with_class_weights(storage: Storage) -> None:
    dataset = load_dataset(storage, DataConfig(dataset_version="ds-synthetic", image_size=32))
    assert dataset.labels == ["amanita_muscaria", "boletus_edulis", "cantharellus_cibarius"]
    train = dataset.splits["train"]
    assert train.images.shape == (36, 32, 32, 3)
    assert train.images.dtype == np.uint8
    assert sorted(np.bincount(train.labels).tolist()) == [12, 12, 12]
    assert dataset.class_weights() == {0: 1.0, 1: 1.0, 2: 1.0}


def test_newest_version_is_used_when_none_is_named(storage: Storage) -> None:
    dataset = load_dataset(storage, DataConfig(image_size=32, max_photos_per_split=6))
    assert dataset.version_id == "ds-synthetic"
    assert len(dataset.splits["test"]) == 6


def test_augmentation_is_seeded_and_changes_only_train_views() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    config = DataConfig(image_size=32)
    clean = np.concatenate(
        list(view_dataset(images, config, seed=1, view=0, batch_size=2).as_numpy_iterator())
    )
    np.testing.assert_array_equal(clean, images)
    first = np.concatenate(list(view_dataset(images, config, 1, 1, 2).as_numpy_iterator()))
    again = np.concatenate(list(view_dataset(images, config, 1, 1, 2).as_numpy_iterator()))
    other = np.concatenate(list(view_dataset(images, config, 1, 2, 2).as_numpy_iterator()))
    assert first.shape == images.shape
    assert first.dtype == np.uint8
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, images)
    assert not np.array_equal(first, other)


def test_shared_resize_applies_exif_orientation() -> None:
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    image.paste((0, 0, 255), (0, 0, 20, 20))  # left half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif, quality=95)
    pixels = photo_to_input(buffer.getvalue(), 16, 16)
    assert pixels.shape == (16, 16, 3)
    # Upright, the blue half is on top.
    assert pixels[2, 8, 2] > 200
    assert pixels[13, 8, 0] > 200


def test_balanced_views_give_rare_species_more_augmented_copies() -> None:
    labels = np.array([0] * 100 + [1] * 10)
    views = views_per_photo(labels, augment_views=2, balance=True, max_views=12)
    assert set(views[:100].tolist()) == {3}
    assert set(views[100:].tolist()) == {12}
    assert set(views_per_photo(labels, 2, balance=False, max_views=12).tolist()) == {3}


def test_fresh_views_give_every_draw_of_a_photo_its_own_seeded_augmentation() -> None:
    rng = np.random.default_rng(2)
    photos = rng.integers(0, 256, (4, 32, 32, 3)).astype(np.uint8)
    labels = np.arange(4)  # one photo per label, so a batch's labels name its photos
    weights = np.array([0.5, 1.0, 2.0, 4.0], np.float32)
    config = DataConfig(image_size=32)

    def two_epochs(seed: int) -> list[dict[int, tuple[np.ndarray, float]]]:
        stream = fresh_view_dataset(photos, labels, weights, config, seed, batch_size=4)
        epochs = []
        for images, batch_labels, batch_weights in stream.take(2):
            assert images.dtype == np.uint8
            epochs.append(
                {
                    int(label): (np.asarray(image), float(weight))
                    for image, label, weight in zip(
                        images, batch_labels, batch_weights, strict=True
                    )
                }
            )
        return epochs

    first, second = two_epochs(7)
    for epoch in (first, second):
        assert sorted(epoch) == [0, 1, 2, 3]  # every photo once per epoch
        assert all(weight == weights[label] for label, (_, weight) in epoch.items())
    for label in range(4):  # the next draw of a photo is another view of it
        assert not np.array_equal(first[label][0], second[label][0])
    again, _ = two_epochs(7)
    for label in range(4):  # seeded: the same stream again
        np.testing.assert_array_equal(again[label][0], first[label][0])
