"""Every configurable backbone builds offline (weights=none) and yields species logits."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from mushroom_training.config import load_config
from mushroom_training.fresh_views import fine_tune_top_on_fresh_views
from mushroom_training.model import LOGITS, assemble, build_network
from mushroom_training.phase2 import PhaseTwoViews, fine_tune_top, imagenet_soft_targets


@pytest.mark.parametrize(
    "backbone", ["mobilenet_v3_small", "efficientnet_v2_b0", "efficientnet_lite0", "tiny_cnn"]
)
def test_backbone_builds_and_predicts(backbone: str, weights_cache: Path) -> None:
    config = load_config(
        None,
        [
            f"model.backbone={backbone}",
            "model.weights=none",
            "model.detector=none",
            "model.fine_tune_blocks=0",
            "data.image_size=32",
        ],
    )
    network = build_network(config, 3, weights_cache)
    assert not network.trunk.trainable
    assert network.weights_loaded == "none"
    outputs = assemble(network).predict(np.zeros((2, 32, 32, 3), np.uint8), verbose=0)
    assert outputs[LOGITS].shape == (2, 3)


def test_lite0_detector_scores_a_real_fungus_probability(weights_cache: Path) -> None:
    config = load_config(None, ["data.image_size=64", "model.fine_tune_blocks=2"])
    network = build_network(config, 3, weights_cache)
    assert network.detector_top is not None
    assert network.weights_loaded.startswith("imagenet")
    outputs = assemble(network).predict(np.full((1, 64, 64, 3), 128, np.uint8), verbose=0)
    assert 0.0 <= float(outputs["mushroom_score"][0, 0]) <= 1.0


def _imagenet_drift_after_fine_tuning(
    distillation: float,
    views: str,
    weights_cache: Path,
    cap_photos: tuple[np.ndarray, np.ndarray],
) -> float:
    """How far phase 2 moves the shared detector's ImageNet probabilities on photos it did not
    train on (mean L1 distance)."""
    config = load_config(
        None,
        [
            "data.image_size=64",
            "data.batch_size=8",
            "data.class_weights=false",
            "model.fine_tune_blocks=1",
            "model.detector=shared",
            f"training.detector_distillation={distillation}",
            f"training.phase2_views={views}",
            "training.phase2_epochs=4",
            "training.phase2_learning_rate=0.001",
        ],
    )
    keras.utils.set_random_seed(1)
    network = build_network(config, 3, weights_cache)
    assert network.detector_top is None  # one backbone: the detector reads the fine-tuned top
    photos, labels = cap_photos
    maps = np.asarray(network.trunk(network.preprocessing(photos.astype(np.float32))), np.float32)
    inputs = photos if views == "fresh" else maps
    train, val = (
        PhaseTwoViews(inputs[:24], labels[:24]),
        PhaseTwoViews(inputs[24:32], labels[24:32]),
    )
    before = imagenet_soft_targets(network, maps[32:], 1.0, 8)
    if views == "fresh":
        fine_tune_top_on_fresh_views(network, train, val, 3, config, [])
    else:
        fine_tune_top(network, train, val, 3, config, [])
    after = imagenet_soft_targets(network, maps[32:], 1.0, 8)
    return float(np.abs(after - before).sum(axis=1).mean())


@pytest.mark.parametrize("views", ["cached", "fresh"])
def test_fine_tuning_a_shared_detector_distils_its_imagenet_answers(
    views: str, weights_cache: Path, cap_photos: tuple[np.ndarray, np.ndarray]
) -> None:
    plain = _imagenet_drift_after_fine_tuning(0.0, views, weights_cache, cap_photos)
    distilled = _imagenet_drift_after_fine_tuning(1.0, views, weights_cache, cap_photos)
    assert plain > 0.05  # fine-tuning alone moves what the detector reads
    assert distilled < plain / 2
