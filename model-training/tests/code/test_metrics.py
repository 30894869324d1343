"""Metrics: poison cost, calibration, temperature fitting, thresholds."""

from __future__ import annotations

import numpy as np
import pytest

from mushroom_training.export import choose_threshold
from mushroom_training.metrics import (
    classification_metrics,
    expected_calibration_error,
    fit_temperature,
    poison_cost,
    softmax,
)


def test_poison_cost_weighs_a_missed_poisonous_photo_100_times() -> None:
    true = ["amanita_phalloides", "amanita_muscaria", "boletus_edulis", "boletus_edulis"]
    predicted = ["boletus_edulis", "amanita_muscaria", "amanita_muscaria", "boletus_edulis"]
    cost = poison_cost(true, predicted)
    assert (cost.psc, cost.esc, cost.dangerous_as_edible, cost.n) == (1, 1, 1, 4)
    assert cost.cost == pytest.approx((100 * 1 + 1) / 4)


def test_temperature_fit_recovers_the_temperature_that_made_the_labels() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (4000, 5))
    labels = np.array([rng.choice(5, p=p) for p in softmax(logits, 2.5)])
    assert fit_temperature(logits, labels) == pytest.approx(2.5, rel=0.1)


def test_ece_is_zero_for_calibrated_and_large_for_overconfident_predictions() -> None:
    labels = np.array([0, 0, 1, 1])
    confident_wrong = np.array([[0.01, 0.99], [0.01, 0.99], [0.99, 0.01], [0.99, 0.01]])
    assert expected_calibration_error(confident_wrong, labels) == pytest.approx(0.99)
    exact = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    assert expected_calibration_error(exact, labels) == pytest.approx(0.0)


def test_classification_metrics_on_a_known_case() -> None:
    labels = np.array([0, 1, 2, 2])
    logits = np.array([[3.0, 0, 0], [0, 3.0, 0], [0, 3.0, 1.0], [0, 0, 3.0]])
    metrics = classification_metrics(
        logits, labels, ["amanita_muscaria", "boletus_edulis", "cantharellus_cibarius"]
    )
    assert metrics["top1"] == pytest.approx(0.75)
    assert metrics["top3"] == pytest.approx(1.0)
    # F1: class 0 = 1, class 1 = 2/3, class 2 = 2/3.
    assert metrics["macro_f1"] == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)
    assert metrics["poison_cost"] == 0.0


def test_threshold_separates_scores_and_prefers_the_lower_one_on_ties() -> None:
    positives = np.array([0.4, 0.6, 0.9])
    negatives = np.array([0.0, 0.05, 0.1])
    assert choose_threshold(positives, negatives) == pytest.approx(0.4)
