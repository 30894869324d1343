"""The safety rules on hand-made probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from mushroom_api.schemas import Verdict
from mushroom_api.services.verdict import Judgement, VerdictRules, judge
from mushroom_common.catalog import load_catalog

RULES = VerdictRules(danger_threshold=0.05, edible_threshold=0.9, detector_threshold=0.5)
LABELS = ["amanita_phalloides", "suillus_luteus", "boletus_edulis", "craterellus_cornucopioides"]


def _judge(
    probs: list[float], score: float | None = 0.9, rules: VerdictRules = RULES, k: int = 3
) -> Judgement:
    return judge(np.array(probs), LABELS, score, load_catalog(), rules, k)


def test_deadly_top_species_is_dangerous() -> None:
    result = _judge([0.97, 0.01, 0.01, 0.01])
    assert result.verdict is Verdict.DANGEROUS
    assert "Death cap" in result.message
    assert "do not eat" in result.message


def test_deadly_candidate_outside_top_k_still_makes_it_dangerous() -> None:
    # Death cap is fourth by probability but above the 5% danger threshold.
    labels = [
        "suillus_luteus",
        "craterellus_cornucopioides",
        "boletus_edulis",
        "amanita_phalloides",
    ]
    result = judge(np.array([0.4, 0.3, 0.24, 0.06]), labels, 0.9, load_catalog(), RULES, 1)
    assert result.verdict is Verdict.DANGEROUS
    assert [p.species for p in result.predictions] == ["suillus_luteus"]
    assert "could be the deadly Death cap" in result.message


def test_deadly_candidate_below_threshold_does_not_block_edible() -> None:
    result = _judge([0.04, 0.95, 0.005, 0.005])
    assert result.verdict is Verdict.EDIBLE
    assert result.predictions[0].species == "suillus_luteus"


def test_edible_needs_the_confidence_threshold() -> None:
    assert _judge([0.0, 0.89, 0.11, 0.0]).verdict is Verdict.UNCERTAIN
    assert _judge([0.0, 0.91, 0.09, 0.0]).verdict is Verdict.EDIBLE


def test_edible_with_unseen_dangerous_lookalike_is_uncertain_by_default() -> None:
    # Boletus edulis' poisonous look-alike Rubroboletus satanas is not among the labels.
    result = _judge([0.0, 0.0, 0.99, 0.01])
    assert result.verdict is Verdict.UNCERTAIN
    assert "Satan" in result.message
    assert result.lookalikes[0].edibility.is_dangerous
    relaxed = VerdictRules(0.05, 0.9, 0.5, unseen_lookalike_blocks_edible=False)
    assert _judge([0.0, 0.0, 0.99, 0.01], rules=relaxed).verdict is Verdict.EDIBLE


def test_lookalike_of_edible_species_that_is_edible_keeps_edible() -> None:
    # Horn of plenty's only catalog look-alike is the (edible) winter chanterelle.
    result = _judge([0.0, 0.0, 0.0, 1.0])
    assert result.verdict is Verdict.EDIBLE
    assert [la.species for la in result.lookalikes] == ["craterellus_tubaeformis"]


def test_low_mushroom_score_is_not_a_mushroom_and_skipped_without_detector() -> None:
    assert _judge([0.0, 1.0, 0.0, 0.0], score=0.2).verdict is Verdict.NOT_A_MUSHROOM
    no_detector = VerdictRules(0.05, 0.9, None)
    assert _judge([0.0, 1.0, 0.0, 0.0], score=None, rules=no_detector).verdict is Verdict.EDIBLE


@pytest.mark.parametrize("k", [1, 2, 4])
def test_predictions_are_sorted_and_cut_to_top_k(k: int) -> None:
    result = _judge([0.1, 0.2, 0.3, 0.4], k=k)
    probs = [p.probability for p in result.predictions]
    assert len(probs) == k
    assert probs == sorted(probs, reverse=True)


def test_lookalikes_put_dangerous_ones_first() -> None:
    labels = ["cantharellus_cibarius", "suillus_luteus"]
    result = judge(np.array([0.5, 0.5]), labels, None, load_catalog(), RULES, 2)
    ranks = [la.edibility.danger_rank for la in result.lookalikes]
    assert ranks == sorted(ranks)
    assert result.lookalikes[0].edibility.is_dangerous
