"""The species-level open-set run: some species are left out of training entirely, so the
unknown-species score can be measured on species the model has truly never seen.

Scores (higher: more likely unknown) come from `mushroom_common.verdict.open_set_score` on the
raw logits, which is what the API and the phone compute, plus distances in embedding space for
comparison: cosine to the nearest class mean, cosine to the k-th nearest train embedding (Sun et
al. 2022) and the relative Mahalanobis distance (Ren et al. 2021). They need the train embeddings or
their statistics, which the bundle does not carry, so they are measured, not served.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from mushroom_common.catalog import load_catalog
from mushroom_common.verdict import OpenSetMethod, open_set_score

logger = logging.getLogger(__name__)

SERVABLE_METHODS: tuple[OpenSetMethod, ...] = ("max_logit", "energy", "max_probability")


class OpenSetResult(BaseModel):
    """What the open-set run measured."""

    model_config = ConfigDict(extra="forbid")

    held_out: list[str]
    held_out_dangerous: list[str]
    known_photos: int
    unknown_photos: int
    auroc: dict[str, float]
    method: OpenSetMethod
    threshold: float
    known_pass_rate_val: float
    known_flagged_test: float
    unknown_flagged: float
    known_top1_test: float


def choose_held_out(labels: list[str], fraction: float, min_dangerous: int, seed: int) -> list[str]:
    """A seeded choice of species to leave out, with at least `min_dangerous` dangerous ones."""
    catalog = load_catalog()
    rng = np.random.default_rng(seed)
    count = max(1, round(fraction * len(labels)))
    dangerous = sorted(label for label in labels if catalog.get(label).edibility.is_dangerous)
    picked = [str(x) for x in rng.choice(dangerous, min(min_dangerous, len(dangerous)), False)]
    rest = sorted(set(labels) - set(picked))
    picked += [str(x) for x in rng.choice(rest, max(0, count - len(picked)), False)]
    return sorted(picked)


def known_label_index(labels: list[str], held_out: list[str]) -> np.ndarray:
    """For each label index, its index among the kept (known) labels, or -1 when held out."""
    held = set(held_out)
    known = [i for i, label in enumerate(labels) if label not in held]
    remap = np.full(len(labels), -1, np.int64)
    remap[known] = np.arange(len(known))
    return remap


def auroc(known: np.ndarray, unknown: np.ndarray) -> float:
    """Probability that an unknown photo scores above a known one (ties count half)."""
    scores = np.concatenate([known, unknown])
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores), np.float64)
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    unknown_ranks = ranks[len(known) :].sum()
    n_unknown, n_known = len(unknown), len(known)
    return float((unknown_ranks - n_unknown * (n_unknown + 1) / 2) / (n_unknown * n_known))


def scores(logits: np.ndarray, method: OpenSetMethod) -> np.ndarray:
    """The served open-set score of every row of logits."""
    return np.array([open_set_score(row, method) for row in logits], np.float64)


def _normalise(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    normalised: np.ndarray = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return normalised


def class_mean_distance(
    train: np.ndarray, train_labels: np.ndarray, queries: np.ndarray
) -> np.ndarray:
    """Cosine distance of each query embedding to the nearest class mean of the train views."""
    classes = np.unique(train_labels)
    means = _normalise(np.stack([train[train_labels == c].mean(axis=0) for c in classes]))
    similarity = _normalise(queries) @ means.T
    distance: np.ndarray = 1.0 - similarity.max(axis=1)
    return distance


def knn_distance(train: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Cosine distance of each query embedding to its k-th nearest train embedding."""
    similarity = _normalise(queries) @ _normalise(train).T
    k = min(k, similarity.shape[1])
    kth: np.ndarray = -np.partition(-similarity, k - 1, axis=1)[:, k - 1]
    return 1.0 - kth


def relative_mahalanobis(
    train: np.ndarray, train_labels: np.ndarray, queries: np.ndarray, shrinkage: float = 0.5
) -> np.ndarray:
    """The smallest class Mahalanobis distance minus the distance to the whole train set.

    One covariance shared by the classes (a few dozen photos each cannot estimate their own),
    shrunk towards its mean variance; subtracting the background distance removes what all
    mushroom photos share (Ren et al. 2021, "A simple fix to Mahalanobis distance").
    """
    x, q = _normalise(train), _normalise(queries)
    classes = np.unique(train_labels)
    means = np.stack([x[train_labels == c].mean(axis=0) for c in classes])
    centred = x - means[np.searchsorted(classes, train_labels)]

    def whitening(deviations: np.ndarray) -> np.ndarray:
        cov = deviations.T @ deviations / len(deviations)
        ridge = shrinkage * np.trace(cov) / len(cov)
        shrunk = (1 - shrinkage) * cov + ridge * np.eye(len(cov))
        return np.linalg.cholesky(np.linalg.inv(shrunk))

    within, background = whitening(centred), whitening(x - x.mean(axis=0))
    zq, zm = q @ within, means @ within
    class_distance = (zq**2).sum(1)[:, None] - 2 * zq @ zm.T + (zm**2).sum(1)[None, :]
    zb = (q - x.mean(axis=0)) @ background
    relative: np.ndarray = (class_distance - (zb**2).sum(1)[:, None]).min(axis=1)
    return relative


# Embedding-space scores measured beside the served ones: (train, its labels, queries) -> score.
EmbeddingScore = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
EMBEDDING_SCORES: dict[str, EmbeddingScore] = {
    "class_mean_cosine": class_mean_distance,
    "knn_cosine_k1": lambda train, _, queries: knn_distance(train, queries, 1),
    "knn_cosine_k10": lambda train, _, queries: knn_distance(train, queries, 10),
    "relative_mahalanobis": relative_mahalanobis,
}


def score_aurocs(
    known_logits: np.ndarray,
    unknown_logits: np.ndarray,
    embeddings: dict[str, np.ndarray],
    train_labels: np.ndarray,
) -> dict[str, float]:
    """AUROC of every score: the servable ones on the logits, then the embedding-space ones.

    Args:
        known_logits: the open-set model's logits on known-species test photos.
        unknown_logits: its logits on photos of the left-out species.
        embeddings: pooled features under keys "train", "known_test", "unknown".
        train_labels: labels of the "train" embeddings.
    """
    result: dict[str, float] = {
        method: auroc(scores(known_logits, method), scores(unknown_logits, method))
        for method in SERVABLE_METHODS
    }
    train = embeddings["train"]
    for name, distance in EMBEDDING_SCORES.items():
        result[name] = auroc(
            distance(train, train_labels, embeddings["known_test"]),
            distance(train, train_labels, embeddings["unknown"]),
        )
    return result


def evaluate_open_set(
    *,
    held_out: list[str],
    val_logits: np.ndarray,
    known_test_logits: np.ndarray,
    known_test_labels: np.ndarray,
    unknown_logits: np.ndarray,
    embeddings: dict[str, np.ndarray],
    train_labels: np.ndarray,
    known_pass_rate: float,
) -> OpenSetResult:
    """Compare the scores and choose the served method and its threshold.

    Args:
        held_out: the species left out of the run.
        val_logits: the open-set model's logits on known-species validation photos.
        known_test_logits: its logits on known-species test photos.
        known_test_labels: their labels (in the open-set model's label order).
        unknown_logits: its logits on every photo of the left-out species.
        embeddings: pooled features under keys "train", "known_test", "unknown".
        train_labels: labels of the "train" embeddings.
        known_pass_rate: the threshold lets this share of known validation photos through.

    Returns:
        The measured result; the method is the servable one with the best AUROC.
    """
    catalog = load_catalog()
    result = score_aurocs(known_test_logits, unknown_logits, embeddings, train_labels)
    best: OpenSetMethod = max(SERVABLE_METHODS, key=lambda m: result[m])
    threshold = float(np.quantile(scores(val_logits, best), known_pass_rate))
    known_test_scores = scores(known_test_logits, best)
    unknown_scores = scores(unknown_logits, best)
    open_set = OpenSetResult(
        held_out=held_out,
        held_out_dangerous=[s for s in held_out if catalog.get(s).edibility.is_dangerous],
        known_photos=len(known_test_logits),
        unknown_photos=len(unknown_logits),
        auroc=result,
        method=best,
        threshold=threshold,
        known_pass_rate_val=float(np.mean(scores(val_logits, best) < threshold)),
        known_flagged_test=float(np.mean(known_test_scores >= threshold)),
        unknown_flagged=float(np.mean(unknown_scores >= threshold)),
        known_top1_test=float(np.mean(known_test_logits.argmax(axis=1) == known_test_labels)),
    )
    logger.info("open set: %s", open_set.model_dump())
    return open_set


def summary(result: OpenSetResult) -> dict[str, Any]:
    """The open-set result as plain JSON for run.json and the report."""
    return result.model_dump(mode="json")
