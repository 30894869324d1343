"""Observations: fusion, region geometry, the location and month prior, the next photo."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mushroom_common.catalog import Catalog, Edibility, Region, load_catalog, parse_catalog
from mushroom_common.observation import (
    FUSION_METHODS,
    REGION_BOXES,
    FusionMethod,
    LocationPrior,
    PriorStrength,
    apply_prior,
    export_rules,
    fuse,
    location_prior,
    next_photo,
    northern_month,
    observation_mushroom_score,
    parse_views,
    region_at,
    regions_at,
    round_location,
    used_photos,
)

FIELD_MUSHROOM = "agaricus_campestris"


def _species(species_id: str, edibility: str, **extra: Any) -> dict[str, Any]:
    genus, epithet = species_id.split("_", 1)
    return {
        "id": species_id,
        "scientific_name": f"{genus.capitalize()} {epithet}",
        "family": "Testaceae",
        "common_names": {"en": [f"{epithet} mushroom"]},
        "edibility": edibility,
        "sources": ["test"],
        **extra,
    }


def _catalog(*species: dict[str, Any]) -> Catalog:
    return parse_catalog({"schema_version": 1, "species": list(species)})


# ---------------------------------------------------------------------------- fusion


@pytest.mark.parametrize("method", FUSION_METHODS)
def test_one_photo_is_returned_unchanged(method: FusionMethod) -> None:
    row = np.array([0.1234567890123, 0.3, 0.5765432109877])
    fused = fuse(row[np.newaxis, :], method)
    assert fused.tolist() == row.tolist()
    assert fused is not row


@pytest.mark.parametrize("method", FUSION_METHODS)
def test_fused_rows_are_probabilities_that_favour_agreement(method: FusionMethod) -> None:
    rows = np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.5, 0.4, 0.1]])
    fused = fuse(rows, method)
    assert fused.sum() == pytest.approx(1.0)
    assert np.all(fused > 0)
    assert fused[2] < fused[0]
    assert fused[2] < fused[1]


def test_the_three_methods_differ_as_documented() -> None:
    rows = np.array([[0.9, 0.1], [0.4, 0.6]])
    assert fuse(rows, "mean").tolist() == pytest.approx([0.65, 0.35])
    geometric = np.sqrt([0.9 * 0.4, 0.1 * 0.6])
    assert fuse(rows, "log_mean").tolist() == pytest.approx((geometric / geometric.sum()).tolist())
    # Weighted by each photo's top probability (0.9 and 0.6).
    weighted = (0.9 * rows[0] + 0.6 * rows[1]) / 1.5
    assert fuse(rows, "confidence").tolist() == pytest.approx(weighted.tolist())


def test_a_zero_probability_does_not_zero_the_geometric_mean() -> None:
    fused = fuse(np.array([[1.0, 0.0], [0.5, 0.5]]), "log_mean")
    assert fused[0] > 0.99
    assert fused[1] > 0


def test_fuse_refuses_bad_shapes_and_methods() -> None:
    with pytest.raises(ValueError, match="photos, labels"):
        fuse(np.zeros((0, 3)))
    with pytest.raises(ValueError, match="photos, labels"):
        fuse(np.array([0.5, 0.5]))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown fusion"):
        fuse(np.array([[0.5, 0.5], [0.5, 0.5]]), "median")  # type: ignore[arg-type]


def test_photos_that_do_not_show_a_mushroom_are_left_out_unless_all_are() -> None:
    assert used_photos([0.9, 0.01, 0.5], 0.1) == [0, 2]
    assert used_photos([0.01, 0.02], 0.1) == [0, 1]
    assert used_photos([None, None], 0.1) == [0, 1]
    assert used_photos([0.01, 0.9], None) == [0, 1]
    assert observation_mushroom_score([0.2, 0.7, 0.1]) == 0.7
    assert observation_mushroom_score([None]) is None


# ---------------------------------------------------------------------------- geometry


def test_locations_round_to_whole_degrees_halves_away_from_zero() -> None:
    assert round_location(48.8566, 2.3522) == (49.0, 2.0)
    assert round_location(-33.5, 151.5) == (-34.0, 152.0)
    assert round_location(0.4, -0.4) == (0.0, 0.0)
    assert round_location(12.5, -12.5) == (13.0, -13.0)


@pytest.mark.parametrize(
    ("lat", "lon", "region"),
    [
        (48.9, 2.4, "europe"),  # Paris
        (60.2, 24.9, "europe"),  # Helsinki
        (55.8, 37.6, "europe"),  # Moscow
        (64.1, -21.9, "europe"),  # Reykjavik
        (36.8, 10.2, "north_africa"),  # Tunis
        (-1.3, 36.8, "africa"),  # Nairobi
        (35.7, 139.7, "asia"),  # Tokyo
        (28.6, 77.2, "asia"),  # Delhi
        (40.7, -74.0, "north_america"),  # New York
        (49.3, -123.1, "north_america"),  # Vancouver
        (19.4, -99.1, "north_america"),  # Mexico City (also central America)
        (-23.5, -46.6, "south_america"),  # Sao Paulo
        (-33.9, 151.2, "oceania"),  # Sydney
        (-41.3, 174.8, "oceania"),  # Wellington
        (-75.0, 0.0, None),  # Antarctica
        (0.0, -140.0, None),  # the Pacific
    ],
)
def test_cities_fall_in_their_region(lat: float, lon: float, region: str | None) -> None:
    found = regions_at(lat, lon)
    assert (region in found) if region else not found
    if region in ("europe", "north_africa", "asia", "oceania", "south_america"):
        assert region_at(lat, lon) == region


def test_every_catalog_region_has_boxes() -> None:
    assert {region.value for region in Region} == set(REGION_BOXES)
    assert all(entry.regions for entry in load_catalog().species)
    for boxes in REGION_BOXES.values():
        for lat_min, lat_max, lon_min, lon_max in boxes:
            assert -90 <= lat_min < lat_max <= 90
            assert -180 <= lon_min < lon_max <= 180


def test_southern_months_shift_by_six() -> None:
    assert northern_month(3, -34.0) == 9
    assert northern_month(9, -34.0) == 3
    assert northern_month(12, -1.0) == 6
    assert northern_month(3, 48.0) == 3
    assert northern_month(3, None) == 3


# ---------------------------------------------------------------------------- the prior

AMERICAN = _catalog(
    _species("agaricus_americanus", "edible", regions=["north_america"]),
    _species("agaricus_europaeus", "edible", regions=["europe"]),
    _species("amanita_americana", "deadly", regions=["north_america"]),
    _species("amanita_toxica", "poisonous", regions=["north_america"]),
    _species("boletus_nowhere", "edible"),
)
AMERICAN_LABELS = [s.id for s in AMERICAN.species]


def test_out_of_range_species_are_demoted_never_removed() -> None:
    prior = location_prior(AMERICAN_LABELS, AMERICAN, lat=48.9, lon=2.4)
    assert prior.applied
    assert prior.region == "europe"
    assert prior.month is None
    assert prior.weights.tolist() == [0.2, 1.0, 1.0, 1.0, 1.0]
    before = np.array([0.5, 0.2, 0.1, 0.1, 0.1])
    after = apply_prior(before, prior)
    assert after.sum() == pytest.approx(1.0)
    assert np.all(after > 0)
    assert after[0] < before[0]
    assert after[1] > before[1]
    assert np.argmax(after) == 1


def test_a_deadly_species_probability_never_falls() -> None:
    prior = location_prior(
        AMERICAN_LABELS,
        AMERICAN,
        lat=48.9,
        lon=2.4,
        strength=PriorStrength(out_of_range_factor=0.01, out_of_season_factor=0.01),
    )
    rng = np.random.default_rng(0)
    deadly = [AMERICAN.get(label).edibility.is_dangerous for label in AMERICAN_LABELS]
    for _ in range(200):
        before = rng.dirichlet(np.ones(len(AMERICAN_LABELS)) * 0.3)
        after = apply_prior(before, prior)
        assert np.all(after[deadly] >= before[deadly] - 1e-15)


def test_the_deadly_guarantee_holds_on_the_real_catalog_anywhere() -> None:
    catalog = load_catalog()
    labels = catalog.trained_ids
    deadly = np.array([catalog.get(label).edibility is Edibility.DEADLY for label in labels])
    rng = np.random.default_rng(1)
    for lat, lon, month in [(48, 2, 9), (-34, 151, 3), (35, 139, 1), (40, -74, 7), (0, 0, None)]:
        prior = location_prior(labels, catalog, lat=lat, lon=lon, month=month)
        before = rng.dirichlet(np.ones(len(labels)) * 0.1)
        after = apply_prior(before, prior)
        assert np.all(after[deadly] >= before[deadly] - 1e-15)
        assert np.all(after > 0)


def test_without_place_or_month_nothing_changes() -> None:
    prior = location_prior(AMERICAN_LABELS, AMERICAN)
    assert not prior.applied
    assert prior.region is None
    before = np.array([0.5, 0.2, 0.1, 0.1, 0.1])
    assert apply_prior(before, prior).tolist() == before.tolist()


def test_a_location_at_sea_demotes_nothing() -> None:
    prior = location_prior(AMERICAN_LABELS, AMERICAN, lat=0.0, lon=-140.0)
    assert prior.applied
    assert prior.region is None
    assert prior.weights.tolist() == [1.0] * len(AMERICAN_LABELS)


def test_out_of_season_species_are_demoted_with_the_southern_shift() -> None:
    catalog = _catalog(
        _species(
            "boletus_autumnalis", "edible", regions=["europe", "oceania"], fruiting_months=[9, 10]
        ),
        _species(
            "morchella_vernalis", "edible", regions=["europe", "oceania"], fruiting_months=[4, 5]
        ),
        _species("amanita_hiemalis", "deadly", regions=["europe"], fruiting_months=[1]),
        _species("boletus_semper", "edible", regions=["europe"]),
    )
    labels = [s.id for s in catalog.species]
    september = location_prior(labels, catalog, lat=48.0, lon=2.0, month=9)
    assert september.weights.tolist() == [1.0, 0.5, 1.0, 1.0]
    # A month next to the season still counts (margin 1): August is autumn enough.
    assert location_prior(labels, catalog, month=8).weights.tolist() == [1.0, 0.5, 1.0, 1.0]
    # March in Sydney is the southern autumn: the same as September up north.
    sydney = location_prior(labels, catalog, lat=-33.9, lon=151.2, month=3)
    assert sydney.weights.tolist() == [1.0, 0.5, 1.0, 0.2]
    assert sydney.month == 3
    assert sydney.region == "oceania"
    # A month alone (no place) is used as a Northern Hemisphere month.
    assert location_prior(labels, catalog, month=3).weights.tolist() == [0.5, 1.0, 1.0, 1.0]


def test_apply_prior_checks_its_shapes() -> None:
    prior = LocationPrior(np.ones(2), applied=True, region=None, month=None)
    with pytest.raises(ValueError, match="2 weights for 3"):
        apply_prior(np.array([0.2, 0.3, 0.5]), prior)


# ---------------------------------------------------------------------------- views


def test_views_are_parsed_one_per_photo() -> None:
    assert parse_views(None, 2) == [None, None]
    assert parse_views([], 1) == [None]
    assert parse_views(["cap", "", " underside "], 3) == ["cap", None, "underside"]
    with pytest.raises(ValueError, match="2 photos but 1 view"):
        parse_views(["cap"], 2)
    with pytest.raises(ValueError, match="'gills' is not one of cap, underside"):
        parse_views(["gills"], 1)


# ---------------------------------------------------------------------------- next photo

NEXT_LABELS = ["agaricus_campestris", "amanita_phalloides", "suillus_luteus"]


def test_next_photo_asks_for_the_view_that_rules_out_a_deadly_lookalike() -> None:
    catalog = load_catalog()
    probabilities = np.array([0.8, 0.05, 0.15])
    ask = next_photo(probabilities, NEXT_LABELS, catalog, ["cap"])
    assert ask is not None
    assert ask.view == "underside"
    assert ask.lookalike == "amanita_phalloides"
    assert ask.reason.startswith(
        "This could be the field mushroom (Agaricus campestris), but the deadly death cap "
        "(Amanita phalloides) looks like it ("
    )
    assert ask.reason.endswith(
        "add a photo of the underside of the cap (gills, pores or teeth) to tell them apart."
    )
    # Unlabelled photos do not count as any view.
    assert next_photo(probabilities, NEXT_LABELS, catalog, [None, None]) == ask


def test_next_photo_stops_asking_once_the_views_are_there() -> None:
    catalog = load_catalog()
    probabilities = np.array([0.8, 0.05, 0.15])
    asked: list[str] = []
    views: list[str | None] = ["cap"]
    while (ask := next_photo(probabilities, NEXT_LABELS, catalog, views)) is not None:
        assert ask.view not in views
        asked.append(ask.view)
        views.append(ask.view)
        assert len(asked) <= len(FUSION_METHODS) + len(REGION_BOXES)
    assert asked[0] == "underside"
    assert next_photo(probabilities, NEXT_LABELS, catalog, views) is None


def test_next_photo_only_asks_about_dangerous_lookalikes() -> None:
    catalog = load_catalog()
    # The slippery jack's look-alikes are all edible suillus: no photo would change the risk.
    assert all(
        not catalog.get(la.id).edibility.is_dangerous
        for la in catalog.get("suillus_luteus").lookalikes
    )
    assert next_photo(np.array([0.05, 0.0, 0.95]), NEXT_LABELS, catalog, [None]) is None


def test_next_photo_also_looks_at_a_likely_second_species() -> None:
    catalog = load_catalog()
    ask = next_photo(np.array([0.3, 0.0, 0.7]), NEXT_LABELS, catalog, [None])
    assert ask is not None
    assert ask.lookalike == "amanita_phalloides"
    assert next_photo(np.array([0.1, 0.0, 0.9]), NEXT_LABELS, catalog, [None]) is None


def test_a_lookalike_without_a_view_is_never_asked_for() -> None:
    catalog = _catalog(
        _species(
            "agaricus_testus",
            "edible",
            lookalikes=[{"id": "amanita_mortis", "distinguishing_feature": "pink vs white"}],
        ),
        _species("amanita_mortis", "deadly"),
    )
    labels = ["agaricus_testus", "amanita_mortis"]
    assert next_photo(np.array([0.9, 0.1]), labels, catalog, [None]) is None


# ---------------------------------------------------------------------------- rules.json


def test_export_rules_describes_every_label() -> None:
    catalog = load_catalog()
    labels = [*catalog.trained_ids[:20], "amanita_phalloides", "agaricus_campestris"]
    section = export_rules(catalog, labels)
    assert section.max_photos == 5
    assert section.fusion_method in FUSION_METHODS
    assert set(section.species) == set(labels)
    assert section.species["amanita_phalloides"].protected
    assert section.region_boxes["europe"][0] == list(REGION_BOXES["europe"][0])
    assert 0 < section.prior.out_of_range_factor <= 1
    assert section.dangerous_lookalike_views["agaricus_campestris"][0].view == "underside"
    assert "suillus_luteus" not in section.dangerous_lookalike_views or all(
        catalog.get(la.species).edibility.is_dangerous
        for la in section.dangerous_lookalike_views["suillus_luteus"]
    )
    dumped = section.model_dump(mode="json")
    assert dumped["southern_shift_months"] == 6
    assert dumped["location_decimals"] == 0
