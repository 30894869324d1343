"""field_test.py and field_heads.py: the answers a lever gives and the source-balanced top-1
(the real data runs only as scripts)."""

from __future__ import annotations

import numpy as np
from field_heads import source_balanced_top1
from field_test import answers_of

from mushroom_common.runtime import calibrated_probabilities


def _outputs() -> dict[str, np.ndarray]:
    return {
        "logits": np.array([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]]),
        "mirror_logits": np.array([[0.0, 2.0, -1.0], [0.0, 1.5, 0.0]]),
        "score": np.array([0.9, 0.2]),
        "mirror_score": np.array([0.7, 0.4]),
    }


def test_the_mirror_lever_averages_calibrated_views_and_keeps_both_for_agreement() -> None:
    prior = np.full(3, 1 / 3)
    served = answers_of(_outputs(), ["a", "b"], 0.8, "served", prior, 0.0, "max_probability")
    assert served.view_probabilities is None
    np.testing.assert_allclose(
        served.probabilities, calibrated_probabilities(_outputs()["logits"], 0.8)
    )
    mirror = answers_of(_outputs(), ["a", "b"], 0.8, "mirror", prior, 0.0, "max_probability")
    assert mirror.view_probabilities is not None
    assert mirror.view_probabilities.shape == (2, 2, 3)
    np.testing.assert_allclose(mirror.probabilities, mirror.view_probabilities.mean(axis=1))
    assert mirror.mushroom_scores is not None
    np.testing.assert_allclose(mirror.mushroom_scores, np.array([0.8, 0.3]))
    # The open-set score reads the averaged logits, as the served runtime does.
    assert mirror.unknown_scores is not None
    assert served.unknown_scores is not None
    assert mirror.unknown_scores[0] > served.unknown_scores[0]


def test_logit_adjustment_moves_answers_away_from_frequent_species() -> None:
    prior = np.array([0.98, 0.01, 0.01])
    plain = answers_of(_outputs(), ["a", "b"], 1.0, "served", prior, 0.0, None)
    adjusted = answers_of(_outputs(), ["a", "b"], 1.0, "adjusted", prior, 1.0, None)
    assert adjusted.probabilities[0, 0] < plain.probabilities[0, 0]
    assert adjusted.unknown_scores is None


def test_source_balanced_top1_counts_each_source_once() -> None:
    probs = np.eye(3)[[0, 1, 2, 0]]
    y = np.array([0, 1, 0, 1])  # right, right, wrong, wrong
    origin = np.array(["big", "big", "big", "small"])
    assert source_balanced_top1(probs, y, origin) == (2 / 3 + 0.0) / 2


def test_the_negatives_list_names_real_package_paths_and_crops_frame_closer() -> None:
    from detector_negatives import listed_photos, random_crops, threshold_for
    from PIL import Image

    photos = listed_photos()
    assert len(photos) >= 15
    assert {p.category for p in photos} >= {"leaves", "moss", "flowers", "grass", "forest_floor"}
    assert all(p.path.startswith("usr/share/") for p in photos)
    # The cached file names are unique, so no photo overwrites another.
    assert len({(p.category, p.package, p.name) for p in photos}) == len(photos)

    image = Image.new("RGB", (400, 300))
    crops = random_crops(image, 20, np.random.default_rng(0))
    areas = [c.size[0] * c.size[1] / (400 * 300) for c in crops]
    assert len(crops) == 20
    assert min(areas) >= 0.09
    assert max(areas) <= 0.61

    scores = np.linspace(0.0, 1.0, 101)
    # The threshold that turns away at most 3% of these mushroom scores keeps 97% or more.
    threshold = threshold_for(scores, 0.03)
    assert np.mean(scores >= threshold) >= 0.97
    assert np.mean(scores >= threshold + 0.011) < 0.97


def test_top1_by_weight_blends_two_models_from_the_first_to_the_second() -> None:
    from field_ensemble import WEIGHTS, top1_by_weight

    # Row 0: the first model is right; row 1: only the second; row 2 is in no set (open set).
    first = np.array([[0.9, 0.1], [0.8, 0.2], [0.5, 0.5]])
    second = np.array([[0.6, 0.4], [0.1, 0.9], [0.5, 0.5]])
    truth = np.array([0, 1, -1])
    table = top1_by_weight(first, second, truth, {"both": [0, 1], "first": [0]}, "second")
    assert set(table) == {str(w) for w in WEIGHTS}
    assert table["0.0"] == {"both": 0.5, "first": 1.0}
    assert table["1.0"] == {"both": 1.0, "first": 1.0}
    # At 0.25 row 1 is 0.625 / 0.375 for the wrong label: still the first model's answer.
    assert table["0.25"]["both"] == 0.5
