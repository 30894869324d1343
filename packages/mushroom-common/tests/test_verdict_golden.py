"""Golden verdict cases: the Python rules' answers, which the phone's TypeScript rules must match.

The cases run `judge` on rules documents (`rules_export.build_rules_document`) built over a small
catalog written here, so catalog edits do not move the fixture; only a change of the rules does.
The frontend's Vitest suite (`tests/unit/verdict-golden.test.ts`) replays every case.

Every rule of `judge` (each `verdict.Reason`) is covered, with and without test-time views; the
cases also carry the reason, the caution block and the unknown-species sentence, so the phone
replays all of them.

Regenerate after changing the rules:
    uv run python packages/mushroom-common/tests/test_verdict_golden.py --write
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
from pathlib import Path
from typing import Any

import numpy as np

from mushroom_common.bundle import (
    BundleMetadata,
    DecisionRulesSpec,
    InferenceView,
    InputSpec,
    ModelVariant,
    MushroomDetectorSpec,
    OpenSetSpec,
)
from mushroom_common.catalog import Catalog, Edibility, parse_catalog
from mushroom_common.rules_export import RulesDocument, build_rules_document
from mushroom_common.verdict import (
    Judgement,
    OpenSetMethod,
    Reason,
    VerdictRules,
    judge,
    open_set_score,
)

FIXTURE = (
    Path(__file__).resolve().parents[3] / "frontend-react/tests/unit/golden/verdict-cases.json"
)
SEED = 13

logger = logging.getLogger(__name__)

# (id, scientific name, English names, family, edibility, look-alikes as (id, feature)); a
# look-alike's photo view is in _VIEWS (the others have none).
_SPECIES: list[tuple[str, str, list[str], str | None, str, list[tuple[str, str]]]] = [
    (
        "amanita_phalloides",
        "Amanita phalloides",
        ["death cap"],
        "Amanitaceae",
        "deadly",
        [("amanita_citrina", "greenish cap, no smell vs pale lemon cap, smells of raw potato")],
    ),
    (
        "amanita_citrina",
        "Amanita citrina",
        ["false death cap"],
        "Amanitaceae",
        "inedible",
        [("amanita_phalloides", "smells of raw potato vs no smell")],
    ),
    (
        "amanita_muscaria",
        "Amanita muscaria",
        ["fly agaric"],
        "Amanitaceae",
        "poisonous",
        [("amanita_rubescens", "white flesh vs flesh bruising pink")],
    ),
    (
        "amanita_rubescens",
        "Amanita rubescens",
        ["blusher"],
        "Amanitaceae",
        "edible_when_cooked",
        [
            ("amanita_pantherina", "flesh bruising pink vs white flesh that never blushes"),
            ("amanita_muscaria", "brownish cap vs scarlet cap"),
        ],
    ),
    ("amanita_pantherina", "Amanita pantherina", ["panther cap"], "Amanitaceae", "poisonous", []),
    ("amanita_abrupta", "Amanita abrupta", ["Amanita abrupta"], "Amanitaceae", "unknown", []),
    (
        "boletus_edulis",
        "Boletus edulis",
        ["penny bun", "cep"],
        "Boletaceae",
        "choice",
        [("tylopilus_felleus", "white net on the stem vs dark net and pinkish pores")],
    ),
    (
        "boletus_reticulatus",
        "Boletus reticulatus",
        ["summer cep"],
        "Boletaceae",
        "choice",
        [("boletus_edulis", "net over the whole stem vs net at the top only")],
    ),
    (
        "tylopilus_felleus",
        "Tylopilus felleus",
        ["bitter bolete"],
        "Boletaceae",
        "inedible",
        [("boletus_edulis", "pinkish pores vs white to olive pores")],
    ),
    (
        "cantharellus_cibarius",
        "Cantharellus cibarius",
        ["chanterelle"],
        "Cantharellaceae",
        "choice",
        [
            ("omphalotus_olearius", "blunt forked ridges vs true gills, in clusters on wood"),
            ("hygrophoropsis_aurantiaca", "firm white flesh vs soft orange flesh"),
        ],
    ),
    (
        "hygrophoropsis_aurantiaca",
        "Hygrophoropsis aurantiaca",
        ["false chanterelle"],
        "Hygrophoropsidaceae",
        "inedible",
        [("cantharellus_cibarius", "true thin gills vs blunt ridges")],
    ),
    (
        "omphalotus_olearius",
        "Omphalotus olearius",
        ["jack-o'-lantern"],
        "Omphalotaceae",
        "poisonous",
        [],
    ),
    (
        "morchella_esculenta",
        "Morchella esculenta",
        ["morel"],
        "Morchellaceae",
        "choice",
        [("gyromitra_esculenta", "hollow, pitted cap vs brain-like, chambered cap")],
    ),
    (
        "gyromitra_esculenta",
        "Gyromitra esculenta",
        ["false morel"],
        "Discinaceae",
        "deadly",
        [("morchella_esculenta", "brain-like cap vs pitted cap")],
    ),
    (
        "macrolepiota_procera",
        "Macrolepiota procera",
        ["parasol"],
        "Agaricaceae",
        "choice",
        [
            ("chlorophyllum_molybdites", "white spores vs green spores"),
            ("amanita_pantherina", "movable double ring vs fixed ring and volva"),
        ],
    ),
    (
        "chlorophyllum_molybdites",
        "Chlorophyllum molybdites",
        ["green-spored parasol"],
        "Agaricaceae",
        "poisonous",
        [],
    ),
    ("hydnum_repandum", "Hydnum repandum", ["hedgehog mushroom"], "Hydnaceae", "choice", []),
    (
        "russula_cyanoxantha",
        "Russula cyanoxantha",
        ["charcoal burner"],
        "Russulaceae",
        "edible",
        [],
    ),
    ("russula_vesca", "Russula vesca", ["bare-toothed russula"], "Russulaceae", "edible", []),
    ("russula_emetica", "Russula emetica", ["sickener"], "Russulaceae", "poisonous", []),
    ("russula_nobilis", "Russula nobilis", ["beechwood sickener"], "Russulaceae", "poisonous", []),
    ("suillus_luteus", "Suillus luteus", ["slippery jack"], None, "edible_when_cooked", []),
]


_VIEWS = {
    ("amanita_rubescens", "amanita_pantherina"): "flesh",
    ("amanita_rubescens", "amanita_muscaria"): "cap",
    ("boletus_edulis", "tylopilus_felleus"): "underside",
    ("cantharellus_cibarius", "omphalotus_olearius"): "underside",
    ("macrolepiota_procera", "chlorophyllum_molybdites"): "spore_print",
    ("macrolepiota_procera", "amanita_pantherina"): "ring",
    ("morchella_esculenta", "gyromitra_esculenta"): "flesh",
}


def golden_catalog() -> Catalog:
    """The small catalog the golden cases use (every rule has species to trigger it)."""
    return parse_catalog(
        {
            "schema_version": 1,
            "species": [
                {
                    "id": sid,
                    "scientific_name": name,
                    "family": family,
                    "common_names": {"en": names},
                    "edibility": edibility,
                    "lookalikes": [
                        {"id": i, "distinguishing_feature": f, "view": _VIEWS.get((sid, i))}
                        for i, f in lookalikes
                    ],
                    "sources": ["golden cases"],
                }
                for sid, name, names, family, edibility, lookalikes in _SPECIES
            ],
        }
    )


def _metadata(
    name: str,
    labels: list[str],
    decision: DecisionRulesSpec,
    detector_threshold: float | None,
) -> BundleMetadata:
    return BundleMetadata(
        name=name,
        version="golden-1",
        labels=labels,
        input=InputSpec(height=224, width=224),
        temperature=0.75,
        serving_variant="int8",
        variants=[
            ModelVariant(name="int8", path="model_int8.tflite", format="tflite", size_bytes=1000)
        ],
        mushroom_detector=(
            MushroomDetectorSpec(method="golden", threshold=detector_threshold)
            if detector_threshold is not None
            else None
        ),
        decision_rules=decision,
        backbone="golden",
        dataset_version="golden",
        git_revision="golden",
    )


def golden_documents(catalog: Catalog) -> dict[str, RulesDocument]:
    """Four rules documents: different labels, thresholds, detector, open-set rules and views."""
    full = [
        s[0]
        for s in _SPECIES
        if s[0]
        not in (
            "amanita_pantherina",
            "chlorophyllum_molybdites",
            "omphalotus_olearius",
            "russula_nobilis",
        )
    ]
    metadata = {
        "detector-energy": _metadata(
            "golden-detector-energy",
            full,
            DecisionRulesSpec(open_set=OpenSetSpec(method="energy", threshold=-4.0)),
            0.3,
        ),
        "plain": _metadata(
            "golden-plain",
            [
                "boletus_edulis",
                "cantharellus_cibarius",
                "amanita_muscaria",
                "russula_cyanoxantha",
                "russula_vesca",
                "macrolepiota_procera",
                "tylopilus_felleus",
            ],
            DecisionRulesSpec(
                danger_threshold=0.1,
                edible_threshold=0.8,
                genus_threshold=0.5,
                unseen_lookalike_blocks_edible=False,
            ),
            None,
        ),
        "max-logit": _metadata(
            "golden-max-logit",
            [
                "amanita_phalloides",
                "amanita_citrina",
                "amanita_rubescens",
                "amanita_abrupta",
                "morchella_esculenta",
                "hydnum_repandum",
                "suillus_luteus",
                "russula_emetica",
            ],
            DecisionRulesSpec(
                danger_threshold=0.02,
                edible_threshold=0.95,
                genus_danger_share=1.0,
                open_set=OpenSetSpec(method="max_logit", threshold=-3.0),
            ),
            0.5,
        ),
        "severity-views": _metadata(
            "golden-severity-views",
            [
                "cantharellus_cibarius",
                "hygrophoropsis_aurantiaca",
                "omphalotus_olearius",
                "russula_cyanoxantha",
                "russula_vesca",
                "russula_emetica",
                "russula_nobilis",
                "gyromitra_esculenta",
                "morchella_esculenta",
                "suillus_luteus",
                "amanita_citrina",
                "amanita_rubescens",
            ],
            DecisionRulesSpec(
                danger_threshold=0.3,
                deadly_threshold=0.04,
                poisonous_threshold=0.3,
                caution_threshold=0.1,
                lookalike_threshold=0.02,
                edible_mushroom_score=0.5,
                edible_threshold=0.45,
                genus_threshold=0.5,
                genus_danger_share=0.5,
                open_set=OpenSetSpec(method="max_probability", threshold=-0.3),
                test_time_views=[InferenceView.ORIGINAL, InferenceView.MIRROR],
            ),
            0.2,
        ),
    }
    return {
        key: build_rules_document(meta, catalog, model_sha256=f"{i:064x}")
        for i, (key, meta) in enumerate(metadata.items())
    }


def _rules(document: RulesDocument) -> VerdictRules:
    spec = document.rules
    return VerdictRules(
        danger_threshold=spec.danger_threshold,
        edible_threshold=spec.edible_threshold,
        detector_threshold=spec.detector_threshold,
        unseen_lookalike_blocks_edible=spec.unseen_lookalike_blocks_edible,
        open_set_method=spec.open_set.method if spec.open_set else None,
        open_set_threshold=spec.open_set.threshold if spec.open_set else None,
        genus_threshold=spec.genus_threshold,
        deadly_threshold=spec.deadly_threshold,
        poisonous_threshold=spec.poisonous_threshold,
        caution_threshold=spec.caution_threshold,
        genus_danger_share=spec.genus_danger_share,
        lookalike_threshold=spec.lookalike_threshold,
        edible_mushroom_score=spec.edible_mushroom_score,
    )


def _softmax(logits: list[float], temperature: float) -> list[float]:
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    exp = np.exp(scaled - scaled.max())
    return [float(v) for v in exp / exp.sum()]


def _spread(rng: random.Random, size: int, top_index: int, top: float) -> list[float]:
    """`top` at `top_index`, the rest of the mass spread at random over the other labels."""
    weights = [rng.random() + 1e-3 for _ in range(size - 1)]
    total = sum(weights)
    rest = [(1.0 - top) * w / total for w in weights]
    return [*rest[:top_index], top, *rest[top_index:]]


def _placed(size: int, mass: dict[int, float], rng: random.Random) -> list[float]:
    """Given masses at some indices, the remainder spread over the others."""
    free = [i for i in range(size) if i not in mass]
    remainder = max(0.0, 1.0 - sum(mass.values()))
    weights = [rng.random() + 1e-3 for _ in free]
    total = sum(weights) or 1.0
    probs = [0.0] * size
    for index, value in mass.items():
        probs[index] = value
    for index, weight in zip(free, weights, strict=True):
        probs[index] = remainder * weight / total
    return probs


def _exact(size: int, mass: dict[int, float]) -> list[float]:
    """Exactly these masses, zero elsewhere."""
    probs = [0.0] * size
    for index, value in mass.items():
        probs[index] = value
    return probs


def _inputs(document: RulesDocument, rng: random.Random) -> list[dict[str, Any]]:
    """Probabilities (some from logits), detector scores and open-set scores for one document."""
    labels = document.labels
    size = len(labels)
    spec = document.rules
    index = {label: i for i, label in enumerate(labels)}
    detector = spec.detector_threshold
    score_ok = None if detector is None else min(1.0, detector + 0.4)
    cases: list[dict[str, Any]] = []

    def add(tag: str, probs: list[float], **extra: Any) -> None:
        cases.append({"tag": tag, "probabilities": probs, "mushroom_score": score_ok, **extra})

    # Every label on top at confidences that straddle the thresholds; a few labels also at the
    # edges of the percent wording (over 99%, a half that rounds to even).
    for n, label in enumerate(labels):
        tops = [spec.edible_threshold, math.nextafter(spec.edible_threshold, 0.0), 0.55]
        if n < 3:
            tops += [0.995, math.nextafter(0.995, 0.0), 0.125, 0.005]
        for top in tops:
            add(f"top {label} at {top!r}", _spread(rng, size, index[label], top))
    # Dangerous mass at and just under the danger threshold, from one or several labels.
    dangerous = [lb for lb in labels if Edibility(document.species[lb].edibility).is_dangerous]
    safe = [lb for lb in labels if lb not in dangerous]
    for label in dangerous:
        for mass in (spec.danger_threshold, math.nextafter(spec.danger_threshold, 0.0)):
            top = index[safe[0]]
            add(
                f"{label} at {mass!r} under a safe top species",
                _placed(size, {index[label]: mass, top: 0.9}, rng),
            )
    if len(dangerous) >= 2:
        part = spec.danger_threshold / 2
        add(
            "summed danger: two dangerous labels each under the threshold",
            _placed(
                size,
                {index[dangerous[0]]: part, index[dangerous[1]]: part, index[safe[0]]: 0.92},
                rng,
            ),
        )
        add(
            "summed danger just short",
            _placed(
                size,
                {
                    index[dangerous[0]]: part,
                    index[dangerous[1]]: math.nextafter(part, 0.0) / 2,
                    index[safe[0]]: 0.92,
                },
                rng,
            ),
        )
    for label in dangerous:
        # A dangerous candidate far outside the top k (k = 1).
        probs = _placed(
            size,
            {
                index[safe[0]]: 0.5,
                index[safe[-1]]: 0.3,
                index[label]: max(spec.danger_threshold, 0.06),
            },
            rng,
        )
        add(f"{label} outside the top 1", probs, top_k=1)
    # Severity: one dangerous label exactly at, and just under, each threshold that concerns it
    # (poisonous sum, deadly sum, caution), the rest of the mass on one harmless label.
    for label in dangerous:
        deadly = document.species[label].edibility == Edibility.DEADLY
        limits = [spec.poisonous_threshold, spec.caution_threshold]
        limits += [spec.deadly_threshold] if deadly else []
        for limit in limits:
            for mass in (limit, math.nextafter(limit, 0.0)):
                if mass < 0.5:
                    add(
                        f"{label} alone at {mass!r} under {safe[-1]}",
                        _exact(size, {index[label]: mass, index[safe[-1]]: 1.0 - mass}),
                    )
    # A learned dangerous look-alike of the top species (the jack-o'-lantern under a chanterelle)
    # at, and just under, the look-alike threshold, the danger mass under the caution threshold.
    if spec.lookalike_threshold is not None:
        for label in safe:
            twins = [
                la.species
                for la in document.species[label].lookalikes
                if la.species in index
                and Edibility(document.species[la.species].edibility).is_dangerous
            ]
            filler = next(lb for lb in safe if lb != label)
            for twin in twins:
                for mass in (spec.lookalike_threshold, math.nextafter(spec.lookalike_threshold, 0)):
                    add(
                        f"{label} at 0.9 with its look-alike {twin} at {mass!r}",
                        _exact(
                            size, {index[label]: 0.9, index[twin]: mass, index[filler]: 0.1 - mass}
                        ),
                    )
    # Test-time views: the same answer with views that agree, disagree on the species, or agree
    # on the species but not on its genus.
    genera: dict[str, list[str]] = {}
    for label in labels:
        genera.setdefault(document.species[label].genus, []).append(label)
    edible = [lb for lb in safe if Edibility(document.species[lb].edibility).is_edible]
    for label in edible:
        top = max(spec.edible_threshold, 0.9)
        probs = _exact(
            size, {index[label]: top, index[safe[0] if safe[0] != label else safe[-1]]: 1.0 - top}
        )
        other = next(lb for lb in safe if lb != label)
        flipped = _exact(size, {index[label]: 0.4, index[other]: 0.6})
        add(f"{label} with agreeing views", probs, view_probabilities=[probs, probs])
        add(f"{label} with a view on {other}", probs, view_probabilities=[probs, flipped])
        rivals = next(
            (
                members
                for genus, members in genera.items()
                if genus != document.species[label].genus
                and len(members) >= 2
                and all(m in safe for m in members[:2])
            ),
            None,
        )
        if rivals is not None:
            split = _exact(
                size, {index[label]: 0.3, index[rivals[0]]: 0.35, index[rivals[1]]: 0.35}
            )
            split[index[label]], split[index[rivals[0]]] = 0.36, 0.32
            split[index[rivals[1]]] = 0.32
            add(f"{label} with a view on genus {rivals[0]}", probs, view_probabilities=[split])
            # The answer itself: the species first, another genus likelier (edible below 0.5).
            if spec.edible_threshold < 0.5:
                top = max(spec.edible_threshold, 0.4)
                rest = (1.0 - top) / 2
                add(
                    f"{label} first, genus of {rivals[0]} likelier",
                    _exact(
                        size, {index[label]: top, index[rivals[0]]: rest, index[rivals[1]]: rest}
                    ),
                )
    # Genus clear, species not.
    for genus, members in genera.items():
        if len(members) >= 2:
            share = (spec.genus_threshold + 0.05) / len(members)
            mass = {index[m]: share for m in members}
            add(f"genus {genus}, rest spread", _placed(size, mass, rng))
            outside = [lb for lb in safe if document.species[lb].genus != genus]
            harmless = [m for m in members if m in safe]
            if outside and len(harmless) >= 2:
                share = (spec.genus_threshold + 0.05) / len(harmless)
                mass = {index[m]: share for m in harmless}
                # The rest on one harmless label, so no danger mass hides the genus rule.
                mass[index[outside[0]]] = 1.0 - share * len(harmless)
                add(f"genus {genus}, rest on {outside[0]}", _placed(size, mass, rng))
    # The detector: below, at and above its threshold, and missing.
    if detector is not None:
        for score in (0.0, math.nextafter(detector, 0.0), detector, 1.0):
            for label in (labels[0], safe[0]):
                add(
                    f"detector {score!r} with {label} on top",
                    _spread(rng, size, index[label], 0.97),
                    mushroom_score=score,
                )
    # An edible answer's mushroom score at, and just under, the score 'edible' needs (the views
    # agreeing, and without views), the rest of the mass on one harmless label.
    if detector is not None and spec.edible_mushroom_score is not None:
        for label in edible:
            top = max(spec.edible_threshold, 0.9)
            filler = safe[0] if safe[0] != label else safe[-1]
            probs = _exact(size, {index[label]: top, index[filler]: 1.0 - top})
            least = spec.edible_mushroom_score
            for score in (least, math.nextafter(least, 0.0)):
                add(f"{label} with mushroom score {score!r}", probs, mushroom_score=score)
                add(
                    f"{label} with agreeing views and mushroom score {score!r}",
                    probs,
                    mushroom_score=score,
                    view_probabilities=[probs, probs],
                )
    # Ties keep the label order.
    add("all equal", [1.0 / size] * size)
    # Random answers, some peaked, some flat; a third from logits so the open-set score is real.
    for n in range(40):
        concentration = rng.choice([0.05, 0.2, 1.0, 5.0])
        gammas = [rng.gammavariate(concentration, 1.0) + 1e-12 for _ in range(size)]
        total = sum(gammas)
        probs = [g / total for g in gammas]
        extra: dict[str, Any] = {"top_k": rng.choice([1, 3, 5])}
        if n % 3 == 0:
            logits = [rng.gauss(0.0, rng.choice([1.0, 3.0, 6.0])) for _ in range(size)]
            probs = _softmax(logits, document.model.temperature)
            extra["logits"] = logits
        add(f"random {n}", probs, **extra)
    # Open set: at, just under and over the threshold.
    if spec.open_set is not None:
        for label in labels[:4]:
            for delta in (0.0, -1e-9, 1.0):
                add(
                    f"open-set {delta!r} over the threshold, {label} on top",
                    _spread(rng, size, index[label], 0.97),
                    unknown_score=spec.open_set.threshold + delta,
                )
    return cases


def _expected(judgement: Judgement) -> dict[str, Any]:
    return {
        "verdict": judgement.verdict.value,
        "message": judgement.message,
        "predictions": [p.model_dump(mode="json") for p in judgement.predictions],
        "genera": [g.model_dump(mode="json") for g in judgement.genera],
        "lookalikes": [la.model_dump(mode="json") for la in judgement.lookalikes],
        "possibly_unknown_species": judgement.possibly_unknown_species,
        "reason": judgement.reason.value,
        "caution": None if judgement.caution is None else judgement.caution.model_dump(mode="json"),
        "unknown_species_message": judgement.unknown_species_message,
    }


def build_fixture() -> dict[str, Any]:
    """Every document and case with the Python rules' answer."""
    catalog = golden_catalog()
    documents = golden_documents(catalog)
    rng = random.Random(SEED)
    cases: list[dict[str, Any]] = []
    for key, document in documents.items():
        rules = _rules(document)
        method: OpenSetMethod | None = rules.open_set_method
        for case in _inputs(document, rng):
            top_k = case.pop("top_k", 3)
            logits = case.get("logits")
            unknown = case.get("unknown_score")
            if unknown is None and logits is not None and method is not None:
                unknown = open_set_score(np.asarray(logits, dtype=np.float64), method)
                case["expected_unknown_score"] = unknown
            judgement = judge(
                np.asarray(case["probabilities"], dtype=np.float64),
                document.labels,
                case["mushroom_score"],
                catalog,
                rules,
                top_k,
                unknown_score=unknown,
                view_probabilities=(
                    np.asarray(case["view_probabilities"], dtype=np.float64)
                    if "view_probabilities" in case
                    else None
                ),
            )
            cases.append(
                {
                    "document": key,
                    "top_k": top_k,
                    **case,
                    "unknown_score": unknown,
                    "expected": _expected(judgement),
                }
            )
    return {
        "about": "Generated by packages/mushroom-common/tests/test_verdict_golden.py; do not edit.",
        "documents": {key: doc.model_dump(mode="json") for key, doc in documents.items()},
        "cases": cases,
    }


def render_fixture() -> str:
    """The fixture file's text: compact, one case per line so a diff shows which cases moved."""
    fixture = build_fixture()
    dump = lambda value: json.dumps(value, ensure_ascii=False, separators=(",", ":"))  # noqa: E731
    lines = [dump(case) for case in fixture["cases"]]
    return (
        f'{{"about":{dump(fixture["about"])},\n"documents":{dump(fixture["documents"])},\n'
        '"cases":[\n' + ",\n".join(lines) + "\n]}\n"
    )


def test_fixture_is_up_to_date() -> None:
    assert FIXTURE.is_file(), f"{FIXTURE} is missing: run this file with --write"
    assert FIXTURE.read_text("utf-8") == render_fixture(), (
        "the golden verdict cases are stale: run "
        "`uv run python packages/mushroom-common/tests/test_verdict_golden.py --write`"
    )


def test_cases_cover_every_rule_and_edge() -> None:
    cases = build_fixture()["cases"]
    assert len(cases) >= 200
    verdicts = {c["expected"]["verdict"] for c in cases}
    assert verdicts == {"dangerous", "edible", "uncertain", "not_a_mushroom"}
    reasons = {c["expected"]["reason"] for c in cases}
    assert reasons == {r.value for r in Reason}, "every rule of judge"
    messages = [c["expected"]["message"] for c in cases]
    assert any("but it could be" in m for m in messages), "dangerous candidate not on top"
    cautions = [c["expected"]["caution"] for c in cases if c["expected"]["caution"]]
    lookalikes = [la for c in cautions for la in c["lookalikes"]]
    assert any(la["probability"] is None for la in lookalikes), "unseen look-alike"
    assert any(la["probability"] is not None for la in lookalikes), "likely dangerous label"
    assert any(la["view"] for la in lookalikes), "a look-alike's photo view"
    assert any(len(c["lookalikes"]) >= 2 for c in cautions), "two look-alikes"
    assert any(
        c["expected"]["unknown_species_message"] and c["expected"]["verdict"] == "dangerous"
        for c in cases
    ), "unknown species under a dangerous verdict"
    with_views = {c["expected"]["reason"] for c in cases if "view_probabilities" in c}
    assert {"edible", "views_disagree", "unclear_photo"} <= with_views
    unclear = [c for c in cases if c["expected"]["reason"] == "unclear_photo"]
    assert all("does not clearly show a mushroom" in c["expected"]["message"] for c in unclear)
    # The same answer just at the score is edible: the rule's edge is in the cases.
    at_edge = {
        (c["document"], tuple(c["probabilities"]), c["expected"]["reason"])
        for c in cases
        if "mushroom score" in c["tag"]
    }
    assert any(
        (doc, probs, "edible") in at_edge and (doc, probs, "unclear_photo") in at_edge
        for doc, probs, _ in at_edge
    ), "an edible answer at the mushroom score and just under it"
    assert any("species the model does not know" in m for m in messages), "open set"
    assert any("genus holds deadly" in m for m in messages), "genus with deadly species"
    assert any("genus holds poisonous" in m for m in messages), "genus with poisonous species"
    assert any("which species it is matters" in m for m in messages), "harmless genus"
    outside = [
        c
        for c in cases
        if c["expected"]["verdict"] == "dangerous"
        and all(not Edibility(p["edibility"]).is_dangerous for p in c["expected"]["predictions"])
    ]
    assert outside, "a dangerous candidate outside the top k"
    assert any("expected_unknown_score" in c for c in cases), "open-set score from logits"


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help="write the fixture file")
    if parser.parse_args().write:
        FIXTURE.parent.mkdir(parents=True, exist_ok=True)
        FIXTURE.write_text(render_fixture(), "utf-8")
        logger.info("wrote %s", FIXTURE)
