"""Checks on the species catalog data file itself (species.yaml), a safety-critical table.

The file is read twice: with plain ``yaml.safe_load`` so these rules hold whatever the
loader does, and through ``load_catalog`` so the shipped file also passes its validation.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from mushroom_common.catalog import Edibility, PhotoView, Region, load_catalog, parse_catalog

EDIBILITY_SCALE = (
    "deadly",
    "poisonous",
    "unknown",
    "inedible",
    "edible_when_cooked",
    "edible",
    "choice",
)
DANGEROUS = {"deadly", "poisonous"}
EDIBLE = {"edible_when_cooked", "edible", "choice"}

# The species of the development data (/work/shared/data), with the class the catalog must give.
SHARED_DATA_SPECIES = {
    "amanita_muscaria": "poisonous",
    "amanita_vaginata": "inedible",
    "boletus_edulis": "choice",
    "boletus_erythropus": "edible_when_cooked",
    "amanita_virosa": "deadly",
    "imleria_badia": "edible",
    "cantharellus_cibarius": "choice",
    "craterellus_cornucopioides": "choice",
    "hygrophoropsis_aurantiaca": "poisonous",
}

DEADLY_SPECIES = (
    "amanita_phalloides",
    "amanita_virosa",
    "amanita_bisporigera",
    "amanita_ocreata",
    "amanita_verna",
    "cortinarius_rubellus",
    "cortinarius_orellanus",
    "galerina_marginata",
    "gyromitra_esculenta",
    "lepiota_brunneoincarnata",
    "lepiota_josserandii",
    "lepiota_subincarnata",
    "clitocybe_rivulosa",
    "clitocybe_dealbata",
    "inocybe_erubescens",
    "podostroma_cornu_damae",
    "conocybe_filaris",
    "paxillus_involutus",
)

POISONOUS_SPECIES = (
    "amanita_muscaria",
    "omphalotus_olearius",
    "omphalotus_illudens",
    "entoloma_sinuatum",
    "hypholoma_fasciculare",
    "agaricus_xanthodermus",
    "tricholoma_pardinum",
    "chlorophyllum_molybdites",
    "rubroboletus_satanas",
    "coprinopsis_atramentaria",
)

# Pairs a forager is known to confuse, at least one of them dangerous: both must link.
KNOWN_CONFUSIONS = (
    ("cantharellus_cibarius", "hygrophoropsis_aurantiaca"),
    ("cantharellus_cibarius", "omphalotus_olearius"),
    ("cantharellus_cibarius", "omphalotus_illudens"),
    ("boletus_edulis", "rubroboletus_satanas"),
    ("amanita_caesarea", "amanita_muscaria"),
    ("agaricus_campestris", "amanita_phalloides"),
    ("agaricus_campestris", "amanita_virosa"),
    ("agaricus_campestris", "agaricus_xanthodermus"),
    ("agaricus_arvensis", "agaricus_xanthodermus"),
    ("macrolepiota_procera", "chlorophyllum_molybdites"),
    ("macrolepiota_procera", "lepiota_brunneoincarnata"),
    ("morchella_esculenta", "gyromitra_esculenta"),
    ("armillaria_mellea", "galerina_marginata"),
    ("flammulina_velutipes", "galerina_marginata"),
    ("amanita_rubescens", "amanita_pantherina"),
    ("calocybe_gambosa", "inocybe_erubescens"),
    ("calvatia_gigantea", "amanita_phalloides"),
    ("coprinus_comatus", "coprinopsis_atramentaria"),
    ("amanita_vaginata", "amanita_phalloides"),
)

SNAKE_CASE = re.compile(r"^[a-z]+(_[a-z0-9]+)+$")


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    text = resources.files("mushroom_common").joinpath("data/species.yaml").read_text("utf-8")
    loaded = yaml.safe_load(text)
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def species(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["id"]: entry for entry in document["species"]}


def _lookalike_ids(entry: dict[str, Any]) -> list[str]:
    return [lookalike["id"] for lookalike in entry.get("lookalikes") or []]


def _normalise(name: str) -> str:
    return re.sub(r"[\s_\-']+", " ", name.strip().casefold())


def test_schema_version_and_size(document: dict[str, Any]) -> None:
    assert document["schema_version"] == 1
    assert len(document["species"]) >= 45


def test_ids_are_unique_snake_case_scientific_names(document: dict[str, Any]) -> None:
    ids = [entry["id"] for entry in document["species"]]
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})
    for entry in document["species"]:
        assert SNAKE_CASE.match(entry["id"]), entry["id"]
        expected = re.sub(r"[\s\-]+", "_", entry["scientific_name"].strip().lower())
        assert entry["id"] == expected, (entry["id"], entry["scientific_name"])


def test_every_entry_has_sources_english_name_and_known_edibility(
    species: dict[str, dict[str, Any]],
) -> None:
    for species_id, entry in species.items():
        assert entry["edibility"] in EDIBILITY_SCALE, species_id
        assert entry["common_names"].get("en"), species_id
        sources = entry["sources"]
        assert len(sources) >= 1, species_id
        assert all(isinstance(s, str) and s.strip() for s in sources), species_id
        assert isinstance(entry["toxins"], list), species_id
        assert isinstance(entry["symptoms"], str), species_id
        assert entry["regions"], species_id


def test_names_resolve_to_one_species_only(species: dict[str, dict[str, Any]]) -> None:
    owners: dict[str, set[str]] = defaultdict(set)
    for species_id, entry in species.items():
        names = [species_id, entry["scientific_name"], *entry.get("synonyms", [])]
        names += [name for group in entry["common_names"].values() for name in group]
        for name in names:
            owners[_normalise(name)].add(species_id)
    ambiguous = {name: ids for name, ids in owners.items() if len(ids) > 1}
    assert not ambiguous


def test_lookalikes_exist_are_not_self_and_not_repeated(
    species: dict[str, dict[str, Any]],
) -> None:
    for species_id, entry in species.items():
        ids = _lookalike_ids(entry)
        assert species_id not in ids, species_id
        assert len(ids) == len(set(ids)), species_id
        for lookalike in entry.get("lookalikes") or []:
            assert lookalike["id"] in species, (species_id, lookalike["id"])
            assert len(lookalike["distinguishing_feature"]) >= 10, (species_id, lookalike)
            assert " vs " in lookalike["distinguishing_feature"], (species_id, lookalike)


def test_lookalike_links_go_both_ways(species: dict[str, dict[str, Any]]) -> None:
    one_way = [
        (species_id, other)
        for species_id, entry in species.items()
        for other in _lookalike_ids(entry)
        if species_id not in _lookalike_ids(species[other])
    ]
    assert not one_way


def test_shared_data_species_are_present_with_their_class(
    species: dict[str, dict[str, Any]],
) -> None:
    for species_id, edibility in SHARED_DATA_SPECIES.items():
        assert species_id in species, species_id
        assert species[species_id]["edibility"] == edibility, species_id


@pytest.mark.parametrize("species_id", DEADLY_SPECIES)
def test_named_deadly_species_are_deadly(
    species: dict[str, dict[str, Any]], species_id: str
) -> None:
    assert species[species_id]["edibility"] == "deadly"


@pytest.mark.parametrize("species_id", POISONOUS_SPECIES)
def test_named_poisonous_species_are_dangerous(
    species: dict[str, dict[str, Any]], species_id: str
) -> None:
    assert species[species_id]["edibility"] in DANGEROUS


def test_dangerous_species_have_lookalikes_toxin_facts_and_symptoms(
    species: dict[str, dict[str, Any]],
) -> None:
    for species_id, entry in species.items():
        if entry["edibility"] in DANGEROUS:
            assert _lookalike_ids(entry), species_id
            assert entry["symptoms"].strip(), species_id


def test_edible_species_list_every_dangerous_species_confused_with_them(
    species: dict[str, dict[str, Any]],
) -> None:
    missing = [
        (edible_id, dangerous_id)
        for dangerous_id, dangerous in species.items()
        if dangerous["edibility"] in DANGEROUS
        for edible_id in _lookalike_ids(dangerous)
        if species[edible_id]["edibility"] in EDIBLE
        and dangerous_id not in _lookalike_ids(species[edible_id])
    ]
    assert not missing


@pytest.mark.parametrize(("first", "second"), KNOWN_CONFUSIONS)
def test_known_confusions_are_linked(
    species: dict[str, dict[str, Any]], first: str, second: str
) -> None:
    assert second in _lookalike_ids(species[first])
    assert first in _lookalike_ids(species[second])


def test_cook_first_species_say_why(species: dict[str, dict[str, Any]]) -> None:
    for species_id, entry in species.items():
        if entry["edibility"] == "edible_when_cooked":
            assert (entry.get("edibility_note") or "").strip(), species_id


def test_shipped_file_passes_the_typed_loader(species: dict[str, dict[str, Any]]) -> None:
    catalog = load_catalog()
    assert catalog.ids == list(species)
    assert catalog.get("amanita_phalloides").edibility is Edibility.DEADLY
    assert catalog.get("amanita_phalloides").edibility.is_dangerous


@pytest.mark.parametrize(
    ("name", "species_id"),
    [
        ("death cap", "amanita_phalloides"),
        ("Grüner Knollenblätterpilz", "amanita_phalloides"),
        ("Neoboletus erythropus", "boletus_erythropus"),
        ("Pholiotina rugosa", "conocybe_filaris"),
        ("false chanterelle", "hygrophoropsis_aurantiaca"),
        ("jack-o'-lantern mushroom", "omphalotus_olearius"),
    ],
)
def test_names_resolve_through_the_loader(name: str, species_id: str) -> None:
    resolved = load_catalog().resolve(name)
    assert resolved is not None
    assert resolved.id == species_id


def test_loader_lists_the_most_dangerous_lookalike_first() -> None:
    pairs = load_catalog().lookalikes_of("cantharellus_cibarius")
    assert pairs[0][0].edibility.is_dangerous
    assert [p[0].edibility.danger_rank for p in pairs] == sorted(
        p[0].edibility.danger_rank for p in pairs
    )


REPO = Path(__file__).resolve().parents[3]
SHARED_DATA = REPO.parent / "shared" / "data"
DEMO_METADATA = REPO / "models" / "demo" / "metadata.json"


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="development data ../shared/data absent")
def test_every_class_folder_of_the_development_data_is_in_the_catalog(
    species: dict[str, dict[str, Any]],
) -> None:
    folders = {p.name for p in SHARED_DATA.glob("nordic-field/*") if p.is_dir()}
    folders |= {p.name for p in SHARED_DATA.glob("mushroomvision/*/*") if p.is_dir()}
    folders |= {p.name for p in SHARED_DATA.glob("web-species/*") if p.is_dir()}
    assert folders
    catalog = load_catalog()
    assert [f for f in sorted(folders) if catalog.resolve(f) is None] == []


@pytest.mark.skipif(
    not (SHARED_DATA / "field-extra").is_dir(),
    reason="development data ../shared/data/field-extra absent (never copied into the repository)",
)
def test_every_species_folder_of_field_extra_has_a_full_entry() -> None:
    # field-extra/ holds field photos of 155 species the model never learns: an open-set test
    # whose danger is known only if each of them has an entry with an edibility and a source.
    folders = sorted(p.name for p in (SHARED_DATA / "field-extra").iterdir() if p.is_dir())
    assert len(folders) >= 200
    catalog = load_catalog()
    missing = [f for f in folders if catalog.resolve(f) is None]
    assert missing == []
    for folder in folders:
        entry = catalog.resolve(folder)
        assert entry is not None
        assert entry.family, folder
        assert entry.sources, folder
        if entry.edibility.is_dangerous:
            assert entry.symptoms.strip(), folder
            assert entry.lookalikes, folder


def _demo_labels() -> list[str]:
    labels: list[str] = json.loads(DEMO_METADATA.read_text("utf-8"))["labels"]
    return labels


def test_every_label_of_the_served_demo_model_has_a_full_entry() -> None:
    catalog = load_catalog()
    for label in _demo_labels():
        entry = catalog.get(label)
        assert entry.family, label
        assert entry.english_names, label
        assert entry.sources, label
        assert entry.genus == entry.scientific_name.split()[0], label
        if entry.edibility.is_dangerous:
            assert entry.toxins, label
            assert entry.onset, label
            assert entry.lookalikes, label


def test_trained_species_are_the_demo_model_labels() -> None:
    assert set(load_catalog().trained_ids) == set(_demo_labels())


def test_every_lookalike_resolves_to_an_entry() -> None:
    catalog = load_catalog()
    for entry in catalog.species:
        for lookalike in entry.lookalikes:
            assert lookalike.id in catalog, (entry.id, lookalike.id)


def test_unknown_edibility_is_neither_dangerous_nor_edible() -> None:
    unknown = Edibility.UNKNOWN
    assert not unknown.is_edible
    assert not unknown.is_dangerous
    assert unknown.danger_rank < Edibility.INEDIBLE.danger_rank


MONTHS = set(range(1, 13))


def test_every_species_has_regions_months_and_their_sources(
    species: dict[str, dict[str, Any]],
) -> None:
    regions = {region.value for region in Region}
    for species_id, entry in species.items():
        assert entry["regions"], species_id
        assert set(entry["regions"]) <= regions, (species_id, entry["regions"])
        assert len(entry["regions"]) == len(set(entry["regions"])), species_id
        months = entry["fruiting_months"]
        assert months, species_id
        assert all(isinstance(m, int) for m in months), species_id
        assert set(months) <= MONTHS, (species_id, months)
        assert months == sorted(set(months)), (species_id, months)
        sources = entry["range_sources"]
        assert sources, species_id
        assert all(isinstance(s, str) and s.strip() for s in sources), species_id


def test_lookalike_views_are_photo_views(species: dict[str, dict[str, Any]]) -> None:
    views = {view.value for view in PhotoView}
    for species_id, entry in species.items():
        for lookalike in entry["lookalikes"]:
            if "view" in lookalike:
                assert lookalike["view"] in views, (species_id, lookalike)


# Words naming a feature one photo shows (gills, volva, ring, cut flesh, spore print, cap...).
PHOTO_FEATURE = re.compile(
    r"\b(gills?|pores?|ridges|spines|volva|bulb|sac|stem base|ring|spore print|spores|flesh|milk"
    r"|egg|cut|bruis\w*|stain\w*|cap|warts|scales|wood|stumps?|grass)\b"
)


def test_every_lookalike_of_a_dangerous_species_shown_by_a_photo_names_its_view(
    species: dict[str, dict[str, Any]],
) -> None:
    # "Which photo next" needs, for each dangerous confusion, the view that settles it.
    missing = [
        (species_id, lookalike["id"])
        for species_id, entry in species.items()
        for lookalike in entry["lookalikes"]
        if (entry["edibility"] in DANGEROUS or species[lookalike["id"]]["edibility"] in DANGEROUS)
        and PHOTO_FEATURE.search(lookalike["distinguishing_feature"])
        and "view" not in lookalike
    ]
    assert not missing


def test_views_of_the_classic_confusions_point_at_the_telling_photo() -> None:
    catalog = load_catalog()

    def view(first: str, second: str) -> PhotoView | None:
        return next(la.view for la in catalog.get(first).lookalikes if la.id == second)

    assert view("amanita_phalloides", "amanita_citrina") is PhotoView.STEM_BASE
    assert view("calvatia_gigantea", "amanita_phalloides") is PhotoView.FLESH
    assert view("cantharellus_cibarius", "hygrophoropsis_aurantiaca") is PhotoView.UNDERSIDE
    assert view("armillaria_mellea", "galerina_marginata") is PhotoView.SPORE_PRINT
    assert view("macrolepiota_procera", "lepiota_brunneoincarnata") is PhotoView.RING
    assert view("agaricus_campestris", "agaricus_xanthodermus") is PhotoView.FLESH


def test_the_typed_loader_rejects_bad_months_regions_and_views(
    document: dict[str, Any],
) -> None:
    first, second = (dict(entry, lookalikes=[]) for entry in document["species"][:2])

    def parse(entry: dict[str, Any]) -> Any:
        return parse_catalog({"schema_version": 1, "species": [entry, second]})

    for months in ([0, 5], [13], [5, 5]):
        with pytest.raises(ValidationError, match="fruiting"):
            parse(dict(first, fruiting_months=months))
    with pytest.raises(ValidationError, match="regions"):
        parse(dict(first, regions=["atlantis"]))
    feature = {"id": second["id"], "distinguishing_feature": "this vs that"}
    with pytest.raises(ValidationError, match="view"):
        parse(dict(first, lookalikes=[dict(feature, view="microscope")]))
    parsed = parse(dict(first, fruiting_months=[9, 7], lookalikes=[dict(feature, view="ring")]))
    assert parsed.species[0].fruiting_months == [7, 9]
    assert parsed.species[0].regions[0] is Region.EUROPE
    assert parsed.species[0].lookalikes[0].view is PhotoView.RING
