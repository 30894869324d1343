"""Every configurable backbone builds offline (weights=none) and yields species logits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mushroom_training.config import load_config
from mushroom_training.model import LOGITS, assemble, build_network


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
