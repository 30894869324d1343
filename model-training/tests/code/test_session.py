"""The training session's helpers and train()'s cleanup (no training: fast)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from mushroom_common.storage import ObjectNotFoundError, Storage
from mushroom_training.config import Settings, load_config
from mushroom_training.session import class_weights, one_hot, sample_weights
from mushroom_training.train import train


def test_class_weights_average_one_per_view_and_favour_rare_species() -> None:
    labels = np.array([0, 0, 0, 1])
    weights = class_weights(labels, 2)
    per_view = sample_weights(labels, weights)
    assert per_view is not None
    assert per_view.mean() == pytest.approx(1.0)
    assert weights[1] == pytest.approx(3 * weights[0])
    assert class_weights(labels, 3)[2] == 0.0  # a species without views weighs nothing
    assert sample_weights(labels, None) is None


def test_one_hot_rows_pick_the_label() -> None:
    rows = one_hot(np.array([2, 0]), 3)
    assert rows.tolist() == [[0, 0, 1], [1, 0, 0]]
    assert rows.dtype == np.float32


def test_a_failed_run_leaves_the_dtype_policy_at_float32(
    storage: Storage, settings: Settings
) -> None:
    """The mixed-precision policy is process-wide: train() resets it even when the run fails."""
    config = load_config(
        None, ["data.dataset_version=ds-missing", "training.mixed_precision=bfloat16"]
    )
    with pytest.raises(ObjectNotFoundError):
        train(config, storage=storage, settings=settings)
    assert keras.mixed_precision.global_policy().name == "float32"
