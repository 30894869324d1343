"""The safety rules on hand-made probabilities."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from mushroom_common.bundle import DecisionRulesSpec
from mushroom_common.catalog import load_catalog
from mushroom_common.verdict import (
    Judgement,
    OpenSetMethod,
    Reason,
    Verdict,
    VerdictRules,
    genus_danger_share,
    genus_ranking,
    judge,
    open_set_score,
    verdict_features,
    verdicts_from_features,
)

RULES = VerdictRules(danger_threshold=0.05, edible_threshold=0.9, detector_threshold=0.5)
LABELS = ["amanita_phalloides", "suillus_luteus", "boletus_edulis", "craterellus_cornucopioides"]


def _judge(
    probs: list[float], score: float | None = 0.9, rules: VerdictRules = RULES, k: int = 3
) -> Judgement:
    return judge(np.array(probs), LABELS, score, load_catalog(), rules, k)


def test_deadly_top_species_is_dangerous() -> None:
    result = _judge([0.97, 0.01, 0.01, 0.01])
    assert result.verdict is Verdict.DANGEROUS
    assert result.message == (
        "The model is 97% sure this is the death cap (Amanita phalloides), which is deadly: "
        "do not eat it."
    )


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
    assert "but it could be the death cap (Amanita phalloides), which is deadly" in result.message


def test_deadly_candidate_below_threshold_is_a_caution_not_dangerous() -> None:
    result = _judge([0.04, 0.95, 0.005, 0.005])
    assert result.verdict is Verdict.UNCERTAIN
    assert result.reason is Reason.CAUTION
    assert result.caution is not None
    assert [c.species for c in result.caution.lookalikes] == ["amanita_phalloides"]
    assert result.caution.lookalikes[0].probability == pytest.approx(0.04)
    assert "do not eat it: it could be the deadly death cap" in result.message
    # Under the caution threshold the death cap is ruled out.
    assert _judge([0.01, 0.97, 0.01, 0.01]).verdict is Verdict.EDIBLE


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


def test_many_small_dangerous_candidates_add_up_to_dangerous() -> None:
    # No single deadly label reaches 5%, but together they do: with hundreds of species the
    # probability of a dangerous look-alike is spread over its relatives.
    labels = ["boletus_edulis", "amanita_phalloides", "amanita_virosa", "amanita_pantherina"]
    result = judge(np.array([0.91, 0.03, 0.03, 0.03]), labels, 0.9, load_catalog(), RULES, 3)
    assert result.verdict is Verdict.DANGEROUS
    assert "do not eat it" in result.message


def test_possibly_unknown_species_is_never_edible() -> None:
    rules = VerdictRules(0.05, 0.9, 0.5, open_set_method="max_logit", open_set_threshold=-5.0)
    known = _judge([0.0, 0.0, 0.0, 1.0], rules=rules)
    assert known.verdict is Verdict.EDIBLE  # no unknown score given: the rule does not apply
    result = judge(
        np.array([0.0, 0.0, 0.0, 1.0]), LABELS, 0.9, load_catalog(), rules, 3, unknown_score=-4.0
    )
    assert result.verdict is Verdict.UNCERTAIN
    assert result.possibly_unknown_species
    assert "may be a species the model does not know" in result.message


def test_likely_genus_of_mostly_dangerous_species_is_dangerous() -> None:
    labels = ["amanita_caesarea", "amanita_rubescens", "boletus_edulis", "suillus_luteus"]
    result = judge(np.array([0.45, 0.45, 0.05, 0.05]), labels, 0.9, load_catalog(), RULES, 3)
    assert result.verdict is Verdict.DANGEROUS
    assert result.reason is Reason.DANGEROUS_GENUS
    assert "most Amanita species are deadly or poisonous" in result.message
    assert genus_danger_share(load_catalog(), "Amanita") > 0.5
    assert genus_danger_share(load_catalog(), "Suillus") == 0.0


def test_clear_genus_without_clear_species_names_the_genus_and_its_danger() -> None:
    labels = ["amanita_caesarea", "amanita_rubescens", "boletus_edulis", "suillus_luteus"]
    rules = VerdictRules(
        0.05, 0.9, 0.5, unseen_lookalike_blocks_edible=False, genus_danger_share=1.0
    )
    result = judge(np.array([0.45, 0.45, 0.05, 0.05]), labels, 0.9, load_catalog(), rules, 3)
    assert result.verdict is Verdict.UNCERTAIN
    assert result.genera[0].genus == "Amanita"
    assert result.genera[0].probability == pytest.approx(0.9)
    assert result.genera[0].holds_deadly
    assert "an Amanita: this genus holds deadly mushrooms" in result.message


def test_genus_ranking_sums_species_and_sorts() -> None:
    labels = ["amanita_caesarea", "boletus_edulis", "amanita_rubescens", "suillus_luteus"]
    genera = genus_ranking([0.2, 0.5, 0.25, 0.05], labels, load_catalog())
    assert [(g.genus, round(g.probability, 6)) for g in genera] == [
        ("Boletus", 0.5),
        ("Amanita", 0.45),
        ("Suillus", 0.05),
    ]


def test_genus_ranking_of_every_trained_label_matches_a_plain_sum() -> None:
    catalog = load_catalog()
    labels = catalog.trained_ids
    probabilities = np.random.default_rng(7).dirichlet(np.ones(len(labels)))
    expected: dict[str, float] = {}
    for label, probability in zip(labels, probabilities, strict=True):
        genus = catalog.get(label).genus
        expected[genus] = expected.get(genus, 0.0) + float(probability)
    genera = genus_ranking(probabilities, labels, catalog)
    assert {g.genus: g.probability for g in genera} == pytest.approx(expected)
    assert [g.probability for g in genera] == sorted((g.probability for g in genera), reverse=True)
    assert genus_ranking(probabilities, labels, catalog, limit=3) == genera[:3]
    with pytest.raises(ValueError, match="probabilities for"):
        genus_ranking(probabilities[:-1], labels, catalog)


@pytest.mark.parametrize("method", ["max_logit", "energy", "max_probability"])
def test_open_set_score_is_higher_for_flat_logits(method: OpenSetMethod) -> None:
    confident = np.array([9.0, 0.0, 0.0, 0.0])
    flat = np.array([1.0, 0.9, 0.8, 0.7])
    assert open_set_score(flat, method) > open_set_score(confident, method)


@pytest.mark.parametrize("method", ["max_logit", "energy", "max_probability"])
def test_rules_give_the_open_set_score_of_their_method_and_none_without_one(
    method: OpenSetMethod,
) -> None:
    logits = np.array([2.0, 0.5, 0.1])
    with_method = VerdictRules(0.3, 0.9, None, open_set_method=method, open_set_threshold=0.0)
    assert with_method.unknown_score(logits) == open_set_score(logits, method)
    assert VerdictRules(0.3, 0.9, None).unknown_score(logits) is None


def test_severity_thresholds_default_to_the_danger_threshold() -> None:
    from mushroom_common.bundle import DecisionRulesSpec

    old = DecisionRulesSpec.model_validate({"danger_threshold": 0.03})
    assert (old.deadly_threshold, old.poisonous_threshold) == (0.03, 0.03)
    new = DecisionRulesSpec(danger_threshold=0.2, deadly_threshold=0.05, poisonous_threshold=0.3)
    rules = VerdictRules.from_spec(new, 0.5)
    assert (rules.deadly_threshold, rules.poisonous_threshold) == (0.05, 0.3)
    assert VerdictRules(0.04, 0.9, None).deadly_threshold == 0.04
    only_poisonous = DecisionRulesSpec.model_validate({"poisonous_threshold": 0.25})
    assert only_poisonous.danger_threshold == 0.25


def test_deadly_warns_below_the_poisonous_threshold() -> None:
    rules = VerdictRules(0.3, 0.9, 0.5, deadly_threshold=0.05, poisonous_threshold=0.3)
    assert _judge([0.06, 0.94, 0.0, 0.0], rules=rules).verdict is Verdict.DANGEROUS
    assert _judge([0.04, 0.96, 0.0, 0.0], rules=rules).verdict is not Verdict.DANGEROUS


def test_edible_needs_every_view_to_agree() -> None:
    probs = np.array([0.0, 0.95, 0.05, 0.0])
    views = np.array([[0.0, 0.99, 0.01, 0.0], [0.0, 0.4, 0.6, 0.0]])
    judged = judge(probs, LABELS, 0.9, load_catalog(), RULES, 3, view_probabilities=views)
    assert judged.verdict is Verdict.UNCERTAIN
    agreeing = judge(probs, LABELS, 0.9, load_catalog(), RULES, 3, view_probabilities=views[:1])
    assert agreeing.verdict is Verdict.EDIBLE


def test_caution_names_the_unseen_lookalike_its_feature_and_view() -> None:
    catalog = load_catalog()
    labels = ["cantharellus_cibarius", "suillus_luteus", "boletus_edulis"]
    result = judge(np.array([0.97, 0.02, 0.01]), labels, None, catalog, RULES, 3)
    assert result.reason is Reason.CAUTION
    assert result.caution is not None
    first = result.caution.lookalikes[0]
    assert first.edibility.value == "deadly"  # most dangerous first
    assert first.probability is None  # the model never learned it
    assert first.distinguishing_feature is not None
    assert first.view is not None
    assert first.distinguishing_feature in result.message
    assert len(result.caution.lookalikes) <= 3


def test_unknown_species_gets_a_sentence_whatever_the_verdict() -> None:
    rules = VerdictRules(0.05, 0.9, 0.5, open_set_method="max_logit", open_set_threshold=-5.0)
    catalog = load_catalog()
    dangerous = judge(np.array([0.97, 0.01, 0.01, 0.01]), LABELS, 0.9, catalog, rules, 3, -4.0)
    assert dangerous.verdict is Verdict.DANGEROUS
    assert dangerous.unknown_species_message is not None
    assert "never taught" in dangerous.unknown_species_message
    known = judge(np.array([0.97, 0.01, 0.01, 0.01]), LABELS, 0.9, catalog, rules, 3, -6.0)
    assert known.unknown_species_message is None


def test_edible_needs_the_top_species_genus_to_be_the_likeliest() -> None:
    labels = ["suillus_luteus", "boletus_edulis", "boletus_erythropus"]
    rules = VerdictRules(0.05, 0.4, None, unseen_lookalike_blocks_edible=False)
    result = judge(np.array([0.42, 0.29, 0.29]), labels, None, load_catalog(), rules, 3)
    assert result.reason is Reason.GENUS_DISAGREES
    assert result.verdict is Verdict.UNCERTAIN


def _random_answers(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    # Peaked and flat rows, some with exact ties.
    logits = rng.normal(0.0, rng.uniform(0.5, 6.0, (n, 1)), (n, size))
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    probs[::17] = 1.0 / size
    return probs


@pytest.mark.parametrize(
    "rules",
    [
        RULES,
        VerdictRules(0.3, 0.6, 0.5, deadly_threshold=0.05, poisonous_threshold=0.3),
        VerdictRules(
            0.2,
            0.5,
            0.4,
            unseen_lookalike_blocks_edible=False,
            open_set_method="max_probability",
            open_set_threshold=-0.5,
            genus_threshold=0.4,
            caution_threshold=0.1,
            genus_danger_share=0.9,
        ),
        VerdictRules(
            0.6,
            0.3,
            0.4,
            unseen_lookalike_blocks_edible=False,
            deadly_threshold=0.5,
            caution_threshold=0.5,
            lookalike_threshold=0.01,
        ),
        VerdictRules(
            0.6,
            0.3,
            0.2,
            unseen_lookalike_blocks_edible=False,
            deadly_threshold=0.5,
            caution_threshold=0.5,
            edible_mushroom_score=0.6,
        ),
    ],
)
def test_vectorised_verdicts_equal_judge(rules: VerdictRules) -> None:
    catalog = load_catalog()
    labels = [
        *LABELS,
        "cantharellus_cibarius",
        "amanita_caesarea",
        "amanita_muscaria",
        "suillus_bovinus",
        "macrolepiota_procera",
        "agaricus_campestris",
        "omphalotus_olearius",
    ]
    rng = np.random.default_rng(5)
    probs = _random_answers(rng, 600, len(labels))
    views = np.stack([probs, _random_answers(rng, 600, len(labels))], axis=1)
    views[::2, 1] = probs[::2]  # half the views agree exactly
    scores = rng.uniform(0, 1, 600)
    unknown = -probs.max(axis=1)
    features = verdict_features(
        probs,
        labels,
        catalog,
        mushroom_scores=scores,
        unknown_scores=unknown,
        view_probabilities=views,
    )
    batch = verdicts_from_features(features, rules)
    reasons = [
        judge(
            probs[i],
            labels,
            float(scores[i]),
            catalog,
            rules,
            3,
            unknown_score=float(unknown[i]),
            view_probabilities=views[i],
        ).reason
        for i in range(len(probs))
    ]
    assert [r.value for r in reasons] == [
        Reason(list(Reason)[code]).value for code in batch.reasons
    ]
    assert len(set(reasons)) >= 6
    if rules.lookalike_threshold is not None:
        assert Reason.DANGEROUS_LOOKALIKE in reasons
    if rules.edible_mushroom_score is not None:
        assert Reason.UNCLEAR_PHOTO in reasons
        assert Reason.EDIBLE in reasons


def test_a_learned_dangerous_lookalike_forbids_edible() -> None:
    """The field test's jack-o'-lantern answered 'chanterelle, 95%': its own label's probability
    is small and the summed danger mass under the caution threshold, yet no 'edible'."""
    labels = ["cantharellus_cibarius", "omphalotus_olearius", "boletus_edulis"]
    probs = np.array([0.95, 0.012, 0.038])
    rules = VerdictRules(0.3, 0.9, None, False, deadly_threshold=0.1, caution_threshold=0.03)
    assert judge(probs, labels, None, load_catalog(), rules, 3).verdict is Verdict.EDIBLE
    guarded = VerdictRules(
        0.3,
        0.9,
        None,
        False,
        deadly_threshold=0.1,
        caution_threshold=0.03,
        lookalike_threshold=0.01,
    )
    result = judge(probs, labels, None, load_catalog(), guarded, 3)
    assert result.verdict is Verdict.UNCERTAIN
    assert result.reason is Reason.DANGEROUS_LOOKALIKE
    assert result.caution is not None
    assert result.caution.lookalikes[0].species == "omphalotus_olearius"
    assert result.caution.lookalikes[0].probability == pytest.approx(0.012)
    assert "jack-o'-lantern" in result.message
    features = verdict_features(probs[None, :], labels, load_catalog())
    assert features.top_lookalike_probability[0] == pytest.approx(0.012)
    batch = verdicts_from_features(features, guarded)
    assert batch.reason_mask(Reason.DANGEROUS_LOOKALIKE).tolist() == [True]


# The detector-negatives benchmark's leaf litter: a blurry crop the detector barely accepted
# (0.065 against 0.019), answered "glistening inkcap, 88%, edible".
INKCAP_LABELS = [
    "coprinellus_micaceus",
    "coprinopsis_atramentaria",
    "hypholoma_fasciculare",
    "boletus_edulis",
]
INKCAP = np.array([0.88, 0.005, 0.005, 0.11])


def test_edible_needs_a_clear_mushroom_score() -> None:
    catalog = load_catalog()
    old = VerdictRules(0.05, 0.85, 0.019)
    assert judge(INKCAP, INKCAP_LABELS, 0.065, catalog, old, 3).verdict is Verdict.EDIBLE
    rules = VerdictRules(0.05, 0.85, 0.019, edible_mushroom_score=0.3)
    result = judge(INKCAP, INKCAP_LABELS, 0.065, catalog, rules, 3)
    assert result.verdict is Verdict.UNCERTAIN
    assert result.reason is Reason.UNCLEAR_PHOTO
    assert result.message == (
        "The model is 88% sure this is the glistening inkcap (Coprinellus micaceus), but the "
        "photo does not clearly show a mushroom, so do not eat it without an expert's check; "
        "take a close, sharp photo of the cap, stem and gills."
    )
    # At the score it is edible; without a detector the rule cannot apply.
    assert judge(INKCAP, INKCAP_LABELS, 0.3, catalog, rules, 3).reason is Reason.EDIBLE
    assert judge(INKCAP, INKCAP_LABELS, None, catalog, rules, 3).reason is Reason.EDIBLE
    # Under the detector's own threshold it is still 'not a mushroom' (rule 1 comes first).
    assert judge(INKCAP, INKCAP_LABELS, 0.01, catalog, rules, 3).reason is Reason.NOT_A_MUSHROOM


def test_a_low_mushroom_score_does_not_hide_a_disagreement() -> None:
    """Views and genus are checked first, as every implementation does: the reason names the
    first condition that fails."""
    catalog = load_catalog()
    rules = VerdictRules(0.05, 0.85, 0.019, edible_mushroom_score=0.3)
    flipped = np.array([0.2, 0.005, 0.005, 0.79])
    views = np.stack([INKCAP, flipped])
    result = judge(INKCAP, INKCAP_LABELS, 0.065, catalog, rules, 3, view_probabilities=views)
    assert result.reason is Reason.VIEWS_DISAGREE


def test_vectorised_unclear_photo_equals_judge() -> None:
    catalog = load_catalog()
    rules = VerdictRules(0.05, 0.85, 0.019, edible_mushroom_score=0.3)
    probs = np.stack([INKCAP] * 4)
    scores = np.array([0.01, 0.065, 0.3, 0.9])
    batch = verdicts_from_features(
        verdict_features(probs, INKCAP_LABELS, catalog, mushroom_scores=scores), rules
    )
    expected = [
        judge(probs[i], INKCAP_LABELS, float(scores[i]), catalog, rules, 3).reason
        for i in range(len(scores))
    ]
    assert expected == [
        Reason.NOT_A_MUSHROOM,
        Reason.UNCLEAR_PHOTO,
        Reason.EDIBLE,
        Reason.EDIBLE,
    ]
    assert [list(Reason)[code] for code in batch.reasons] == expected
    # No detector: no mushroom scores, the rule is off in both paths.
    no_detector = verdicts_from_features(verdict_features(probs, INKCAP_LABELS, catalog), rules)
    assert no_detector.reason_mask(Reason.EDIBLE).all()


def test_the_spec_round_trips_the_edible_mushroom_score() -> None:
    spec = DecisionRulesSpec.model_validate({"edible_mushroom_score": 0.25})
    again = DecisionRulesSpec.model_validate_json(spec.model_dump_json())
    assert again.edible_mushroom_score == 0.25
    assert VerdictRules.from_spec(again, 0.019).edible_mushroom_score == 0.25
    # Bundles written before it: rule off.
    assert VerdictRules.from_spec(DecisionRulesSpec(), 0.019).edible_mushroom_score is None
    with pytest.raises(ValidationError):
        DecisionRulesSpec.model_validate({"edible_mushroom_score": 1.5})
