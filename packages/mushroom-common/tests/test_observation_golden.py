"""Golden observation cases: the Python fusion, prior and next photo, which the phone must match.

The cases run `mushroom_common.observation` (`fuse`, `used_photos`, `observation_mushroom_score`,
`location_prior`, `apply_prior`, `next_photo`) over a small catalog written here, and store the
`observation` section (`export_rules`) the phone reads, so catalog edits do not move the fixture;
only a change of the rules does. The frontend's Vitest suite
(`tests/unit/observation-golden.test.ts`) replays every case from the section alone.

Regenerate after changing the rules:
    uv run python packages/mushroom-common/tests/test_observation_golden.py --write
"""

from __future__ import annotations

import argparse
import json
import logging
import random
from pathlib import Path
from typing import Any

import numpy as np

from mushroom_common.catalog import Catalog, parse_catalog
from mushroom_common.observation import (
    FUSION_METHODS,
    apply_prior,
    export_rules,
    fuse,
    location_prior,
    next_photo,
    observation_mushroom_score,
    used_photos,
)

FIXTURE = (
    Path(__file__).resolve().parents[3] / "frontend-react/tests/unit/golden/observation-cases.json"
)
SEED = 24

logger = logging.getLogger(__name__)

# (id, edibility, regions, fruiting months, look-alikes as (id, view or None)); the first
# LABELS of them are the model's labels, the rest are look-alikes only.
_SPECIES: list[tuple[str, str, list[str], list[int], list[tuple[str, str | None]]]] = [
    (
        "amanita_phalloides",
        "deadly",
        ["europe", "north_america", "north_africa"],
        [7, 8, 9, 10, 11],
        [("amanita_citrina", "stem_base")],
    ),
    ("amanita_citrina", "inedible", ["europe", "north_america"], [8, 9, 10, 11], []),
    (
        "cantharellus_cibarius",
        "choice",
        ["europe"],
        [6, 7, 8, 9, 10, 11],
        [("omphalotus_olearius", "underside"), ("hygrophoropsis_aurantiaca", "underside")],
    ),
    ("omphalotus_olearius", "poisonous", ["europe", "north_africa"], [8, 9, 10, 11], []),
    ("hygrophoropsis_aurantiaca", "inedible", ["europe", "north_america"], [8, 9, 10, 11, 12], []),
    (
        "boletus_edulis",
        "choice",
        ["europe", "north_america", "asia"],
        [6, 7, 8, 9, 10],
        [("rubroboletus_satanas", "flesh"), ("tylopilus_felleus", "underside")],
    ),
    ("rubroboletus_satanas", "poisonous", ["europe"], [7, 8, 9], []),
    (
        "suillus_luteus",
        "edible",
        ["europe", "north_america", "oceania", "south_america"],
        [9, 10, 11],
        [],
    ),
    (
        "agaricus_campestris",
        "choice",
        ["europe", "north_america", "asia", "oceania"],
        [6, 7, 8, 9, 10],
        [
            ("amanita_virosa", "stem_base"),
            ("agaricus_xanthodermus", "flesh"),
            ("amanita_citrina", None),
        ],
    ),
    ("agaricus_xanthodermus", "poisonous", [], [], []),
    ("tylopilus_felleus", "inedible", ["europe", "north_america"], [7, 8, 9, 10], []),
    ("amanita_virosa", "deadly", ["europe", "north_america", "asia"], [7, 8, 9, 10], []),
]
LABELS = 11

# (lat, lon, month): Helsinki, Toronto, Sydney (southern months), a month alone, a place alone,
# the open Atlantic (no region), halves that round away from zero, a region border.
PLACES: list[tuple[float | None, float | None, int | None]] = [
    (60.17, 24.94, 9),
    (43.65, -79.38, 7),
    (-33.87, 151.21, 4),
    (None, None, 2),
    (48.5, 2.5, None),
    (0.0, -30.0, 8),
    (59.5, -0.5, 12),
    (-0.5, -60.5, 1),
    (35.4, 139.7, 6),
    (None, None, None),
]


def golden_catalog() -> Catalog:
    """A small catalog with ranges, months and look-alike views."""
    species: list[dict[str, Any]] = []
    for species_id, edibility, regions, months, lookalikes in _SPECIES:
        genus, epithet = species_id.split("_", 1)
        species.append(
            {
                "id": species_id,
                "scientific_name": f"{genus.capitalize()} {epithet}",
                "common_names": {"en": [f"{epithet} {genus}"]},
                "edibility": edibility,
                "sources": ["https://example.org/field-guide"],
                "regions": regions,
                "fruiting_months": months,
                "lookalikes": [
                    {"id": other, "distinguishing_feature": f"{species_id} vs {other}"}
                    | ({"view": view} if view else {})
                    for other, view in lookalikes
                ],
            }
        )
    return parse_catalog({"schema_version": 1, "species": species})


def _row(rng: random.Random, width: int, peak: int | None = None) -> list[float]:
    values = [rng.random() ** 3 for _ in range(width)]
    if peak is not None:
        values[peak] += 3.0
    total = sum(values)
    return [value / total for value in values]


def build_cases() -> dict[str, Any]:
    """Every case with its expected answer."""
    rng = random.Random(SEED)
    catalog = golden_catalog()
    labels = [entry[0] for entry in _SPECIES[:LABELS]]
    section = export_rules(catalog, labels)
    width = len(labels)

    fusion: list[dict[str, Any]] = []
    for method in FUSION_METHODS:
        for photos in (1, 2, 3, 5):
            for _ in range(4):
                rows = [_row(rng, width, rng.randrange(width)) for _ in range(photos)]
                if rng.random() < 0.4:
                    rows[0][rng.randrange(width)] = 0.0  # a zero: the log is clipped
                fused = fuse(np.array(rows), method)
                fusion.append({"method": method, "rows": rows, "expected": fused.tolist()})

    used: list[dict[str, Any]] = []
    for scores, threshold in (
        ([0.9, 0.2, None, 0.7], 0.5),
        ([0.1, 0.2], 0.5),
        ([None, None], 0.5),
        ([0.3, 0.9], None),
        ([0.5, 0.49999], 0.5),
    ):
        used.append(
            {
                "scores": scores,
                "threshold": threshold,
                "expected_used": used_photos(scores, threshold),
                "expected_score": observation_mushroom_score(scores),
            }
        )

    prior: list[dict[str, Any]] = []
    for lat, lon, month in PLACES:
        probabilities = _row(rng, width, rng.randrange(width))
        weights = location_prior(labels, catalog, lat=lat, lon=lon, month=month)
        prior.append(
            {
                "lat": lat,
                "lon": lon,
                "month": month,
                "probabilities": probabilities,
                "expected_weights": weights.weights.tolist(),
                "expected_applied": weights.applied,
                "expected_region": weights.region,
                "expected": apply_prior(np.array(probabilities), weights).tolist(),
            }
        )

    asks: list[dict[str, Any]] = []
    views_options: list[list[str | None]] = [
        [None],
        ["cap"],
        ["cap", "underside"],
        ["underside", "flesh"],
        ["stem_base", None],
        ["underside", "flesh", "stem_base"],
    ]
    for index in range(40):
        probabilities = _row(rng, width, rng.randrange(width) if index % 3 else None)
        views = views_options[index % len(views_options)]
        ask = next_photo(np.array(probabilities), labels, catalog, views)
        asks.append(
            {
                "probabilities": probabilities,
                "views": views,
                "expected": None if ask is None else {"view": ask.view, "lookalike": ask.lookalike},
            }
        )

    return {
        "labels": labels,
        "observation": section.model_dump(mode="json"),
        "fusion": fusion,
        "used": used,
        "prior": prior,
        "next_photo": asks,
    }


def test_fixture_is_current() -> None:
    """The committed fixture is what the rules produce now (regenerate with --write)."""
    assert FIXTURE.exists(), f"{FIXTURE} is missing: run this file with --write"
    stored = json.loads(FIXTURE.read_text("utf-8"))
    assert stored == json.loads(json.dumps(build_cases())), (
        f"{FIXTURE} is stale: run `uv run python {Path(__file__).name} --write`"
    )


def test_cases_cover_every_branch() -> None:
    """Every fusion method; the prior demotes, never a deadly species; asks and no asks."""
    cases = build_cases()
    assert {case["method"] for case in cases["fusion"]} == set(FUSION_METHODS)
    weights = [w for case in cases["prior"] for w in case["expected_weights"]]
    assert min(weights) < 1.0
    deadly = cases["labels"].index("amanita_phalloides")
    assert all(case["expected_weights"][deadly] == 1.0 for case in cases["prior"])
    outcomes = {case["expected"] is None for case in cases["next_photo"]}
    assert outcomes == {True, False}
    assert {case["expected_region"] for case in cases["prior"]} >= {"europe", None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help="write the fixture")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.write:
        cases = build_cases()
        FIXTURE.write_text(json.dumps(cases, indent=1) + "\n", "utf-8")
        logger.info(
            "wrote %s: %d fusion, %d prior, %d next-photo cases",
            FIXTURE,
            len(cases["fusion"]),
            len(cases["prior"]),
            len(cases["next_photo"]),
        )


if __name__ == "__main__":
    main()
