"""Tuning the verdict thresholds on the validation split, and measuring the verdicts as served.

The search runs a vectorised copy of the rules in `mushroom_common.verdict` over a grid; the
chosen thresholds are then checked photo by photo with the real `judge`, which is what the API
and the phone run, and every reported number comes from that check.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from mushroom_common.bundle import DecisionRulesSpec, OpenSetSpec
from mushroom_common.catalog import Catalog, Edibility
from mushroom_common.runtime import calibrated_probabilities
from mushroom_common.verdict import OpenSetMethod, Verdict, VerdictRules, judge, open_set_score
from mushroom_training import field
from mushroom_training.config import SafetySettings
from mushroom_training.metrics import poison_cost, softmax

logger = logging.getLogger(__name__)


@dataclass
class SplitOutputs:
    """A variant's outputs on one split, with the true species of each photo."""

    logits: np.ndarray
    mushroom_scores: np.ndarray | None
    true_species: list[str]


@dataclass
class _Prepared:
    probabilities: np.ndarray
    top: np.ndarray
    top_probability: np.ndarray
    danger_mass: np.ndarray
    top_edible_clear: np.ndarray
    possibly_unknown: np.ndarray
    detector_rejects: np.ndarray
    true_dangerous: np.ndarray
    true_edible: np.ndarray
    top_correct: np.ndarray


def _prepare(
    outputs: SplitOutputs,
    labels: list[str],
    catalog: Catalog,
    temperature: float,
    detector_threshold: float | None,
    open_set: OpenSetSpec | None,
) -> _Prepared:
    probabilities = softmax(outputs.logits, temperature)
    top = probabilities.argmax(axis=1)
    entries = [catalog.get(label) for label in labels]
    dangerous = np.array([e.edibility.is_dangerous for e in entries])
    edible = np.array([e.edibility.is_edible for e in entries])
    known = set(labels)
    # An edible species with a dangerous look-alike the model never learned cannot be `edible`.
    clear = np.array(
        [
            e.edibility.is_edible
            and not any(
                other.edibility.is_dangerous and other.id not in known
                for other, _ in catalog.lookalikes_of(e.id)
            )
            for e in entries
        ]
    )
    unknown = np.zeros(len(top), bool)
    if open_set is not None:
        unknown = np.array(
            [open_set_score(row, open_set.method) >= open_set.threshold for row in outputs.logits]
        )
    rejects = np.zeros(len(top), bool)
    if detector_threshold is not None and outputs.mushroom_scores is not None:
        rejects = outputs.mushroom_scores.ravel() < detector_threshold
    true = [catalog.get(s) for s in outputs.true_species]
    index = {label: i for i, label in enumerate(labels)}
    true_index = np.array([index.get(s, -1) for s in outputs.true_species])
    return _Prepared(
        probabilities=probabilities,
        top=top,
        top_probability=probabilities.max(axis=1),
        danger_mass=probabilities[:, dangerous].sum(axis=1),
        top_edible_clear=clear[top] & edible[top],
        possibly_unknown=unknown,
        detector_rejects=rejects,
        true_dangerous=np.array([t.edibility.is_dangerous for t in true]),
        true_edible=np.array([t.edibility.is_edible for t in true]),
        top_correct=top == true_index,
    )


def _edible_answers(p: _Prepared, danger: float, edible: float) -> np.ndarray:
    mask: np.ndarray = (
        ~p.detector_rejects
        & (p.danger_mass < danger)
        & ~p.possibly_unknown
        & p.top_edible_clear
        & (p.top_probability >= edible)
    )
    return mask


def _outcome(p: _Prepared, danger: float, edible: float) -> dict[str, float]:
    answered_edible = _edible_answers(p, danger, edible)
    edible_photos = max(int(p.true_edible.sum()), 1)
    return {
        "danger_threshold": danger,
        "edible_threshold": edible,
        "dangerous_as_edible": int((answered_edible & p.true_dangerous).sum()),
        # What the calibrated model itself expects: the summed deadly/poisonous probability of
        # the photos it answers `edible`. Near misses count here, not only the photos that failed.
        "expected_dangerous_as_edible": float(p.danger_mass[answered_edible].sum()),
        "edible_coverage": float((answered_edible & p.true_edible & p.top_correct).sum())
        / edible_photos,
        "edible_wrong_species": int((answered_edible & ~p.top_correct).sum()),
        "not_edible_as_edible": int((answered_edible & ~p.true_edible).sum()),
    }


def tune_rules(
    val: SplitOutputs,
    labels: list[str],
    catalog: Catalog,
    temperature: float,
    detector_threshold: float | None,
    open_set: OpenSetSpec | None,
    settings: SafetySettings,
) -> tuple[DecisionRulesSpec, list[dict[str, float]]]:
    """The thresholds with the most edible coverage on val and no dangerous photo called edible.

    Safe also means the model expects at most `settings.max_expected_dangerous_as_edible` such
    photos on val: a few hundred dangerous photos that all happened to pass say little about a
    threshold that lets through many photos with a few percent of danger each. The edible
    threshold is then raised by `settings.margin_steps` grid steps (the validation split is
    small); when no grid point is safe, the bundle never answers `edible`.

    Returns:
        The rules to ship in the bundle and the whole validation grid (for the report).
    """
    prepared = _prepare(val, labels, catalog, temperature, detector_threshold, open_set)
    grid = [
        _outcome(prepared, danger, edible)
        for danger in settings.danger_thresholds
        for edible in settings.edible_thresholds
    ]
    safe = [
        row
        for row in grid
        if row["dangerous_as_edible"] == 0
        and row["expected_dangerous_as_edible"] <= settings.max_expected_dangerous_as_edible
    ]
    if not safe:
        # Nothing on the grid is safe: never answer `edible` (a threshold above 1).
        spec = DecisionRulesSpec(
            danger_threshold=min(settings.danger_thresholds),
            edible_threshold=1.01,
            open_set=open_set,
        )
        logger.warning("no edible threshold is safe on val: the bundle never answers 'edible'")
        return spec, grid
    # Most coverage; then fewer inedible/unknown photos answered edible; then the lower (safer)
    # danger threshold.
    best = max(
        safe,
        key=lambda r: (r["edible_coverage"], -r["not_edible_as_edible"], -r["danger_threshold"]),
    )
    ladder = sorted(settings.edible_thresholds)
    step = ladder.index(best["edible_threshold"]) + settings.margin_steps
    spec = DecisionRulesSpec(
        danger_threshold=best["danger_threshold"],
        edible_threshold=ladder[min(step, len(ladder) - 1)],
        open_set=open_set,
    )
    logger.info("decision rules tuned on val: %s (val: %s)", spec, best)
    return spec, grid


def coverage_curve(
    outputs: SplitOutputs,
    labels: list[str],
    catalog: Catalog,
    temperature: float,
    detector_threshold: float | None,
    rules: DecisionRulesSpec,
    edible_thresholds: list[float],
) -> list[dict[str, float]]:
    """Edible coverage against dangerous-as-edible as the edible threshold moves."""
    prepared = _prepare(outputs, labels, catalog, temperature, detector_threshold, rules.open_set)
    return [_outcome(prepared, rules.danger_threshold, t) for t in edible_thresholds]


def judged_outcome(
    outputs: SplitOutputs,
    labels: list[str],
    catalog: Catalog,
    temperature: float,
    rules: VerdictRules,
) -> dict[str, Any]:
    """Every photo through the real `judge`: verdict counts and the safety numbers."""
    probabilities = softmax(outputs.logits, temperature)
    verdicts: dict[str, int] = {v.value: 0 for v in Verdict}
    by_class: dict[str, dict[str, int]] = {}
    dangerous_as_edible = edible_right = edible_photos = unknown_flagged = 0
    dangerous_labels = np.array([catalog.get(label).edibility.is_dangerous for label in labels])
    decided: list[str] = []
    for i, true_species in enumerate(outputs.true_species):
        score = None if outputs.mushroom_scores is None else float(outputs.mushroom_scores[i])
        judgement = judge(
            probabilities[i],
            labels,
            score,
            catalog,
            rules,
            1,
            unknown_score=rules.unknown_score(outputs.logits[i]),
        )
        verdicts[judgement.verdict.value] += 1
        # The species the app puts forward: FungiCLEF's poisonous re-ranking, i.e. the most
        # likely dangerous species whenever the verdict is `dangerous`.
        if judgement.verdict is Verdict.DANGEROUS:
            masked = np.where(dangerous_labels, probabilities[i], -1.0)
            decided.append(labels[int(masked.argmax())])
        else:
            decided.append(judgement.predictions[0].species)
        truth = catalog.get(true_species).edibility
        row = by_class.setdefault(truth.value, {v.value: 0 for v in Verdict})
        row[judgement.verdict.value] += 1
        unknown_flagged += int(judgement.possibly_unknown_species)
        if truth.is_edible:
            edible_photos += 1
            edible_right += int(
                judgement.verdict is Verdict.EDIBLE
                and judgement.predictions[0].species == true_species
            )
        if truth.is_dangerous and judgement.verdict is Verdict.EDIBLE:
            dangerous_as_edible += 1
    cost = poison_cost(outputs.true_species, decided)
    return {
        "photos": len(outputs.true_species),
        "poison_cost_reranked": cost.cost,
        "psc_reranked": cost.psc,
        "esc_reranked": cost.esc,
        "verdicts": verdicts,
        "verdicts_by_true_edibility": by_class,
        "dangerous_as_edible": dangerous_as_edible,
        "edible_photos": edible_photos,
        "edible_coverage": edible_right / max(edible_photos, 1),
        "possibly_unknown_flagged": unknown_flagged,
    }


# ----------------------------------------------------------------------------- field tuning


@dataclass(frozen=True)
class FieldAnswers:
    """Calibrated answers of photos of known species (field validation photos, for tuning).

    `view_probabilities` [N, V, C] are the test-time views behind `probabilities` (None: one).
    """

    probabilities: np.ndarray
    true_species: list[str]
    mushroom_scores: np.ndarray | None = None
    unknown_scores: np.ndarray | None = None
    view_probabilities: np.ndarray | None = None


@dataclass(frozen=True)
class FieldTuningSettings:
    """The severity grid and the targets of issue 23 that the tuning must meet on field val.

    Red and "not edible" are separate knobs. `dangerous` (red) reads the severity thresholds
    (deadly strictly below poisonous), tuned for the toxic-recall target with the fewest edible
    photos answered `dangerous`. `edible` keeps the served model's proven margin: the caution
    threshold (summed deadly + poisonous probability that forbids `edible`) is searched only at
    or below `caution_cap`, the danger level at which the served rules answered no dangerous
    photo `edible` on any split; and a learned dangerous look-alike of the top species at
    `lookalike_thresholds` or more forbids it too (None: that rule off). After the grid,
    `edible` also needs the detector's mushroom score to reach the `edible_score_quantile` of
    the scores of the photos the tuned rules answer `edible` with the right species
    (`edible_mushroom_score`): a photo the detector barely accepts is weak evidence, and by
    construction the rule costs at most that share of the right `edible` answers there.
    """

    deadly_thresholds: tuple[float, ...] = (0.02, 0.03, 0.05, 0.08, 0.1, 0.15, 0.2)
    poisonous_thresholds: tuple[float, ...] = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5)
    edible_thresholds: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.875, 0.9, 0.95, 1.01)
    caution_thresholds: tuple[float, ...] = (0.01, 0.015, 0.02, 0.03)
    lookalike_thresholds: tuple[float | None, ...] = (0.002, 0.005, 0.01, 0.02, None)
    caution_cap: float = 0.03
    min_toxic_answered_dangerous: float = 0.90
    edible_score_quantile: float = 0.02


def verdict_rates(
    answers: FieldAnswers, labels: list[str], catalog: Catalog, rules: VerdictRules
) -> dict[str, float | int | None]:
    """Issue 23's verdict numbers of these answers under these rules (vectorised `judge`), with
    the toxic and edible photos answered "do not eat, it could be ..." (a caution: amber)."""
    from mushroom_common.verdict import Reason

    batch = _batch(answers, labels, catalog, rules)
    verdicts = [v.value for v in batch.as_verdicts()]
    rates = _rates(verdicts, answers, labels, catalog)
    caution = batch.reason_mask(Reason.CAUTION) | batch.reason_mask(Reason.DANGEROUS_LOOKALIKE)
    truth = _Truth.of(answers, labels, catalog)
    toxic, edible = int(truth.toxic.sum()), int(truth.edible.sum())
    rates["toxic_answered_caution"] = int((caution & truth.toxic).sum()) / toxic if toxic else None
    rates["edible_answered_caution"] = (
        int((caution & truth.edible).sum()) / edible if edible else None
    )
    return rates


def answer_features(answers: FieldAnswers, labels: list[str], catalog: Catalog) -> Any:
    """The verdict features of these answers (`verdict_features`), ready for any rules."""
    from mushroom_common.verdict import verdict_features

    return verdict_features(
        answers.probabilities,
        labels,
        catalog,
        mushroom_scores=answers.mushroom_scores,
        unknown_scores=answers.unknown_scores,
        view_probabilities=answers.view_probabilities,
    )


def _batch(answers: FieldAnswers, labels: list[str], catalog: Catalog, rules: VerdictRules) -> Any:
    from mushroom_common.verdict import verdicts_from_features

    return verdicts_from_features(answer_features(answers, labels, catalog), rules)


def unknown_verdicts(
    unknown: FieldAnswers, labels: list[str], catalog: Catalog, rules: VerdictRules
) -> tuple[list[str], list[Edibility | None], list[int]]:
    """Photos of species the model does not know: each one's verdict, its species' catalog
    edibility (None: not in the catalog) and the indexes of the dangerous ones."""
    verdicts = [v.value for v in _batch(unknown, labels, catalog, rules).as_verdicts()]
    edibility = [catalog.get(t).edibility if t in catalog else None for t in unknown.true_species]
    dangerous = [i for i, e in enumerate(edibility) if e is not None and e.is_dangerous]
    return verdicts, edibility, dangerous


def view_answers(
    logits: np.ndarray,
    scores: np.ndarray,
    truth: list[str],
    temperature: float,
    open_set: OpenSetMethod | None,
    mirror: tuple[np.ndarray, np.ndarray] | None = None,
) -> FieldAnswers:
    """The served answers (`runtime.run_views`): each view (the photo and, with `mirror`, the
    logits and detector scores of its mirror image) calibrated on its own and averaged, logits
    and detector scores averaged; the open-set score on the averaged logits."""
    per_view = [calibrated_probabilities(logits, temperature)]
    if mirror is not None:
        mirror_logits, mirror_scores = mirror
        per_view.append(calibrated_probabilities(mirror_logits, temperature))
        logits = (logits + mirror_logits) / 2
        scores = (scores + mirror_scores) / 2
    stacked = np.stack(per_view, axis=1).astype(np.float64)
    unknown = (
        np.array([open_set_score(row, open_set) for row in logits])
        if open_set is not None
        else None
    )
    return FieldAnswers(
        probabilities=stacked.mean(axis=1),
        true_species=truth,
        mushroom_scores=np.asarray(scores, np.float64),
        unknown_scores=unknown,
        view_probabilities=stacked if mirror is not None else None,
    )


def _rates(
    verdicts: list[str], answers: FieldAnswers, labels: list[str], catalog: Catalog
) -> dict[str, float | int | None]:
    truth = answers.true_species
    top1 = [labels[i] for i in answers.probabilities.argmax(axis=1)]
    edibility = [catalog.get(t).edibility for t in truth]
    toxic = [i for i, e in enumerate(edibility) if e.is_dangerous]
    edible = [i for i, e in enumerate(edibility) if e.is_edible]
    return {
        "photos": len(truth),
        "toxic_photos": len(toxic),
        "edible_photos": len(edible),
        **field.target_rates(verdicts, truth, top1, toxic, edible),
        "answered_edible": sum(v == "edible" for v in verdicts),
        "answered_edible_wrong_species": sum(
            v == "edible" and top1[i] != truth[i] for i, v in enumerate(verdicts)
        ),
        "answered_dangerous": sum(v == "dangerous" for v in verdicts),
    }


@dataclass(frozen=True)
class _Truth:
    """What `_rates` reads of a set's truth, as masks (computed once per set for the grid)."""

    toxic: np.ndarray
    edible: np.ndarray
    right: np.ndarray

    @classmethod
    def of(cls, answers: FieldAnswers, labels: list[str], catalog: Catalog) -> _Truth:
        truth = answers.true_species
        edibility = [catalog.get(t).edibility for t in truth]
        top1 = [labels[i] for i in answers.probabilities.argmax(axis=1)]
        return cls(
            toxic=np.array([e.is_dangerous for e in edibility], dtype=bool),
            edible=np.array([e.is_edible for e in edibility], dtype=bool),
            right=np.array([a == b for a, b in zip(top1, truth, strict=True)], dtype=bool),
        )


def _fast_rates(verdicts: Any, truth: _Truth) -> dict[str, float | int | None]:
    """`_rates` from a `BatchVerdicts` and precomputed masks (same numbers, numpy only)."""
    dangerous = verdicts.verdict_mask(Verdict.DANGEROUS)
    edible = verdicts.verdict_mask(Verdict.EDIBLE)
    n_toxic, n_edible = int(truth.toxic.sum()), int(truth.edible.sum())

    def rate(mask: np.ndarray, total: int) -> float | None:
        return int(mask.sum()) / total if total else None

    return {
        "photos": len(truth.toxic),
        "toxic_photos": n_toxic,
        "edible_photos": n_edible,
        "toxic_answered_dangerous": rate(dangerous & truth.toxic, n_toxic),
        "edible_answered_dangerous": rate(dangerous & truth.edible, n_edible),
        "edible_answered_edible_right": rate(edible & truth.edible & truth.right, n_edible),
        "dangerous_answered_edible": int((edible & truth.toxic).sum()),
        "answered_edible": int(edible.sum()),
        "answered_edible_wrong_species": int((edible & ~truth.right).sum()),
        "answered_dangerous": int(dangerous.sum()),
    }


def _wrong_share(rates: list[dict[str, Any]]) -> float:
    """Of all `edible` answers of these sets, the share that named the wrong species."""
    edible = sum(int(r["answered_edible"] or 0) for r in rates)
    wrong = sum(int(r["answered_edible_wrong_species"] or 0) for r in rates)
    return wrong / edible if edible else 0.0


def tune_field_rules(
    field_val: FieldAnswers,
    safety_sets: list[FieldAnswers],
    labels: list[str],
    catalog: Catalog,
    base: VerdictRules,
    settings: FieldTuningSettings,
) -> tuple[VerdictRules, list[dict[str, Any]]]:
    """Severity thresholds tuned on field validation photos (never the field test).

    Every grid point (deadly < poisonous, caution <= `caution_cap`, look-alike and edible
    thresholds) is judged on field validation; the admissible ones answer no deadly/poisonous
    photo `edible` on field val nor on any of `safety_sets` (e.g. the in-source val split) and
    answer at least `min_toxic_answered_dangerous` of the toxic photos `dangerous` on field val
    and on each safety set (field val alone holds a few dozen toxic photos: too few to tune a
    recall on), and whose `edible` answers name the wrong species no more often (over field val
    and the safety sets together) than the base rules' do. Among them the fewest edible photos
    answered `dangerous`, then the most edible photos answered `edible` with the right species,
    then the safer thresholds (lower severity, caution and look-alike thresholds, a higher
    edible threshold). When none is admissible the toxic-recall target is dropped (safety
    first: the zero stays and so does the wrong-species bound).

    Returns:
        The rules and the whole grid with each point's field-val numbers.
    """
    from mushroom_common.verdict import verdicts_from_features

    def features_of(a: FieldAnswers) -> Any:
        return answer_features(a, labels, catalog)

    val_features = features_of(field_val)
    val_truth = _Truth.of(field_val, labels, catalog)
    others = [(_Truth.of(a, labels, catalog), features_of(a)) for a in safety_sets]
    grid: list[dict[str, Any]] = []
    points = [
        (deadly, poisonous, caution, lookalike, edible)
        for deadly in settings.deadly_thresholds
        for poisonous in settings.poisonous_thresholds
        if poisonous > deadly
        for caution in settings.caution_thresholds
        if caution <= settings.caution_cap
        for lookalike in settings.lookalike_thresholds
        for edible in settings.edible_thresholds
    ]
    for deadly, poisonous, caution, lookalike, edible in points:
        rules = _with(base, deadly, poisonous, caution, edible, lookalike)
        row: dict[str, Any] = {
            "deadly_threshold": deadly,
            "poisonous_threshold": poisonous,
            "caution_threshold": caution,
            "lookalike_threshold": lookalike,
            "edible_threshold": edible,
            **_fast_rates(verdicts_from_features(val_features, rules), val_truth),
        }
        other_rates = [_fast_rates(verdicts_from_features(f, rules), t) for t, f in others]
        row["other_dangerous_answered_edible"] = sum(
            int(r["dangerous_answered_edible"] or 0) for r in other_rates
        )
        row["other_toxic_answered_dangerous"] = min(
            (float(r["toxic_answered_dangerous"] or 0.0) for r in other_rates),
            default=1.0,
        )
        row["edible_wrong_species_share"] = _wrong_share([row, *other_rates])
        grid.append(row)
    # `edible` may not name the wrong species more often than the base (served) rules do on the
    # same validation photos: a lower edible threshold buys right answers with wrong ones.
    base_share = _wrong_share(
        [_fast_rates(verdicts_from_features(f, base), t) for t, f in [(val_truth, val_features)]]
        + [_fast_rates(verdicts_from_features(f, base), t) for t, f in others]
    )
    safe = [
        r
        for r in grid
        if r["dangerous_answered_edible"] == 0
        and r["other_dangerous_answered_edible"] == 0
        and r["edible_wrong_species_share"] <= base_share + 1e-12
    ]
    admissible = [
        r
        for r in safe
        if (r["toxic_answered_dangerous"] or 0.0) >= settings.min_toxic_answered_dangerous
        and r["other_toxic_answered_dangerous"] >= settings.min_toxic_answered_dangerous
    ] or safe
    if not admissible:
        logger.warning("no grid point is safe on field val: the base rules are kept")
        return base, grid
    best = min(
        admissible,
        key=lambda r: (
            r["edible_answered_dangerous"] or 0.0,
            -(r["edible_answered_edible_right"] or 0.0),
            r["deadly_threshold"],
            r["poisonous_threshold"],
            r["caution_threshold"],
            2.0 if r["lookalike_threshold"] is None else r["lookalike_threshold"],
            -r["edible_threshold"],
        ),
    )
    logger.info("field-val rules: %s", best)
    chosen = _with(
        base,
        best["deadly_threshold"],
        best["poisonous_threshold"],
        best["caution_threshold"],
        best["edible_threshold"],
        best["lookalike_threshold"],
    )
    return chosen, grid


def _with(
    base: VerdictRules,
    deadly: float,
    poisonous: float,
    caution: float,
    edible: float,
    lookalike: float | None,
) -> VerdictRules:
    return VerdictRules(
        danger_threshold=poisonous,
        edible_threshold=edible,
        detector_threshold=base.detector_threshold,
        unseen_lookalike_blocks_edible=base.unseen_lookalike_blocks_edible,
        open_set_method=base.open_set_method,
        open_set_threshold=base.open_set_threshold,
        genus_threshold=base.genus_threshold,
        deadly_threshold=deadly,
        poisonous_threshold=poisonous,
        caution_threshold=caution,
        genus_danger_share=base.genus_danger_share,
        lookalike_threshold=lookalike,
        edible_mushroom_score=base.edible_mushroom_score,
    )


def with_edible_mushroom_score(rules: VerdictRules, score: float | None) -> VerdictRules:
    """The same rules with another `edible_mushroom_score` (None: that rule off)."""
    return dataclasses.replace(rules, edible_mushroom_score=score)


def edible_mushroom_score(
    decision_sets: list[FieldAnswers],
    labels: list[str],
    catalog: Catalog,
    rules: VerdictRules,
    quantile: float,
) -> float | None:
    """The mushroom score `edible` needs: a low quantile of the scores of the photos these sets
    answer `edible` with the right species under `rules` (with the mushroom-score rule off).

    Only the decision sets (field validation, in-source val) choose it, never the field test.
    `method="lower"` picks a score a photo really had, so photos at it stay `edible` and at most
    about `quantile` of those right `edible` answers are lost.

    Args:
        decision_sets: the answers the rules are tuned on.
        labels: catalog ids in the model's output order.
        catalog: the species catalog.
        rules: the tuned rules (their own `edible_mushroom_score` is ignored: a re-tune must not
            ratchet up on the previous bundle's value).
        quantile: the share of right `edible` answers the rule may cost (e.g. 0.02).

    Returns:
        The score, or None when the rules have no detector, a set has no mushroom scores, or
        no photo is answered `edible` with the right species.
    """
    if rules.detector_threshold is None:
        return None
    off = with_edible_mushroom_score(rules, None)
    scores: list[np.ndarray] = []
    for answers in decision_sets:
        if answers.mushroom_scores is None:
            return None
        batch = _batch(answers, labels, catalog, off)
        right = _Truth.of(answers, labels, catalog).right
        scores.append(answers.mushroom_scores[batch.verdict_mask(Verdict.EDIBLE) & right])
    pooled = np.concatenate(scores) if scores else np.empty(0)
    if pooled.size == 0:
        return None
    return float(np.quantile(pooled, quantile, method="lower"))


def severity_curves(
    answers: FieldAnswers,
    labels: list[str],
    catalog: Catalog,
    rules: VerdictRules,
    thresholds: tuple[float, ...] = (0.02, 0.03, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.7),
) -> dict[str, list[dict[str, Any]]]:
    """Verdict trade-off curves by severity: each threshold moved alone, the others as `rules`."""
    curves: dict[str, list[dict[str, Any]]] = {"deadly_threshold": [], "poisonous_threshold": []}
    for t in thresholds:
        for name in curves:
            deadly = t if name == "deadly_threshold" else rules.deadly_threshold
            poisonous = t if name == "poisonous_threshold" else rules.poisonous_threshold
            moved = _with(
                rules,
                deadly,
                poisonous,
                rules.caution_threshold,
                rules.edible_threshold,
                rules.lookalike_threshold,
            )
            curves[name].append({name: t, **verdict_rates(answers, labels, catalog, moved)})
    return curves
