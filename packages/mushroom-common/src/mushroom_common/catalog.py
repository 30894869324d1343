"""The species catalog: names, edibility, toxins and look-alikes of each species."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cache, cached_property
from importlib import resources
from typing import Any

import numpy as np
import numpy.typing as npt
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Edibility(StrEnum):
    """One scale for edibility, from most to least dangerous."""

    DEADLY = "deadly"
    POISONOUS = "poisonous"
    # The sources do not establish whether it is safe: never answered `edible`, and sorted
    # right after the dangerous classes because nobody should treat it as harmless.
    UNKNOWN = "unknown"
    INEDIBLE = "inedible"
    EDIBLE_WHEN_COOKED = "edible_when_cooked"
    EDIBLE = "edible"
    CHOICE = "choice"

    @property
    def is_dangerous(self) -> bool:
        """Whether eating it can seriously harm or kill (deadly or poisonous)."""
        return self in (Edibility.DEADLY, Edibility.POISONOUS)

    @property
    def is_edible(self) -> bool:
        """Whether field guides call it edible (possibly only after cooking)."""
        return self in (Edibility.EDIBLE_WHEN_COOKED, Edibility.EDIBLE, Edibility.CHOICE)

    @property
    def danger_rank(self) -> int:
        """0 for the most dangerous class; used to sort dangerous things first."""
        return list(Edibility).index(self)


_SNAKE_CASE = re.compile(r"^[a-z]+(_[a-z0-9]+)+$")


class PhotoView(StrEnum):
    """Which photo of a mushroom shows a feature: the views a person can be asked to add."""

    CAP = "cap"
    # Gills, pores or teeth: the cap turned over.
    UNDERSIDE = "underside"
    # The stem base dug out: bulb, volva.
    STEM_BASE = "stem_base"
    RING = "ring"
    # Cut or bruised flesh: staining, milk, the inside of an egg.
    FLESH = "flesh"
    SPORE_PRINT = "spore_print"
    # Where it grows: wood, substrate, host tree.
    HABITAT = "habitat"


class Region(StrEnum):
    """Broad regions where a species occurs (the geometry lives in `observation.py`)."""

    EUROPE = "europe"
    NORTH_AMERICA = "north_america"  # Canada, the United States, Mexico and Central America
    SOUTH_AMERICA = "south_america"
    ASIA = "asia"
    NORTH_AFRICA = "north_africa"  # the Mediterranean north of the Sahara
    AFRICA = "africa"  # Africa south of the Sahara
    OCEANIA = "oceania"  # Australia, New Zealand and the Pacific islands


class Lookalike(BaseModel):
    """A species this one is confused with, and the one feature that tells them apart."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    distinguishing_feature: str = Field(min_length=3)
    view: PhotoView | None = Field(
        None,
        description="the photo that shows the telling feature (none: told apart only by smell, "
        "taste or microscopy)",
    )


class Species(BaseModel):
    """One catalog entry."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    scientific_name: str
    family: str | None = None
    common_names: dict[str, list[str]]
    edibility: Edibility
    edibility_note: str | None = None
    toxins: list[str] = Field(default_factory=list)
    symptoms: str = ""
    onset: str | None = None
    lookalikes: list[Lookalike] = Field(default_factory=list)
    sources: list[str] = Field(min_length=1)
    regions: list[Region] = Field(default_factory=list)
    fruiting_months: list[int] = Field(
        default_factory=list,
        description="months (1-12) it fruits in its home range, Northern Hemisphere calendar "
        "(shift by 6 for southern latitudes)",
    )
    range_sources: list[str] = Field(
        default_factory=list, description="sources for regions and fruiting_months"
    )
    synonyms: list[str] = Field(default_factory=list)
    trained: bool = Field(
        True,
        description="the demo model learns it (false: listed as a look-alike only); the "
        "collector gathers photos of the trained species by default",
    )

    @field_validator("id")
    @classmethod
    def _id_is_snake_case(cls, value: str) -> str:
        if not _SNAKE_CASE.match(value):
            raise ValueError(f"species id {value!r} is not a snake_case scientific name")
        return value

    @field_validator("fruiting_months")
    @classmethod
    def _months_are_calendar_months(cls, value: list[int]) -> list[int]:
        if any(month < 1 or month > 12 for month in value):
            raise ValueError(f"fruiting months must be 1-12, got {value}")
        if len(set(value)) != len(value):
            raise ValueError(f"fruiting months repeat: {value}")
        return sorted(value)

    @field_validator("common_names")
    @classmethod
    def _has_english_name(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        if not value.get("en"):
            raise ValueError("every species needs at least one English common name")
        return value

    @property
    def genus(self) -> str:
        """The genus: the first word of the scientific name ('Amanita')."""
        return self.scientific_name.split()[0]

    @property
    def english_names(self) -> list[str]:
        """English common names, most used first."""
        return self.common_names["en"]


@dataclass(frozen=True)
class LabelView:
    """A model's labels as catalog entries, in output order, with their genera as indexes."""

    species: tuple[Species, ...]
    # The distinct genera in first-seen order, their families, and each label's genus position.
    genera: tuple[str, ...]
    families: tuple[str | None, ...]
    genus_index: npt.NDArray[np.intp]
    # Whether each label is deadly or poisonous.
    dangerous: npt.NDArray[np.bool_]


class Catalog(BaseModel):
    """All species, validated as a whole (every look-alike id exists)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int = 1
    species: list[Species]

    @model_validator(mode="after")
    def _check_references(self) -> Catalog:
        ids = [s.id for s in self.species]
        duplicated = sorted({i for i in ids if ids.count(i) > 1})
        if duplicated:
            raise ValueError(f"duplicate species ids: {', '.join(duplicated)}")
        known = set(ids)
        for entry in self.species:
            for lookalike in entry.lookalikes:
                if lookalike.id not in known:
                    raise ValueError(
                        f"{entry.id}: look-alike {lookalike.id!r} is not in the catalog"
                    )
                if lookalike.id == entry.id:
                    raise ValueError(f"{entry.id}: a species cannot be its own look-alike")
        return self

    # Indexes built on first use (the model is frozen, so they never go stale): /predict looks
    # up every label of the model (260) for each photo, and a scan per lookup cost 6 ms of CPU a
    # request (benchmarks/RESULTS.md).
    @cached_property
    def _by_id(self) -> dict[str, Species]:
        return {entry.id: entry for entry in self.species}

    @cached_property
    def _genus_edibilities(self) -> dict[str, frozenset[Edibility]]:
        genera: dict[str, set[Edibility]] = {}
        for entry in self.species:
            genera.setdefault(entry.genus, set()).add(entry.edibility)
        return {genus: frozenset(levels) for genus, levels in genera.items()}

    @cached_property
    def _label_views(self) -> dict[tuple[str, ...], LabelView]:
        return {}

    @property
    def ids(self) -> list[str]:
        """All species ids in file order."""
        return [s.id for s in self.species]

    @property
    def trained_ids(self) -> list[str]:
        """Ids of the species the model learns, in file order."""
        return [s.id for s in self.species if s.trained]

    def get(self, species_id: str) -> Species:
        """Return the species with this id; raise KeyError naming the id when unknown."""
        entry = self._by_id.get(species_id)
        if entry is None:
            raise KeyError(f"unknown species id {species_id!r}")
        return entry

    def __contains__(self, species_id: object) -> bool:
        return isinstance(species_id, str) and species_id in self._by_id

    def genus_edibilities(self, genus: str) -> frozenset[Edibility]:
        """The edibility levels of every catalog species of this genus (empty when none)."""
        return self._genus_edibilities.get(genus, frozenset())

    def label_view(self, labels: Sequence[str]) -> LabelView:
        """The entries of a model's labels in output order (built once per label list)."""
        key = tuple(labels)
        view = self._label_views.get(key)
        if view is None:
            species = tuple(self.get(label) for label in key)
            genera = tuple(dict.fromkeys(entry.genus for entry in species))
            position = {genus: index for index, genus in enumerate(genera)}
            view = LabelView(
                species=species,
                genera=genera,
                families=tuple(
                    next(entry.family for entry in species if entry.genus == genus)
                    for genus in genera
                ),
                genus_index=np.array([position[entry.genus] for entry in species], dtype=np.intp),
                dangerous=np.array([entry.edibility.is_dangerous for entry in species]),
            )
            self._label_views[key] = view
        return view

    def resolve(self, name: str) -> Species | None:
        """Find a species by id, scientific name, synonym or common name (any language or case)."""
        wanted = _normalise(name)
        for entry in self.species:
            names = [entry.id, entry.scientific_name, *entry.synonyms]
            names += [n for group in entry.common_names.values() for n in group]
            if any(_normalise(n) == wanted for n in names):
                return entry
        return None

    def lookalikes_of(self, species_id: str) -> list[tuple[Species, str]]:
        """The species' look-alikes with their distinguishing feature, most dangerous first."""
        pairs = [
            (self.get(la.id), la.distinguishing_feature) for la in self.get(species_id).lookalikes
        ]
        return sorted(pairs, key=lambda pair: pair[0].edibility.danger_rank)


def _normalise(name: str) -> str:
    return re.sub(r"[\s_\-']+", " ", name.strip().casefold())


def parse_catalog(document: Any) -> Catalog:
    """Validate a parsed catalog document (the YAML's top-level mapping)."""
    return Catalog.model_validate(document)


@cache
def load_catalog() -> Catalog:
    """Load and validate the catalog shipped in this package (cached)."""
    text = resources.files("mushroom_common").joinpath("data/species.yaml").read_text("utf-8")
    # libyaml's parser when PyYAML has it (its wheels do): 0.10 s instead of 0.48 s for the
    # 268-species file, which every service parses at start (benchmarks/RESULTS.md).
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return parse_catalog(yaml.load(text, Loader=loader))
