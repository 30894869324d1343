"""The phone's rules file: everything the phone decides with, from the bundle and the catalog."""

from __future__ import annotations

from pathlib import Path

from mushroom_common.bundle import (
    BundleMetadata,
    DecisionRulesSpec,
    InferenceView,
    InputSpec,
    ModelVariant,
    write_metadata,
)
from mushroom_common.catalog import Edibility, load_catalog
from mushroom_common.rules_export import (
    RULES_FILE,
    RULES_SCHEMA_VERSION,
    RulesDocument,
    build_rules_document,
    main,
)
from mushroom_common.verdict import CAUTION_LIMIT, genus_danger_share

LABELS = ["cantharellus_cibarius", "amanita_phalloides", "amanita_rubescens", "boletus_edulis"]


def _metadata(decision: dict[str, object]) -> BundleMetadata:
    return BundleMetadata(
        name="rules-test",
        version="v1",
        labels=LABELS,
        input=InputSpec(height=224, width=224),
        temperature=1.5,
        serving_variant="int8",
        variants=[
            ModelVariant(name="float32", path="f.tflite", format="tflite", size_bytes=3),
            ModelVariant(
                name="int8", path="m.tflite", format="tflite", size_bytes=3, temperature=0.8
            ),
        ],
        decision_rules=DecisionRulesSpec.model_validate(decision),
        backbone="test",
        dataset_version="test",
        git_revision="test",
    )


def test_the_phone_gets_the_serving_variants_own_temperature_and_views() -> None:
    metadata = _metadata({"test_time_views": ["original", "mirror"]})
    document = build_rules_document(metadata, load_catalog(), model_sha256="0" * 64)
    assert document.schema_version == RULES_SCHEMA_VERSION == 4
    assert document.model.temperature == 0.8  # the int8 variant's, not the bundle's 1.5
    assert document.model.test_time_views == [InferenceView.ORIGINAL, InferenceView.MIRROR]
    # A variant without its own temperature falls back to the bundle's.
    older = metadata.model_copy(update={"serving_variant": "float32"})
    assert (
        build_rules_document(older, load_catalog(), model_sha256="0" * 64).model.temperature == 1.5
    )


def test_old_bundles_get_both_severities_from_their_danger_threshold() -> None:
    document = build_rules_document(
        _metadata({"danger_threshold": 0.03}), load_catalog(), model_sha256="0" * 64
    )
    rules = document.rules
    assert (rules.danger_threshold, rules.deadly_threshold, rules.poisonous_threshold) == (
        0.03,
        0.03,
        0.03,
    )
    assert rules.caution_limit == CAUTION_LIMIT
    tuned = build_rules_document(
        _metadata({"deadly_threshold": 0.1, "poisonous_threshold": 0.3, "caution_threshold": 0.02}),
        load_catalog(),
        model_sha256="0" * 64,
    )
    assert (tuned.rules.deadly_threshold, tuned.rules.poisonous_threshold) == (0.1, 0.3)
    assert tuned.rules.caution_threshold == 0.02


def test_the_edible_mushroom_score_travels_to_the_phone() -> None:
    catalog = load_catalog()
    old = build_rules_document(_metadata({}), catalog, model_sha256="0" * 64)
    assert old.rules.edible_mushroom_score is None  # bundles written before it: rule off
    tuned = build_rules_document(
        _metadata({"edible_mushroom_score": 0.42}), catalog, model_sha256="0" * 64
    )
    assert tuned.rules.edible_mushroom_score == 0.42
    # The phone's zod schema validates the JSON, so the key must be there even when off.
    assert '"edible_mushroom_score":null' in old.model_dump_json()


def test_catalog_facts_the_rules_need_travel_with_the_file() -> None:
    catalog = load_catalog()
    document = build_rules_document(_metadata({}), catalog, model_sha256="0" * 64)
    assert document.edibility_classes.deadly == [Edibility.DEADLY]
    assert set(document.edibility_classes.dangerous) == {Edibility.DEADLY, Edibility.POISONOUS}
    assert set(document.edibility_classes.edible) == {e for e in Edibility if e.is_edible}
    for genus, facts in document.genera.items():
        assert facts.danger_share == genus_danger_share(catalog, genus)
    chanterelle = document.species["cantharellus_cibarius"]
    assert [la.view for la in chanterelle.lookalikes] == [
        la.view for la in catalog.get("cantharellus_cibarius").lookalikes
    ]
    # Every look-alike of a label is described too (the caution names untrained ones).
    for label in LABELS:
        for lookalike in document.species[label].lookalikes:
            assert lookalike.species in document.species


def test_one_command_regenerates_a_bundles_rules_file(tmp_path: Path) -> None:
    write_metadata(tmp_path, _metadata({}))
    (tmp_path / "m.tflite").write_bytes(b"abc")
    main([str(tmp_path)])
    written = RulesDocument.model_validate_json((tmp_path / RULES_FILE).read_text("utf-8"))
    assert written.model.sha256 == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # sha256 of b"abc"
    )
