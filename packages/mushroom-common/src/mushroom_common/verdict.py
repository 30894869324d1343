"""The safety rules: from calibrated probabilities to one verdict and one sentence.

The API, the training evaluation (coverage curve, threshold tuning) and the phone (through the
exported rules file and its golden cases) all use these rules, so they cannot disagree.

Rules, in order (the thresholds come from the bundle, tuned on the validation split):
1. `not_a_mushroom`: the bundle has a mushroom detector and its score is below the threshold.
2. `dangerous`: the summed calibrated probability of every deadly or poisonous label (not only
   the top k) reaches the danger threshold. Summing matters with hundreds of species: ten
   similar Amanitas at 4% each are a 40% chance of a dangerous one.
3. `edible`: the top species is edible, its probability reaches the edible threshold, the photo
   does not look like a species the model never learned (the open-set score), and (by default)
   the species has no deadly or poisonous look-alike the model was never trained on.
4. `uncertain`: everything else; the sentence names the genus when the genus is clear but the
   species is not, and says when the species may be one the model does not know.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, Field

from mushroom_common.bundle import BundleMetadata, DecisionRulesSpec
from mushroom_common.catalog import Catalog, Edibility, Species

OpenSetMethod = Literal["max_logit", "energy", "max_probability"]


class Verdict(StrEnum):
    """The one-word answer, safety first."""

    DANGEROUS = "dangerous"
    EDIBLE = "edible"
    UNCERTAIN = "uncertain"
    NOT_A_MUSHROOM = "not_a_mushroom"


class SpeciesPredictionPublic(BaseModel):
    """One candidate species with its calibrated probability."""

    species: str = Field(description="catalog id")
    scientific_name: str
    common_names: list[str] = Field(description="English common names, most used first")
    probability: float = Field(ge=0, le=1, description="calibrated with the variant's temperature")
    edibility: Edibility


class GenusPredictionPublic(BaseModel):
    """One candidate genus: the summed probability of the model's species in it."""

    genus: str
    family: str | None = Field(description="the genus' family, where the catalog knows it")
    probability: float = Field(ge=0, le=1)
    holds_deadly: bool = Field(description="the catalog lists a deadly species in this genus")
    holds_poisonous: bool = Field(description="the catalog lists a poisonous species in it")


class LookalikePublic(BaseModel):
    """A species that is confused with another, and the feature that tells them apart."""

    species: str
    scientific_name: str
    common_names: list[str]
    edibility: Edibility
    distinguishing_feature: str = Field(
        description="'<the predicted species' trait> vs <this look-alike's trait>'"
    )


@dataclass(frozen=True, init=False)
class VerdictRules:
    """The thresholds of the rules above.

    `deadly_threshold` and `poisonous_threshold` default to `danger_threshold` (the single
    threshold of bundles written before the severities), `caution_threshold` to 0.02.
    """

    danger_threshold: float
    edible_threshold: float
    detector_threshold: float | None
    unseen_lookalike_blocks_edible: bool
    open_set_method: OpenSetMethod | None
    open_set_threshold: float | None
    genus_threshold: float
    deadly_threshold: float
    poisonous_threshold: float
    caution_threshold: float

    def __init__(
        self,
        danger_threshold: float,
        edible_threshold: float,
        detector_threshold: float | None,
        unseen_lookalike_blocks_edible: bool = True,
        open_set_method: OpenSetMethod | None = None,
        open_set_threshold: float | None = None,
        genus_threshold: float = 0.6,
        deadly_threshold: float | None = None,
        poisonous_threshold: float | None = None,
        caution_threshold: float = 0.02,
    ) -> None:
        values = {
            "danger_threshold": danger_threshold,
            "edible_threshold": edible_threshold,
            "detector_threshold": detector_threshold,
            "unseen_lookalike_blocks_edible": unseen_lookalike_blocks_edible,
            "open_set_method": open_set_method,
            "open_set_threshold": open_set_threshold,
            "genus_threshold": genus_threshold,
            "deadly_threshold": danger_threshold if deadly_threshold is None else deadly_threshold,
            "poisonous_threshold": (
                danger_threshold if poisonous_threshold is None else poisonous_threshold
            ),
            "caution_threshold": caution_threshold,
        }
        for name, value in values.items():
            object.__setattr__(self, name, value)

    @classmethod
    def from_bundle(
        cls,
        metadata: BundleMetadata,
        *,
        danger_threshold: float | None = None,
        edible_threshold: float | None = None,
        detector_threshold: float | None = None,
        unseen_lookalike_blocks_edible: bool | None = None,
    ) -> VerdictRules:
        """The bundle's tuned rules, with any threshold the operator overrides.

        An overridden `danger_threshold` sets both severity thresholds (the operator's one knob).
        """
        detector = metadata.mushroom_detector
        return cls.from_spec(
            metadata.decision_rules,
            detector.threshold if detector is not None else None,
            danger_threshold=danger_threshold,
            edible_threshold=edible_threshold,
            detector_threshold=detector_threshold,
            unseen_lookalike_blocks_edible=unseen_lookalike_blocks_edible,
        )

    @classmethod
    def from_spec(
        cls,
        spec: DecisionRulesSpec,
        bundle_detector_threshold: float | None,
        *,
        danger_threshold: float | None = None,
        edible_threshold: float | None = None,
        detector_threshold: float | None = None,
        unseen_lookalike_blocks_edible: bool | None = None,
    ) -> VerdictRules:
        """Rules from a bundle's decision spec and detector threshold, with overrides."""
        open_set = spec.open_set
        return cls(
            danger_threshold=danger_threshold or spec.danger_threshold,
            edible_threshold=edible_threshold or spec.edible_threshold,
            detector_threshold=(
                detector_threshold if detector_threshold is not None else bundle_detector_threshold
            ),
            unseen_lookalike_blocks_edible=(
                spec.unseen_lookalike_blocks_edible
                if unseen_lookalike_blocks_edible is None
                else unseen_lookalike_blocks_edible
            ),
            open_set_method=open_set.method if open_set is not None else None,
            open_set_threshold=open_set.threshold if open_set is not None else None,
            genus_threshold=spec.genus_threshold,
            deadly_threshold=danger_threshold or spec.deadly_threshold,
            poisonous_threshold=danger_threshold or spec.poisonous_threshold,
            caution_threshold=spec.caution_threshold,
        )


@dataclass(frozen=True)
class Judgement:
    """The verdict, its sentence, the top-k predictions, genera and the top species' look-alikes."""

    verdict: Verdict
    message: str
    predictions: list[SpeciesPredictionPublic]
    genera: list[GenusPredictionPublic]
    lookalikes: list[LookalikePublic]
    possibly_unknown_species: bool


def open_set_score(logits: npt.NDArray[np.floating], method: OpenSetMethod) -> float:
    """How much a photo looks like a species the model never learned (higher: more unknown).

    Args:
        logits: the model's raw logits for one photo.
        method: `max_logit` (minus the largest logit), `energy` (minus log-sum-exp of the
            logits) or `max_probability` (minus the largest softmax probability).

    Returns:
        The score; compare it with the bundle's open-set threshold.
    """
    values = np.asarray(logits, dtype=np.float64).ravel()
    top = float(values.max())
    if method == "max_logit":
        return -top
    if method == "energy":
        return -(top + float(np.log(np.exp(values - top).sum())))
    shifted = np.exp(values - top)
    return -float(shifted.max() / shifted.sum())


def display_name(species: Species) -> str:
    """'the death cap (Amanita phalloides)', or 'Amanita abrupta' when it has no English name."""
    name = species.english_names[0]
    if name.casefold() == species.scientific_name.casefold():
        return species.scientific_name
    return f"the {name} ({species.scientific_name})"


def percent(probability: float) -> str:
    """'over 99%', 'under 1%' or '57%'."""
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


def genus_ranking(
    probabilities: Sequence[float] | npt.NDArray[np.float64],
    labels: Sequence[str],
    catalog: Catalog,
    limit: int | None = None,
) -> list[GenusPredictionPublic]:
    """The genera of the model's labels with their summed probability, most likely first.

    Args:
        probabilities: calibrated probabilities in label order.
        labels: catalog ids in the model's output order.
        catalog: the species catalog.
        limit: how many genera to return (None: all of them).
    """
    view = catalog.label_view(labels)
    values = np.asarray(probabilities, dtype=np.float64)
    if values.shape != (len(view.species),):
        raise ValueError(f"{values.shape[0]} probabilities for {len(view.species)} labels")
    totals = np.bincount(view.genus_index, weights=values, minlength=len(view.genera))
    # Most likely first; ties by name, so the order does not depend on the label order.
    ranked = sorted(range(len(view.genera)), key=lambda g: (-totals[g], view.genera[g]))
    return [
        GenusPredictionPublic(
            genus=view.genera[g],
            family=view.families[g],
            probability=min(max(float(totals[g]), 0.0), 1.0),
            holds_deadly=Edibility.DEADLY in catalog.genus_edibilities(view.genera[g]),
            holds_poisonous=Edibility.POISONOUS in catalog.genus_edibilities(view.genera[g]),
        )
        for g in ranked[:limit]
    ]


def judge(
    probabilities: npt.NDArray[np.float64],
    labels: list[str],
    mushroom_score: float | None,
    catalog: Catalog,
    rules: VerdictRules,
    top_k: int,
    unknown_score: float | None = None,
    top_genera: int = 3,
    view_probabilities: npt.NDArray[np.float64] | None = None,
) -> Judgement:
    """Apply the safety rules to one photo's calibrated probabilities.

    Args:
        probabilities: calibrated probabilities in label order.
        labels: catalog ids in the model's output order.
        mushroom_score: the detector's score, None when the bundle has no detector.
        catalog: the species catalog.
        rules: the thresholds.
        top_k: how many species predictions to return.
        unknown_score: the open-set score (`open_set_score`), None when the bundle has none.
        top_genera: how many genera to return.
        view_probabilities: calibrated probabilities [V, C] of the views behind `probabilities`
            (test-time views of the photo, or an observation's photos); `edible` needs every
            row to agree on the top species and its genus. None: one view, nothing to check.

    Returns:
        The judgement.
    """
    view = catalog.label_view(labels)
    order = np.argsort(-probabilities, kind="stable")
    predictions = [
        SpeciesPredictionPublic(
            species=entry.id,
            scientific_name=entry.scientific_name,
            common_names=entry.english_names,
            probability=min(max(float(probabilities[i]), 0.0), 1.0),
            edibility=entry.edibility,
        )
        for i in order[:top_k]
        for entry in (view.species[i],)
    ]
    genera = genus_ranking(probabilities, labels, catalog, limit=top_genera)
    top, top_prob = view.species[order[0]], float(probabilities[order[0]])
    lookalikes = lookalikes_of(catalog, top.id)
    possibly_unknown = (
        unknown_score is not None
        and rules.open_set_threshold is not None
        and unknown_score >= rules.open_set_threshold
    )

    def answer(verdict: Verdict, message: str) -> Judgement:
        return Judgement(verdict, message, predictions, genera, lookalikes, possibly_unknown)

    if (
        mushroom_score is not None
        and rules.detector_threshold is not None
        and mushroom_score < rules.detector_threshold
    ):
        return answer(
            Verdict.NOT_A_MUSHROOM,
            "This photo does not seem to show a mushroom; take a close, sharp photo of one "
            "mushroom, cap and stem, in good light.",
        )

    # Every deadly or poisonous label counts, not only the top k; the likeliest one is named.
    dangerous = order[view.dangerous[order]]
    dangerous_mass = float(probabilities[view.dangerous].sum())
    deadly = np.array([entry.edibility is Edibility.DEADLY for entry in view.species])
    deadly_mass = float(probabilities[deadly].sum())
    if dangerous.size and (
        dangerous_mass >= rules.poisonous_threshold or deadly_mass >= rules.deadly_threshold
    ):
        entry, prob = view.species[dangerous[0]], float(probabilities[dangerous[0]])
        kind = entry.edibility.value
        if entry.id == top.id:
            message = (
                f"The model is {percent(prob)} sure this is {display_name(entry)}, which is "
                f"{kind}: do not eat it."
            )
        else:
            message = (
                f"This looks most like {display_name(top)}, but it could be "
                f"{display_name(entry)}, which is {kind}: the model gives deadly and poisonous "
                f"species a {percent(dangerous_mass)} chance together, so do not eat it."
            )
        return answer(Verdict.DANGEROUS, message)

    if possibly_unknown:
        return answer(
            Verdict.UNCERTAIN,
            "This may be a species the model does not know: it is only "
            f"{percent(top_prob)} sure of its closest match, {display_name(top)}, so do not eat "
            "it without an expert's check.",
        )

    if top.edibility.is_edible and top_prob >= rules.edible_threshold:
        known = set(labels)
        unseen = [la for la in lookalikes if la.edibility.is_dangerous and la.species not in known]
        if unseen and rules.unseen_lookalike_blocks_edible:
            pronoun = "them" if len(unseen) > 1 else "it"
            names = _join([f"the {la.edibility.value} {la.common_names[0]}" for la in unseen[:2]])
            return answer(
                Verdict.UNCERTAIN,
                f"The model is {percent(top_prob)} sure this is {display_name(top)}, but it was "
                f"not trained to tell it from {names}, so it cannot rule {pronoun} out.",
            )
        if not views_agree(view_probabilities, int(order[0]), view.genus_index):
            return answer(
                Verdict.UNCERTAIN,
                f"The model is {percent(top_prob)} sure this is {display_name(top)}, but not every "
                "view of the photo gives the same answer, so do not eat it without an expert's "
                "check.",
            )
        return answer(
            Verdict.EDIBLE,
            f"The model is {percent(top_prob)} sure this is {display_name(top)}, an edible "
            "species, but have an expert confirm it before you eat any.",
        )

    best_genus = genera[0]
    if best_genus.probability >= rules.genus_threshold and top_prob < rules.genus_threshold:
        return answer(
            Verdict.UNCERTAIN,
            f"The species is not clear, but the model is {percent(best_genus.probability)} sure "
            f"this is {_article(best_genus.genus)} {best_genus.genus}: {_genus_advice(best_genus)}",
        )

    return answer(
        Verdict.UNCERTAIN,
        f"The model is not sure: it is {percent(top_prob)} sure of its closest match, "
        f"{display_name(top)}, so do not eat it without an expert's check.",
    )


def views_agree(
    view_probabilities: npt.NDArray[np.float64] | None,
    top_index: int,
    genus_index: npt.NDArray[np.intp],
) -> bool:
    """Whether, in every view, the top species and its genus are the most likely (ties agree).

    Args:
        view_probabilities: calibrated probabilities [V, C] (None or one row of them: agrees).
        top_index: the label the answer puts first.
        genus_index: each label's genus position (`LabelView.genus_index`).
    """
    if view_probabilities is None:
        return True
    rows = np.atleast_2d(np.asarray(view_probabilities, dtype=np.float64))
    if rows.shape[1] != genus_index.shape[0]:
        raise ValueError(f"view probabilities {rows.shape} for {genus_index.shape[0]} labels")
    genus_totals = np.zeros((rows.shape[0], int(genus_index.max()) + 1))
    for g in range(genus_totals.shape[1]):
        genus_totals[:, g] = rows[:, genus_index == g].sum(axis=1)
    top_genus = genus_index[top_index]
    return bool(
        np.all(rows[:, top_index] >= rows.max(axis=1))
        and np.all(genus_totals[:, top_genus] >= genus_totals.max(axis=1))
    )


def _genus_advice(genus: GenusPredictionPublic) -> str:
    if genus.holds_deadly:
        return "this genus holds deadly mushrooms, so do not eat it."
    if genus.holds_poisonous:
        return "this genus holds poisonous mushrooms, so do not eat it."
    return "which species it is matters, so do not eat it without an expert's check."


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _join(parts: list[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " or " + parts[-1]
