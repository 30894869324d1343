"""The safety rules: from calibrated probabilities to one verdict and one sentence.

Rules, in order (thresholds are settings, see the README):
1. `not_a_mushroom`: the bundle has a mushroom detector and its score is below the threshold.
2. `dangerous`: any label (not only the top k) that is deadly or poisonous has a calibrated
   probability >= the danger threshold.
3. `edible`: the top species is edible, its probability >= the edible threshold, and (by
   default) it has no deadly or poisonous look-alike that the model was never trained on,
   because the model's probabilities say nothing about species it cannot recognise.
4. `uncertain`: everything else.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from mushroom_api.schemas import LookalikePublic, SpeciesPredictionPublic, Verdict
from mushroom_common.catalog import Catalog, Species


@dataclass(frozen=True)
class VerdictRules:
    """The thresholds of the rules above."""

    danger_threshold: float
    edible_threshold: float
    detector_threshold: float | None
    unseen_lookalike_blocks_edible: bool = True


@dataclass(frozen=True)
class Judgement:
    """The verdict, its sentence, the top-k predictions and the top species' look-alikes."""

    verdict: Verdict
    message: str
    predictions: list[SpeciesPredictionPublic]
    lookalikes: list[LookalikePublic]


def display_name(species: Species) -> str:
    """'Death cap (Amanita phalloides)'."""
    name = species.english_names[0]
    return f"{name[:1].upper()}{name[1:]} ({species.scientific_name})"


def _percent(probability: float) -> str:
    if probability >= 0.995:
        return "over 99%"
    if probability < 0.01:
        return "under 1%"
    return f"{probability:.0%}"


def lookalikes_of(catalog: Catalog, species_id: str) -> list[LookalikePublic]:
    """The species' look-alikes from the catalog, most dangerous first."""
    return [
        LookalikePublic(
            species=other.id,
            scientific_name=other.scientific_name,
            common_names=other.english_names,
            edibility=other.edibility,
            distinguishing_feature=feature,
        )
        for other, feature in catalog.lookalikes_of(species_id)
    ]


def judge(
    probabilities: npt.NDArray[np.float64],
    labels: list[str],
    mushroom_score: float | None,
    catalog: Catalog,
    rules: VerdictRules,
    top_k: int,
) -> Judgement:
    """Apply the safety rules to one photo's calibrated probabilities.

    Args:
        probabilities: calibrated probabilities in label order.
        labels: catalog ids in the model's output order.
        mushroom_score: the detector's score, None when the bundle has no detector.
        catalog: the species catalog.
        rules: the thresholds.
        top_k: how many predictions to return.

    Returns:
        The judgement.
    """
    order = [int(i) for i in np.argsort(-probabilities, kind="stable")]
    species = [catalog.get(labels[i]) for i in order]
    probs = [float(probabilities[i]) for i in order]
    predictions = [
        SpeciesPredictionPublic(
            species=entry.id,
            scientific_name=entry.scientific_name,
            common_names=entry.english_names,
            probability=min(max(prob, 0.0), 1.0),
            edibility=entry.edibility,
        )
        for entry, prob in list(zip(species, probs, strict=True))[:top_k]
    ]
    top, top_prob = species[0], probs[0]
    lookalikes = lookalikes_of(catalog, top.id)

    if (
        mushroom_score is not None
        and rules.detector_threshold is not None
        and mushroom_score < rules.detector_threshold
    ):
        message = (
            "This photo does not seem to show a mushroom; take a close, sharp photo of one "
            "mushroom, cap and stem, in good light."
        )
        return Judgement(Verdict.NOT_A_MUSHROOM, message, predictions, lookalikes)

    dangerous = [
        (entry, prob)
        for entry, prob in zip(species, probs, strict=True)
        if entry.edibility.is_dangerous and prob >= rules.danger_threshold
    ]
    if dangerous:
        entry, prob = dangerous[0]
        kind = entry.edibility.value
        if entry.id == top.id:
            message = (
                f"This looks most like {display_name(entry)}, which is {kind} ({_percent(prob)} "
                "likely): do not eat it."
            )
        else:
            message = (
                f"This looks most like {display_name(top)}, but it could be the {kind} "
                f"{display_name(entry)} ({_percent(prob)} likely): do not eat it."
            )
        return Judgement(Verdict.DANGEROUS, message, predictions, lookalikes)

    if top.edibility.is_edible and top_prob >= rules.edible_threshold:
        known = set(labels)
        unseen = [la for la in lookalikes if la.edibility.is_dangerous and la.species not in known]
        if unseen and rules.unseen_lookalike_blocks_edible:
            pronoun = "them" if len(unseen) > 1 else "it"
            names = _join([f"the {la.edibility.value} {la.common_names[0]}" for la in unseen[:2]])
            message = (
                f"This looks like {display_name(top)} ({_percent(top_prob)} likely), but the model "
                f"was not trained to tell it from {names}, so it cannot rule {pronoun} out."
            )
            return Judgement(Verdict.UNCERTAIN, message, predictions, lookalikes)
        message = (
            f"This looks like {display_name(top)}, an edible species ({_percent(top_prob)} "
            "likely), but have an expert confirm it before you eat any."
        )
        return Judgement(Verdict.EDIBLE, message, predictions, lookalikes)

    message = (
        f"The model is not sure: the closest match is {display_name(top)} "
        f"({_percent(top_prob)} likely), so do not eat it without an expert's check."
    )
    return Judgement(Verdict.UNCERTAIN, message, predictions, lookalikes)


def _join(parts: list[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " or " + parts[-1]
