"""The rules file: everything a phone needs to run the bundle and judge its output offline.

One versioned JSON document, built from a bundle's metadata, the species catalog and the verdict
rules (`mushroom_common.verdict`), so the phone applies the same thresholds to the same catalog
facts as the API: the serving variant's own temperature and test-time views, every threshold
(by severity), which edibility classes are deadly, dangerous and edible, each label's catalog
facts with its look-alikes (telling feature and photo view), and each genus' facts (danger share).
Nothing the phone decides with is written in TypeScript. The frontend's TypeScript verdict
function reads it; the golden cases generated from `judge` keep the two in step.

Regenerate the demo bundle's file after changing the rules, the catalog or the bundle:
    uv run python -m mushroom_common.rules_export models/demo
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mushroom_common.bundle import (
    BundleFile,
    BundleMetadata,
    InferenceView,
    read_metadata,
    sha256_file,
    write_metadata,
)
from mushroom_common.catalog import Catalog, Edibility, PhotoView, load_catalog
from mushroom_common.observation import ObservationRulesPublic, export_rules
from mushroom_common.verdict import (
    CAUTION_LIMIT,
    OpenSetMethod,
    VerdictRules,
    genus_danger_share,
)

RULES_FILE = "rules.json"
# 2: severity thresholds, caution, genus danger shares, edibility classes, look-alike views,
# the variant's own temperature and test-time views (a phone that reads version 1 refuses it).
# 3: `lookalike_threshold` (a learned dangerous look-alike forbids 'edible'): a phone that reads
# version 2 would ignore it and could answer 'edible' where the server cautions, so it refuses.
# 4: `edible_mushroom_score` ('edible' needs the detector's score to reach it): a phone that reads
# version 3 would drop it and answer 'edible' for a photo the server finds unclear, so it refuses.
RULES_SCHEMA_VERSION: Literal[4] = 4

logger = logging.getLogger(__name__)


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
    temperature: float = Field(
        gt=0,
        description="the serving variant's own temperature: divide logits by it before softmax",
    )
    mushroom_score_output: bool = Field(description="the model has a [1, 1] mushroom_score output")
    test_time_views: list[InferenceView] = Field(
        description="run the photo in each view, calibrate each, average them in this order "
        "(probabilities, logits and scores); 'edible' needs every view to agree"
    )


class OpenSetRulePublic(BaseModel):
    """The unknown-species rule (see `mushroom_common.verdict.open_set_score`)."""

    model_config = ConfigDict(extra="forbid")

    method: OpenSetMethod
    threshold: float


class VerdictRulesPublic(BaseModel):
    """The thresholds of the safety rules, as `VerdictRules` holds them."""

    model_config = ConfigDict(extra="forbid")

    danger_threshold: float = Field(description="kept for older readers: see the severities")
    deadly_threshold: float = Field(description="summed deadly probability that is 'dangerous'")
    poisonous_threshold: float = Field(
        description="summed deadly + poisonous probability that is 'dangerous'"
    )
    caution_threshold: float = Field(
        description="a dangerous label this likely is not ruled out (caution)"
    )
    caution_limit: int = Field(description="at most this many species in a caution")
    lookalike_threshold: float | None = Field(
        description="a learned dangerous look-alike of the top species this likely on its own "
        "forbids 'edible' (caution); null: no such rule"
    )
    edible_mushroom_score: float | None = Field(
        description="'edible' needs the mushroom score to reach this (else 'uncertain', unclear "
        "photo); null: no such rule"
    )
    edible_threshold: float
    genus_threshold: float
    genus_danger_share: float = Field(
        description="a likely genus whose danger_share is above this is 'dangerous'"
    )
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
    view: PhotoView | None = Field(description="the photo that shows the telling feature")


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
    danger_share: float = Field(
        description="share of its catalog species of known edibility that are deadly or poisonous"
    )


class EdibilityClassesPublic(BaseModel):
    """Which edibility values the rules treat as deadly, dangerous and edible."""

    model_config = ConfigDict(extra="forbid")

    deadly: list[Edibility]
    dangerous: list[Edibility] = Field(description="deadly or poisonous")
    edible: list[Edibility] = Field(description="may be answered 'edible'")


class RulesDocument(BaseModel):
    """`rules.json`: the model, its labels, the verdict rules and the catalog facts they use."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[4] = RULES_SCHEMA_VERSION
    model: RulesModelPublic
    labels: list[str] = Field(description="catalog ids in the model's output order")
    rules: VerdictRulesPublic
    edibility_order: list[Edibility] = Field(
        description="edibility from most to least dangerous (look-alikes sort by it)"
    )
    edibility_classes: EdibilityClassesPublic
    species: dict[str, RulesSpeciesPublic] = Field(
        description="every label and every look-alike of a label, by catalog id"
    )
    genera: dict[str, RulesGenusPublic] = Field(description="every genus of the labels")
    observation: ObservationRulesPublic = Field(description="several photos, place, next photo")


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
                    species=la.id, distinguishing_feature=la.distinguishing_feature, view=la.view
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
                danger_share=genus_danger_share(catalog, entry.genus),
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
            temperature=variant.effective_temperature(metadata.temperature),
            mushroom_score_output=metadata.mushroom_detector is not None,
            test_time_views=list(metadata.decision_rules.test_time_views),
        ),
        labels=list(metadata.labels),
        rules=VerdictRulesPublic(
            danger_threshold=rules.danger_threshold,
            deadly_threshold=rules.deadly_threshold,
            poisonous_threshold=rules.poisonous_threshold,
            caution_threshold=rules.caution_threshold,
            caution_limit=CAUTION_LIMIT,
            lookalike_threshold=rules.lookalike_threshold,
            edible_mushroom_score=rules.edible_mushroom_score,
            edible_threshold=rules.edible_threshold,
            genus_threshold=rules.genus_threshold,
            genus_danger_share=rules.genus_danger_share,
            detector_threshold=rules.detector_threshold,
            unseen_lookalike_blocks_edible=rules.unseen_lookalike_blocks_edible,
            open_set=open_set,
        ),
        edibility_order=list(Edibility),
        edibility_classes=EdibilityClassesPublic(
            deadly=[Edibility.DEADLY],
            dangerous=[e for e in Edibility if e.is_dangerous],
            edible=[e for e in Edibility if e.is_edible],
        ),
        species=species,
        genera=genera,
        observation=export_rules(catalog, metadata.labels),
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


def main(argv: list[str] | None = None) -> None:
    """Write a local bundle folder's `rules.json` from its metadata and the shipped catalog."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("bundle_dir", type=Path, help="the bundle folder (e.g. models/demo)")
    bundle_dir = parser.parse_args(argv).bundle_dir
    metadata = read_metadata(bundle_dir)
    target = write_rules_file(bundle_dir, metadata, load_catalog())
    # The bundle's metadata records every file's hash (the API verifies them): keep it true.
    if any(entry.path == target.name for entry in metadata.files):
        rehashed = BundleFile(
            path=target.name, sha256=sha256_file(target), size_bytes=target.stat().st_size
        )
        files = [rehashed if entry.path == target.name else entry for entry in metadata.files]
        write_metadata(bundle_dir, metadata.model_copy(update={"files": files}))
    logger.info("wrote %s", target)


if __name__ == "__main__":
    main()
