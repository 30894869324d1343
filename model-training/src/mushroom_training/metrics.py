"""Classification, calibration and poison-cost metrics (numpy only)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from mushroom_common.catalog import Catalog, load_catalog
from mushroom_common.runtime import calibrated_probabilities


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of logits / temperature: the runtime's, so metrics see served numbers."""
    return calibrated_probabilities(logits, temperature)


def top_k_accuracy(logits: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Share of rows whose label is among their k largest logits."""
    ranked = np.argsort(-logits, axis=1)[:, : min(k, logits.shape[1])]
    return float((ranked == labels[:, None]).any(axis=1).mean())


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the true labels."""
    p = softmax(logits, temperature)[np.arange(len(labels)), labels]
    return float(-np.mean(np.log(np.clip(p, 1e-12, 1.0))))


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature in [0.05, 20] minimising NLL (log grid, then golden-section refinement)."""
    grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 200))
    losses = [nll(logits, labels, t) for t in grid]
    best = int(np.argmin(losses))
    lo = np.log(grid[max(best - 1, 0)])
    hi = np.log(grid[min(best + 1, len(grid) - 1)])
    ratio = (np.sqrt(5) - 1) / 2
    for _ in range(40):
        a = hi - ratio * (hi - lo)
        b = lo + ratio * (hi - lo)
        if nll(logits, labels, float(np.exp(a))) < nll(logits, labels, float(np.exp(b))):
            hi = b
        else:
            lo = a
    return float(np.exp((lo + hi) / 2))


def expected_calibration_error(
    probabilities: np.ndarray, labels: np.ndarray, bins: int = 15
) -> float:
    """ECE of the top-1 confidence over equal-width bins."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for lo, hi in itertools.pairwise(edges):
        in_bin = (confidence > lo) & (confidence <= hi)
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def reliability_bins(
    probabilities: np.ndarray, labels: np.ndarray, bins: int = 10
) -> list[tuple[float, float, int]]:
    """(mean confidence, accuracy, count) per confidence bin, for the reliability plot."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    rows = []
    for lo, hi in itertools.pairwise(edges):
        in_bin = (confidence > lo) & (confidence <= hi)
        if in_bin.any():
            rows.append(
                (float(confidence[in_bin].mean()), float(correct[in_bin].mean()), int(in_bin.sum()))
            )
    return rows


@dataclass(frozen=True)
class PoisonCost:
    """FungiCLEF's poison cost: (100 * PSC + ESC) / N."""

    psc: int  # deadly/poisonous photos predicted as a non-dangerous species
    esc: int  # non-dangerous photos predicted as a dangerous species
    dangerous_as_edible: int  # deadly/poisonous photos predicted as an edible species
    n: int

    @property
    def cost(self) -> float:
        return (100 * self.psc + self.esc) / self.n if self.n else 0.0


def poison_cost(
    true_ids: list[str], predicted_ids: list[str], catalog: Catalog | None = None
) -> PoisonCost:
    """Poison cost of species predictions, edibility from the catalog."""
    catalog = catalog or load_catalog()
    psc = esc = dangerous_as_edible = 0
    for truth, predicted in zip(true_ids, predicted_ids, strict=True):
        true_edibility = catalog.get(truth).edibility
        predicted_edibility = catalog.get(predicted).edibility
        if true_edibility.is_dangerous and not predicted_edibility.is_dangerous:
            psc += 1
            dangerous_as_edible += int(predicted_edibility.is_edible)
        elif not true_edibility.is_dangerous and predicted_edibility.is_dangerous:
            esc += 1
    return PoisonCost(psc, esc, dangerous_as_edible, len(true_ids))


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """Rows: true class; columns: predicted class."""
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix


def per_class(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and F1 per class from a confusion matrix (0 where undefined)."""
    tp = np.diag(matrix).astype(np.float64)
    predicted = matrix.sum(axis=0)
    actual = matrix.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    denominator = precision + recall
    f1 = np.divide(
        2 * precision * recall, denominator, out=np.zeros_like(tp), where=denominator > 0
    )
    return precision, recall, f1


def classification_metrics(
    logits: np.ndarray, labels: np.ndarray, label_ids: list[str], temperature: float = 1.0
) -> dict[str, float]:
    """Top-1, top-3, top-5, macro-F1, ECE (raw and temperature-scaled), NLL and poison cost.

    Args:
        logits: (N, C) model outputs.
        labels: (N,) true class indices.
        label_ids: catalog id of each class index.
        temperature: the fitted temperature.

    Returns:
        Flat metric name -> value.
    """
    predicted = logits.argmax(axis=1)
    matrix = confusion_matrix(labels, predicted, len(label_ids))
    present = matrix.sum(axis=1) > 0
    _, _, f1 = per_class(matrix)
    cost = poison_cost([label_ids[i] for i in labels], [label_ids[i] for i in predicted])
    return {
        "top1": float((predicted == labels).mean()),
        "top3": top_k_accuracy(logits, labels, 3),
        "top5": top_k_accuracy(logits, labels, 5),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "ece": expected_calibration_error(softmax(logits), labels),
        "ece_scaled": expected_calibration_error(softmax(logits, temperature), labels),
        "nll": nll(logits, labels),
        "nll_scaled": nll(logits, labels, temperature),
        "poison_cost": cost.cost,
        "psc": float(cost.psc),
        "esc": float(cost.esc),
        "dangerous_as_edible": float(cost.dangerous_as_edible),
        "n": float(len(labels)),
    }
