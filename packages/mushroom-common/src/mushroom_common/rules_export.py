"""The rules file: everything a phone needs to run the bundle and judge its output offline.

One versioned JSON document, built from a bundle's metadata, the species catalog and the verdict
rules (`mushroom_common.verdict`), so the phone applies the same thresholds to the same catalog
facts as the API. The frontend's TypeScript verdict function reads it; the golden cases generated
from `judge` keep the two in step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mushroom_common.bundle import BundleMetadata, sha256_file
from mushroom_common.catalog import Catalog, Edibility
from mushroom_common.verdict import OpenSetMethod, VerdictRules

RULES_FILE = "rules.json"
RULES_SCHEMA_VERSION: Literal[1] = 1


class RulesModelPublic(BaseModel):
    """The model file the phone downloads and how to read its outputs."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    name: str
    version: str
    variant: str = Field(description="the bundle variant the API serves (and the phone runs)")
    format: Literal["tflite"] = "tflite"
    path: str = Field(description="the variant's file, relative to the bundle folder")
    sha256: str = Field(description="hex sha256 of the model file: the phone's cache key")
    size_bytes: int = Field(ge=0)
    input_height: int = Field(gt=0)
    input_width: int = Field(gt=0)
    temperature: float = Field(gt=0, description="divide logits by this before softmax")
    mushroom_score_output: bool = Field(description="the model has a [1, 1] mushroom_score output")


class OpenSetRulePublic(BaseModel):
    """The unknown-species rule (see `mushroom_common.verdict.open_set_score`)."""

    model_config = ConfigDict(extra="forbid")

    method: OpenSetMethod
    threshold: float


class VerdictRulesPublic(BaseModel):
    """The thresholds of the safety rules, as `VerdictRules` holds them."""

    model_config = ConfigDict(extra="forbid")

    danger_threshold: float
    edible_threshold: float
    genus_threshold: float
    detector_threshold: float | None = Field(
        description="mushroom scores below this mean 'not a mushroom'; null: no detector"
    )
    unseen_lookalike_blocks_edible: bool
    open_set: OpenSetRulePublic | None


class RulesLookalikePublic(BaseModel):
    """A look-alike of a species: its id (in `species`) and the feature that tells them apart."""

    model_config = ConfigDict(extra="forbid")

    species: str
    distinguishing_feature: str = Field(
        description="'<this species' trait> vs <the look-alike's trait>'"
    )


class RulesSpeciesPublic(BaseModel):
    """The catalog facts the rules and the answer need for one species."""

    model_config = ConfigDict(extra="forbid")

    scientific_name: str
    common_names: list[str] = Field(description="English common names, most used first")
    genus: str
    family: str | None
    edibility: Edibility
    lookalikes: list[RulesLookalikePublic] = Field(
        description="in the catalog's order; the phone sorts them most dangerous first"
    )


class RulesGenusPublic(BaseModel):
    """What the whole catalog says about a genus of the model's labels."""

    model_config = ConfigDict(extra="forbid")

    family: str | None
    holds_deadly: bool
    holds_poisonous: bool


class RulesDocument(BaseModel):
    """`rules.json`: the model, its labels, the verdict rules and the catalog facts they use."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = RULES_SCHEMA_VERSION
    model: RulesModelPublic
    labels: list[str] = Field(description="catalog ids in the model's output order")
    rules: VerdictRulesPublic
    edibility_order: list[Edibility] = Field(
        description="edibility from most to least dangerous (look-alikes sort by it)"
    )
    species: dict[str, RulesSpeciesPublic] = Field(
        description="every label and every look-alike of a label, by catalog id"
    )
    genera: dict[str, RulesGenusPublic] = Field(description="every genus of the labels")


def build_rules_document(
    metadata: BundleMetadata,
    catalog: Catalog,
    *,
    model_sha256: str,
    rules: VerdictRules | None = None,
) -> RulesDocument:
    """The rules file of a bundle's serving variant.

    Args:
        metadata: the bundle's metadata (labels, serving variant, decision rules, detector).
        catalog: the species catalog.
        model_sha256: hex sha256 of the serving variant's file.
        rules: the thresholds in force (the API's, with its overrides); the bundle's by default.

    Returns:
        The document; `model_dump_json()` is the file.
    """
    rules = rules or VerdictRules.from_bundle(metadata)
    variant = metadata.variant()
    if variant.format != "tflite":
        raise ValueError(f"serving variant {variant.name} is {variant.format}, not tflite")
    wanted = list(metadata.labels)
    for label in metadata.labels:
        wanted += [la.id for la in catalog.get(label).lookalikes]
    species = {
        species_id: RulesSpeciesPublic(
            scientific_name=entry.scientific_name,
            common_names=entry.english_names,
            genus=entry.genus,
            family=entry.family,
            edibility=entry.edibility,
            lookalikes=[
                RulesLookalikePublic(
                    species=la.id, distinguishing_feature=la.distinguishing_feature
                )
                for la in entry.lookalikes
            ],
        )
        for species_id in dict.fromkeys(wanted)
        for entry in [catalog.get(species_id)]
    }
    members: dict[str, set[Edibility]] = {}
    for entry in catalog.species:
        members.setdefault(entry.genus, set()).add(entry.edibility)
    genera: dict[str, RulesGenusPublic] = {}
    for label in metadata.labels:
        entry = catalog.get(label)
        genera.setdefault(
            entry.genus,
            RulesGenusPublic(
                family=entry.family,
                holds_deadly=Edibility.DEADLY in members[entry.genus],
                holds_poisonous=Edibility.POISONOUS in members[entry.genus],
            ),
        )
    open_set = (
        OpenSetRulePublic(method=rules.open_set_method, threshold=rules.open_set_threshold)
        if rules.open_set_method is not None and rules.open_set_threshold is not None
        else None
    )
    return RulesDocument(
        model=RulesModelPublic(
            name=metadata.name,
            version=metadata.version,
            variant=variant.name,
            path=variant.path,
            sha256=model_sha256,
            size_bytes=variant.size_bytes,
            input_height=metadata.input.height,
            input_width=metadata.input.width,
            temperature=metadata.temperature,
            mushroom_score_output=metadata.mushroom_detector is not None,
        ),
        labels=list(metadata.labels),
        rules=VerdictRulesPublic(
            danger_threshold=rules.danger_threshold,
            edible_threshold=rules.edible_threshold,
            genus_threshold=rules.genus_threshold,
            detector_threshold=rules.detector_threshold,
            unseen_lookalike_blocks_edible=rules.unseen_lookalike_blocks_edible,
            open_set=open_set,
        ),
        edibility_order=list(Edibility),
        species=species,
        genera=genera,
    )


def serving_model_sha256(bundle_dir: Path, metadata: BundleMetadata) -> str:
    """The serving variant's sha256: the recorded one, else hashed from the file."""
    path = metadata.variant().path
    for entry in metadata.files:
        if entry.path == path:
            return entry.sha256
    return sha256_file(bundle_dir / path)


def write_rules_file(bundle_dir: Path, metadata: BundleMetadata, catalog: Catalog) -> Path:
    """Write `rules.json` (the bundle's own thresholds) into a local bundle folder."""
    document = build_rules_document(
        metadata, catalog, model_sha256=serving_model_sha256(bundle_dir, metadata)
    )
    target = bundle_dir / RULES_FILE
    target.write_text(document.model_dump_json(indent=2) + "\n", "utf-8")
    return target
