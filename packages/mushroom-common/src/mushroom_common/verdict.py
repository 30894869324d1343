"""The safety rules: from calibrated probabilities to one verdict and one sentence.

The API, the training evaluation (threshold sweeps by severity, coverage curves) and the phone
(through the exported rules file and its golden cases) all use these rules, so they cannot
disagree. `judge` answers one photo or observation; `verdict_features` + `verdicts_from_features`
give the same verdicts for many photos at once (vectorised), for threshold sweeps.

Rules, in order (the thresholds come from the bundle, tuned on validation photos):
1. `not_a_mushroom`: the bundle has a mushroom detector and its score is below the threshold.
2. `dangerous`: the app believes this is probably a dangerous mushroom. Any of:
   a. the top species is deadly or poisonous;
   b. the summed probability of the deadly and poisonous labels (all of them, not only the top
      k) reaches `poisonous_threshold`;
   c. the summed probability of the deadly labels reaches `deadly_threshold` (lower: a deadly
      candidate warns sooner);
   d. the species is not clear (top species under `genus_threshold`) but the genus is (summed
      probability >= `genus_threshold`), and that genus is mostly dangerous: more than
      `genus_danger_share` of its catalog species of known edibility are deadly or poisonous.
      (A clear harmless species, a field mushroom at 97%, is judged as a species: rule 3.)
   Summing matters with hundreds of species: ten similar Amanitas at 4% each are a 40% chance.
3. `uncertain` with a `caution` ("do not eat, it could be X"): the top species is not dangerous,
   but a dangerous species is not ruled out: the deadly and poisonous labels together reach
   `caution_threshold`, or the top species has a deadly or poisonous catalog look-alike that the
   model never learned (when `unseen_lookalike_blocks_edible`). The caution names them
   (`caution_candidates`), the feature that tells them apart and the photo (`PhotoView`) that
   shows it.
3b. `uncertain` with a `caution`, for the same reason: a deadly or poisonous catalog look-alike
   of the top species that the model learned has `lookalike_threshold` or more on its own (when
   the bundle sets one). This is the guard for a harmless species with a dangerous twin the model
   knows (a jack-o'-lantern answered "chanterelle, 95%" with its own label at 1%): the twin's own
   probability is the evidence, however small the summed danger mass.
4. `uncertain`: the photo looks like a species the model never learned (the open-set score).
5. `edible`: the top species is edible, its probability reaches `edible_threshold`, its genus
   is the most likely genus, and every view (test-time views of the photo, or the photos of an
   observation) puts the same species and genus first, and the mushroom detector's score reaches
   `edible_mushroom_score` (when the bundle sets one and has a detector: a photo the detector
   barely accepts is weak evidence, whether a blurry mushroom or leaf litter). Checked in that
   order; otherwise `uncertain`, saying why.
6. `uncertain`: everything else; the sentence names the genus when the genus is clear but the
   species is not.
Whatever the verdict, `unknown_species_message` carries a sentence for the person when the
open-set score says the species may be one the model does not know.

Every sum over labels runs sequentially in label order (`np.cumsum`, or `np.bincount`, never
`np.sum`'s pairwise summation), so the phone's TypeScript replay adds in the same order and gets
the same bits: deadly mass, danger mass and each genus' total.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, Field

from mushroom_common.bundle import BundleMetadata, DecisionRulesSpec
from mushroom_common.catalog import Catalog, Edibility, PhotoView, Species

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
    view: PhotoView | None = Field(
        None, description="the photo that shows the telling feature (none: smell, taste, ...)"
    )


class CautionLookalikePublic(BaseModel):
    """A deadly or poisonous species the answer cannot rule out."""

    species: str = Field(description="catalog id")
    scientific_name: str
    common_names: list[str]
    edibility: Edibility
    probability: float | None = Field(
        ge=0, le=1, description="the model's probability; null: the model never learned it"
    )
    distinguishing_feature: str | None = Field(
        description="'<the top species' trait> vs <this species' trait>'; null when the catalog "
        "does not list it as a look-alike of the top species"
    )
    view: PhotoView | None = Field(description="the photo that shows the telling feature")


class CautionPublic(BaseModel):
    """'Do not eat it, it could be ...': the top species is harmless, a dangerous one is not
    ruled out."""

    species: str = Field(description="the top species' catalog id")
    lookalikes: list[CautionLookalikePublic] = Field(
        description="most dangerous first, then most likely; at most three"
    )


class Reason(StrEnum):
    """Which rule decided (one per branch of the rules above); for tests, tuning and reports."""

    NOT_A_MUSHROOM = "not_a_mushroom"
    DANGEROUS_SPECIES = "dangerous_species"
    POISONOUS_SUM = "poisonous_sum"
    DEADLY_SUM = "deadly_sum"
    DANGEROUS_GENUS = "dangerous_genus"
    CAUTION = "caution"
    DANGEROUS_LOOKALIKE = "dangerous_lookalike"
    UNKNOWN_SPECIES = "unknown_species"
    VIEWS_DISAGREE = "views_disagree"
    GENUS_DISAGREES = "genus_disagrees"
    UNCLEAR_PHOTO = "unclear_photo"
    EDIBLE = "edible"
    CLEAR_GENUS = "clear_genus"
    NOT_SURE = "not_sure"


REASON_VERDICT: dict[Reason, Verdict] = {
    Reason.NOT_A_MUSHROOM: Verdict.NOT_A_MUSHROOM,
    Reason.DANGEROUS_SPECIES: Verdict.DANGEROUS,
    Reason.POISONOUS_SUM: Verdict.DANGEROUS,
    Reason.DEADLY_SUM: Verdict.DANGEROUS,
    Reason.DANGEROUS_GENUS: Verdict.DANGEROUS,
    Reason.CAUTION: Verdict.UNCERTAIN,
    Reason.DANGEROUS_LOOKALIKE: Verdict.UNCERTAIN,
    Reason.UNKNOWN_SPECIES: Verdict.UNCERTAIN,
    Reason.VIEWS_DISAGREE: Verdict.UNCERTAIN,
    Reason.GENUS_DISAGREES: Verdict.UNCERTAIN,
    Reason.UNCLEAR_PHOTO: Verdict.UNCERTAIN,
    Reason.EDIBLE: Verdict.EDIBLE,
    Reason.CLEAR_GENUS: Verdict.UNCERTAIN,
    Reason.NOT_SURE: Verdict.UNCERTAIN,
}

UNKNOWN_SPECIES_MESSAGE = (
    "This photo may show a species the model was never taught, so even its closest matches "
    "may all be wrong."
)
CAUTION_LIMIT = 3


@dataclass(frozen=True, init=False)
class VerdictRules:
    """The thresholds of the rules above.

    `deadly_threshold` and `poisonous_threshold` default to `danger_threshold` (the single
    threshold of bundles written before the severities), `caution_threshold` to 0.02 and
    `genus_danger_share` to 0.5 (a genus is dangerous when more than half of its species of
    known edibility are; 1 turns the genus rule off). `lookalike_threshold` None (bundles written
    before it) turns rule 3b off; `edible_mushroom_score` None turns the mushroom-score
    condition of rule 5 off.
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
    genus_danger_share: float
    lookalike_threshold: float | None
    edible_mushroom_score: float | None

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
        genus_danger_share: float = 0.5,
        lookalike_threshold: float | None = None,
        edible_mushroom_score: float | None = None,
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
            "genus_danger_share": genus_danger_share,
            "lookalike_threshold": lookalike_threshold,
            "edible_mushroom_score": edible_mushroom_score,
        }
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def unknown_score(self, logits: npt.NDArray[np.floating]) -> float | None:
        """The open-set score `judge` reads for one answer's logits (None: no open-set rule)."""
        if self.open_set_method is None:
            return None
        return open_set_score(logits, self.open_set_method)

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
            genus_danger_share=spec.genus_danger_share,
            lookalike_threshold=spec.lookalike_threshold,
            edible_mushroom_score=spec.edible_mushroom_score,
        )


@dataclass(frozen=True)
class Judgement:
    """The verdict, its sentence, the top-k predictions, genera and the top species' look-alikes.

    `caution` is set with `Reason.CAUTION` and `Reason.DANGEROUS_LOOKALIKE` ("do not eat, it
    could be ..."), and
    `unknown_species_message` whenever the open-set score says the species may be one the model
    never learned.
    """

    verdict: Verdict
    message: str
    predictions: list[SpeciesPredictionPublic]
    genera: list[GenusPredictionPublic]
    lookalikes: list[LookalikePublic]
    possibly_unknown_species: bool
    reason: Reason = Reason.NOT_SURE
    caution: CautionPublic | None = None
    unknown_species_message: str | None = None


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
    views = {la.id: la.view for la in catalog.get(species_id).lookalikes}
    return [
        LookalikePublic(
            species=other.id,
            scientific_name=other.scientific_name,
            common_names=other.english_names,
            edibility=other.edibility,
            distinguishing_feature=feature,
            view=views.get(other.id),
        )
        for other, feature in catalog.lookalikes_of(species_id)
    ]


def genus_danger_share(catalog: Catalog, genus: str) -> float:
    """The share of the genus' catalog species of known edibility that are deadly or poisonous.

    Species whose edibility the sources do not establish (`unknown`) do not count either way;
    a genus with none of known edibility has share 0.
    """
    known = [
        entry.edibility
        for entry in catalog.species
        if entry.genus == genus and entry.edibility is not Edibility.UNKNOWN
    ]
    return sum(e.is_dangerous for e in known) / len(known) if known else 0.0


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
    # bincount adds in label order, one label after the other (the phone's order too).
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


def ordered_sum(values: npt.NDArray[np.float64], mask: npt.NDArray[np.bool_]) -> npt.NDArray[Any]:
    """The sum of the masked labels along the last axis, added one by one in label order.

    Adding the unmasked labels' 0.0 changes no bit, so this equals a loop over the masked labels:
    the order the phone uses.
    """
    masked = np.where(mask, values, 0.0)
    if masked.shape[-1] == 0:
        return np.zeros(masked.shape[:-1])
    return np.cumsum(masked, axis=-1)[..., -1]


def genus_totals(values: npt.NDArray[np.float64], genus_index: npt.NDArray[np.intp]) -> Any:
    """Each genus' summed probability [..., G] (label order, one label after the other)."""
    count = int(genus_index.max()) + 1 if genus_index.size else 0
    totals = np.zeros((*values.shape[:-1], count))
    for g in range(count):
        totals[..., g] = ordered_sum(values, genus_index == g)
    return totals


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
    if rows.ndim != 2 or rows.shape[1] != genus_index.shape[0]:
        raise ValueError(f"view probabilities {rows.shape} for {genus_index.shape[0]} labels")
    totals = genus_totals(rows, genus_index)
    top_genus = genus_index[top_index]
    return bool(
        np.all(rows[:, top_index] >= rows.max(axis=1))
        and np.all(totals[:, top_genus] >= totals.max(axis=1))
    )


def learned_lookalike(
    probabilities: npt.NDArray[np.float64],
    labels: Sequence[str],
    catalog: Catalog,
    top_id: str,
) -> Species | None:
    """The top species' likeliest deadly or poisonous catalog look-alike that is a model label
    (ties: the catalog's order, most dangerous first); None when it has none."""
    index = {label: i for i, label in enumerate(labels)}
    best: tuple[Species, float] | None = None
    for other, _ in catalog.lookalikes_of(top_id):
        position = index.get(other.id)
        if other.edibility.is_dangerous and position is not None:
            prob = float(probabilities[position])
            if best is None or prob > best[1]:
                best = (other, prob)
    return None if best is None else best[0]


def caution_candidates(
    probabilities: npt.NDArray[np.float64],
    labels: Sequence[str],
    catalog: Catalog,
    top_id: str,
    rules: VerdictRules,
) -> list[CautionLookalikePublic]:
    """The deadly or poisonous species a caution names for an answer topped by `top_id`.

    In this order, each species once, cut to `CAUTION_LIMIT`:
    1. the dangerous labels at `caution_threshold` or more, most likely first;
    2. the top species' dangerous catalog look-alikes (most dangerous first, then catalog
       order): those the model learned, and those it never learned when
       `unseen_lookalike_blocks_edible`;
    3. the other dangerous labels with some probability, most likely first.
    A catalog look-alike of the top species carries its telling feature and photo view.
    """
    index = {label: i for i, label in enumerate(labels)}
    features = {la.id: la for la in catalog.get(top_id).lookalikes}
    order = np.argsort(-probabilities, kind="stable")
    picked: list[tuple[str, float | None]] = []

    def pick(species_id: str, prob: float | None) -> None:
        if species_id != top_id and all(species_id != p for p, _ in picked):
            picked.append((species_id, prob))

    for i in order:
        if (
            float(probabilities[i]) >= rules.caution_threshold
            and catalog.get(labels[i]).edibility.is_dangerous
        ):
            pick(labels[i], float(probabilities[i]))
    for other, _ in catalog.lookalikes_of(top_id):
        position = index.get(other.id)
        if other.edibility.is_dangerous and (
            position is not None or rules.unseen_lookalike_blocks_edible
        ):
            pick(other.id, None if position is None else float(probabilities[position]))
    for i in order:
        if float(probabilities[i]) > 0 and catalog.get(labels[i]).edibility.is_dangerous:
            pick(labels[i], float(probabilities[i]))
    return [
        _caution_entry(
            catalog.get(species_id),
            prob,
            features[species_id].distinguishing_feature if species_id in features else None,
            features[species_id].view if species_id in features else None,
        )
        for species_id, prob in picked[:CAUTION_LIMIT]
    ]


def _caution_entry(
    species: Species, probability: float | None, feature: str | None, view: PhotoView | None
) -> CautionLookalikePublic:
    return CautionLookalikePublic(
        species=species.id,
        scientific_name=species.scientific_name,
        common_names=species.english_names,
        edibility=species.edibility,
        probability=None if probability is None else min(max(probability, 0.0), 1.0),
        distinguishing_feature=feature,
        view=view,
    )


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
    """Apply the safety rules to one answer's calibrated probabilities.

    Args:
        probabilities: calibrated probabilities in label order (one photo, or the fused
            probabilities of an observation, or the average of a photo's test-time views).
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
            `edible` also needs `mushroom_score` to reach `rules.edible_mushroom_score`.

    Returns:
        The judgement.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
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
    ranked_genera = genus_ranking(probabilities, labels, catalog)
    genera = ranked_genera[:top_genera]
    top_index = int(order[0])
    top, top_prob = view.species[top_index], float(probabilities[top_index])
    lookalikes = lookalikes_of(catalog, top.id)
    possibly_unknown = (
        unknown_score is not None
        and rules.open_set_threshold is not None
        and unknown_score >= rules.open_set_threshold
    )

    def answer(reason: Reason, message: str, caution: CautionPublic | None = None) -> Judgement:
        return Judgement(
            REASON_VERDICT[reason],
            message,
            predictions,
            genera,
            lookalikes,
            possibly_unknown,
            reason,
            caution,
            UNKNOWN_SPECIES_MESSAGE if possibly_unknown else None,
        )

    if (
        mushroom_score is not None
        and rules.detector_threshold is not None
        and mushroom_score < rules.detector_threshold
    ):
        return answer(
            Reason.NOT_A_MUSHROOM,
            "This photo does not seem to show a mushroom; take a close, sharp photo of one "
            "mushroom, cap and stem, in good light.",
        )

    # Every deadly or poisonous label counts, not only the top k; the likeliest one is named.
    deadly = np.array([entry.edibility is Edibility.DEADLY for entry in view.species])
    dangerous = order[view.dangerous[order]]
    dangerous_mass = float(ordered_sum(probabilities, view.dangerous))
    deadly_mass = float(ordered_sum(probabilities, deadly))
    best_genus = ranked_genera[0]
    if top.edibility.is_dangerous:
        return answer(
            Reason.DANGEROUS_SPECIES,
            f"The model is {percent(top_prob)} sure this is {display_name(top)}, which is "
            f"{top.edibility.value}: do not eat it.",
        )
    if dangerous.size and dangerous_mass >= rules.poisonous_threshold:
        entry = view.species[dangerous[0]]
        return answer(
            Reason.POISONOUS_SUM,
            f"This looks most like {display_name(top)}, but it could be {display_name(entry)}, "
            f"which is {entry.edibility.value}: the model gives deadly and poisonous species a "
            f"{percent(dangerous_mass)} chance together, so do not eat it.",
        )
    deadly_order = order[deadly[order]]
    if deadly_order.size and deadly_mass >= rules.deadly_threshold:
        entry = view.species[deadly_order[0]]
        return answer(
            Reason.DEADLY_SUM,
            f"This looks most like {display_name(top)}, but it could be {display_name(entry)}, "
            f"which is deadly: the model gives deadly species a {percent(deadly_mass)} chance "
            "together, so do not eat it.",
        )
    if (
        best_genus.probability >= rules.genus_threshold
        and top_prob < rules.genus_threshold
        and genus_danger_share(catalog, best_genus.genus) > rules.genus_danger_share
    ):
        return answer(
            Reason.DANGEROUS_GENUS,
            f"The species is not clear, but the model is {percent(best_genus.probability)} "
            f"sure this is {_article(best_genus.genus)} {best_genus.genus}, and most "
            f"{best_genus.genus} species are deadly or poisonous: do not eat it.",
        )

    known = set(labels)
    unseen = any(
        other.edibility.is_dangerous and other.id not in known
        for other, _ in catalog.lookalikes_of(top.id)
    )
    if dangerous_mass >= rules.caution_threshold or (
        unseen and rules.unseen_lookalike_blocks_edible
    ):
        candidates = caution_candidates(probabilities, labels, catalog, top.id, rules)
        names = _join([f"the {c.edibility.value} {c.common_names[0]}" for c in candidates[:2]])
        message = (
            f"This looks most like {display_name(top)} ({percent(top_prob)}), but do not eat it: "
            f"it could be {names}, which the model cannot rule out."
        )
        first = candidates[0]
        if first.distinguishing_feature is not None:
            message += (
                f" What tells it from the {first.common_names[0]}: {first.distinguishing_feature}."
            )
        return answer(Reason.CAUTION, message, CautionPublic(species=top.id, lookalikes=candidates))
    twin = learned_lookalike(probabilities, labels, catalog, top.id)
    if twin is not None and rules.lookalike_threshold is not None:
        twin_prob = float(probabilities[labels.index(twin.id)])
        if twin_prob >= rules.lookalike_threshold:
            link = next(la for la in top.lookalikes if catalog.get(la.id).id == twin.id)
            first = _caution_entry(twin, twin_prob, link.distinguishing_feature, link.view)
            others = caution_candidates(probabilities, labels, catalog, top.id, rules)
            candidates = [first, *(c for c in others if c.species != twin.id)][:CAUTION_LIMIT]
            message = (
                f"This looks most like {display_name(top)} ({percent(top_prob)}), but do not eat "
                f"it: it has a {twin.edibility.value} look-alike, {display_name(twin)}, that the "
                f"model does not rule out ({percent(twin_prob)}). What tells it from the "
                f"{twin.english_names[0]}: {link.distinguishing_feature}."
            )
            return answer(
                Reason.DANGEROUS_LOOKALIKE,
                message,
                CautionPublic(species=top.id, lookalikes=candidates),
            )

    if possibly_unknown:
        return answer(
            Reason.UNKNOWN_SPECIES,
            "This may be a species the model does not know: it is only "
            f"{percent(top_prob)} sure of its closest match, {display_name(top)}, so do not eat "
            "it without an expert's check.",
        )

    if top.edibility.is_edible and top_prob >= rules.edible_threshold:
        if not views_agree(view_probabilities, top_index, view.genus_index):
            return answer(
                Reason.VIEWS_DISAGREE,
                f"The model is {percent(top_prob)} sure this is {display_name(top)}, but not "
                "every view gives the same answer, so do not eat it without an expert's check.",
            )
        if best_genus.genus != top.genus:
            return answer(
                Reason.GENUS_DISAGREES,
                f"The model is {percent(top_prob)} sure this is {display_name(top)}, but it "
                f"finds {_article(best_genus.genus)} {best_genus.genus} a likelier genus, so do "
                "not eat it without an expert's check.",
            )
        if (
            mushroom_score is not None
            and rules.edible_mushroom_score is not None
            and mushroom_score < rules.edible_mushroom_score
        ):
            return answer(
                Reason.UNCLEAR_PHOTO,
                f"The model is {percent(top_prob)} sure this is {display_name(top)}, but the "
                "photo does not clearly show a mushroom, so do not eat it without an expert's "
                "check; take a close, sharp photo of the cap, stem and gills.",
            )
        return answer(
            Reason.EDIBLE,
            f"The model is {percent(top_prob)} sure this is {display_name(top)}, an edible "
            "species, but have an expert confirm it before you eat any.",
        )

    if best_genus.probability >= rules.genus_threshold and top_prob < rules.genus_threshold:
        return answer(
            Reason.CLEAR_GENUS,
            f"The species is not clear, but the model is {percent(best_genus.probability)} sure "
            f"this is {_article(best_genus.genus)} {best_genus.genus}: {_genus_advice(best_genus)}",
        )

    return answer(
        Reason.NOT_SURE,
        f"The model is not sure: it is {percent(top_prob)} sure of its closest match, "
        f"{display_name(top)}, so do not eat it without an expert's check.",
    )


# ---------------------------------------------------------------------- many photos at once


VERDICT_CODES: tuple[Verdict, ...] = tuple(Verdict)
REASON_CODES: tuple[Reason, ...] = tuple(Reason)


@dataclass(frozen=True)
class VerdictFeatures:
    """What the rules read from each photo's probabilities, independent of the thresholds.

    Built once by `verdict_features`; `verdicts_from_features` then applies any thresholds in
    microseconds per photo, so a sweep over thresholds by severity is cheap. Arrays have one
    row per photo (answer).
    """

    top: npt.NDArray[np.intp]
    top_probability: npt.NDArray[np.float64]
    top_dangerous: npt.NDArray[np.bool_]
    top_edible: npt.NDArray[np.bool_]
    deadly_mass: npt.NDArray[np.float64]
    danger_mass: npt.NDArray[np.float64]
    has_deadly_label: bool
    has_dangerous_label: bool
    best_genus_probability: npt.NDArray[np.float64]
    best_genus_danger_share: npt.NDArray[np.float64]
    best_genus_is_top_genus: npt.NDArray[np.bool_]
    top_has_unseen_dangerous_lookalike: npt.NDArray[np.bool_]
    top_lookalike_probability: npt.NDArray[np.float64]
    views_agree: npt.NDArray[np.bool_]
    mushroom_scores: npt.NDArray[np.float64] | None
    unknown_scores: npt.NDArray[np.float64] | None

    def __len__(self) -> int:
        return len(self.top)


def verdict_features(
    probabilities: npt.NDArray[np.float64],
    labels: Sequence[str],
    catalog: Catalog,
    *,
    mushroom_scores: npt.NDArray[np.float64] | None = None,
    unknown_scores: npt.NDArray[np.float64] | None = None,
    view_probabilities: npt.NDArray[np.float64] | None = None,
) -> VerdictFeatures:
    """The threshold-independent facts of N answers, for `verdicts_from_features`.

    Args:
        probabilities: calibrated probabilities [N, C] in label order.
        labels: catalog ids in the model's output order.
        catalog: the species catalog.
        mushroom_scores: detector scores [N] (None: no detector).
        unknown_scores: open-set scores [N] (None: no open-set rule).
        view_probabilities: [N, V, C], each answer's views (None: one view each).
    """
    probs = np.atleast_2d(np.asarray(probabilities, dtype=np.float64))
    view = catalog.label_view(labels)
    if probs.shape[1] != len(view.species):
        raise ValueError(f"{probs.shape[1]} probabilities for {len(view.species)} labels")
    rows = np.arange(len(probs))
    top = np.argmax(probs, axis=1)  # the first of equal maxima, as judge's stable sort
    deadly = np.array([entry.edibility is Edibility.DEADLY for entry in view.species])
    edible = np.array([entry.edibility.is_edible for entry in view.species])
    totals = genus_totals(probs, view.genus_index)
    # The best genus: the largest total, ties by name (as genus_ranking).
    by_name = np.argsort(np.array(view.genera), kind="stable")
    best_genus = by_name[np.argmax(totals[:, by_name], axis=1)]
    shares = np.array([genus_danger_share(catalog, genus) for genus in view.genera])
    known = set(labels)
    unseen = np.array(
        [
            any(
                catalog.get(la.id).edibility.is_dangerous and la.id not in known
                for la in entry.lookalikes
            )
            for entry in view.species
        ]
    )
    # The probability of each answer's top species' likeliest learned dangerous look-alike
    # (-inf: it has none), for rule 3b.
    position = {label: i for i, label in enumerate(labels)}
    twins = [
        [
            position[other.id]
            for other, _ in catalog.lookalikes_of(entry.id)
            if other.edibility.is_dangerous and other.id in position
        ]
        for entry in view.species
    ]
    twin_probability = np.full(len(probs), -np.inf)
    for label_index in np.unique(top):
        columns = twins[int(label_index)]
        if columns:
            chosen = top == label_index
            twin_probability[chosen] = probs[np.ix_(chosen, columns)].max(axis=1)
    if view_probabilities is None:
        agree = np.ones(len(probs), dtype=bool)
    else:
        views = np.asarray(view_probabilities, dtype=np.float64)
        if views.ndim != 3 or views.shape[0] != len(probs) or views.shape[2] != probs.shape[1]:
            raise ValueError(f"view probabilities {views.shape} for {probs.shape} answers")
        view_totals = genus_totals(views, view.genus_index)
        top_genus = view.genus_index[top]
        agree = np.all(views[rows, :, top] >= views.max(axis=2), axis=1) & np.all(
            view_totals[rows, :, top_genus] >= view_totals.max(axis=2), axis=1
        )
    return VerdictFeatures(
        top=top,
        top_probability=probs[rows, top],
        top_dangerous=view.dangerous[top],
        top_edible=edible[top],
        deadly_mass=ordered_sum(probs, deadly),
        danger_mass=ordered_sum(probs, view.dangerous),
        has_deadly_label=bool(deadly.any()),
        has_dangerous_label=bool(view.dangerous.any()),
        best_genus_probability=totals[rows, best_genus],
        best_genus_danger_share=shares[best_genus],
        best_genus_is_top_genus=best_genus == view.genus_index[top],
        top_has_unseen_dangerous_lookalike=unseen[top],
        top_lookalike_probability=twin_probability,
        views_agree=agree,
        mushroom_scores=(
            None if mushroom_scores is None else np.asarray(mushroom_scores, np.float64).ravel()
        ),
        unknown_scores=(
            None if unknown_scores is None else np.asarray(unknown_scores, np.float64).ravel()
        ),
    )


@dataclass(frozen=True)
class BatchVerdicts:
    """Each answer's verdict and the rule that decided it, as codes into `VERDICT_CODES` and
    `REASON_CODES`."""

    verdicts: npt.NDArray[np.int8]
    reasons: npt.NDArray[np.int8]

    def verdict_mask(self, verdict: Verdict) -> npt.NDArray[np.bool_]:
        """Which answers got this verdict."""
        mask: npt.NDArray[np.bool_] = self.verdicts == VERDICT_CODES.index(verdict)
        return mask

    def reason_mask(self, reason: Reason) -> npt.NDArray[np.bool_]:
        """Which answers this rule decided."""
        mask: npt.NDArray[np.bool_] = self.reasons == REASON_CODES.index(reason)
        return mask

    def as_verdicts(self) -> list[Verdict]:
        """The verdicts as enum values."""
        return [VERDICT_CODES[code] for code in self.verdicts]


def verdicts_from_features(features: VerdictFeatures, rules: VerdictRules) -> BatchVerdicts:
    """The verdict `judge` gives each answer, vectorised (same rules, same order, same sums)."""
    n = len(features)
    false = np.zeros(n, dtype=bool)
    not_mushroom = false
    if features.mushroom_scores is not None and rules.detector_threshold is not None:
        not_mushroom = features.mushroom_scores < rules.detector_threshold
    unknown = false
    if features.unknown_scores is not None and rules.open_set_threshold is not None:
        unknown = features.unknown_scores >= rules.open_set_threshold
    poisonous_sum = (
        features.danger_mass >= rules.poisonous_threshold if features.has_dangerous_label else false
    )
    deadly_sum = (
        features.deadly_mass >= rules.deadly_threshold if features.has_deadly_label else false
    )
    clear_genus = (features.best_genus_probability >= rules.genus_threshold) & (
        features.top_probability < rules.genus_threshold
    )
    genus = clear_genus & (features.best_genus_danger_share > rules.genus_danger_share)
    caution = features.danger_mass >= rules.caution_threshold
    if rules.unseen_lookalike_blocks_edible:
        caution = caution | features.top_has_unseen_dangerous_lookalike
    twin = false
    if rules.lookalike_threshold is not None:
        twin = features.top_lookalike_probability >= rules.lookalike_threshold
    edible_ready = features.top_edible & (features.top_probability >= rules.edible_threshold)
    unclear_photo = false
    if features.mushroom_scores is not None and rules.edible_mushroom_score is not None:
        unclear_photo = features.mushroom_scores < rules.edible_mushroom_score
    # np.select takes the first true condition: the rules' order.
    conditions = [
        not_mushroom,
        features.top_dangerous,
        poisonous_sum,
        deadly_sum,
        genus,
        caution,
        twin,
        unknown,
        edible_ready & ~features.views_agree,
        edible_ready & ~features.best_genus_is_top_genus,
        edible_ready & unclear_photo,
        edible_ready,
        clear_genus,
    ]
    choices = [
        Reason.NOT_A_MUSHROOM,
        Reason.DANGEROUS_SPECIES,
        Reason.POISONOUS_SUM,
        Reason.DEADLY_SUM,
        Reason.DANGEROUS_GENUS,
        Reason.CAUTION,
        Reason.DANGEROUS_LOOKALIKE,
        Reason.UNKNOWN_SPECIES,
        Reason.VIEWS_DISAGREE,
        Reason.GENUS_DISAGREES,
        Reason.UNCLEAR_PHOTO,
        Reason.EDIBLE,
        Reason.CLEAR_GENUS,
    ]
    reasons = np.select(
        conditions, [REASON_CODES.index(c) for c in choices], REASON_CODES.index(Reason.NOT_SURE)
    ).astype(np.int8)
    lookup = np.array([VERDICT_CODES.index(REASON_VERDICT[r]) for r in REASON_CODES], dtype=np.int8)
    return BatchVerdicts(verdicts=lookup[reasons], reasons=reasons)


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
