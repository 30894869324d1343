"""The species catalog as the API shows it."""

from __future__ import annotations

from mushroom_api.schemas import SpeciesPublic
from mushroom_common.catalog import Catalog, Species
from mushroom_common.verdict import lookalikes_of


def species_public(species: Species, catalog: Catalog, model_labels: set[str]) -> SpeciesPublic:
    """One catalog entry with its look-alikes and whether the served model knows it."""
    return SpeciesPublic(
        id=species.id,
        scientific_name=species.scientific_name,
        common_names=species.common_names,
        edibility=species.edibility,
        edibility_note=species.edibility_note,
        toxins=species.toxins,
        symptoms=species.symptoms,
        lookalikes=lookalikes_of(catalog, species.id),
        sources=species.sources,
        in_model=species.id in model_labels,
    )


def list_species(catalog: Catalog, model_labels: set[str]) -> list[SpeciesPublic]:
    """Every catalog entry, in catalog order."""
    return [species_public(entry, catalog, model_labels) for entry in catalog.species]
