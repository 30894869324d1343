"""GET /species and GET /species/{species_id}: the catalog."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from mushroom_api.deps import CatalogDep, ModelHolderDep
from mushroom_api.routes.errors import NOT_FOUND
from mushroom_api.schemas import SpeciesPublic
from mushroom_api.services import species as service

router = APIRouter(prefix="/species", tags=["species"])


def _model_labels(holder: ModelHolderDep) -> set[str]:
    current = holder.current
    return set(current.labels) if current is not None else set()


@router.get("")
def list_species(catalog: CatalogDep, holder: ModelHolderDep) -> list[SpeciesPublic]:
    """Every species in the catalog, with edibility, toxins and look-alikes."""
    return service.list_species(catalog, _model_labels(holder))


@router.get("/{species_id}", responses=NOT_FOUND)
def get_species(species_id: str, catalog: CatalogDep, holder: ModelHolderDep) -> SpeciesPublic:
    """One species of the catalog."""
    if species_id not in catalog:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"There is no species {species_id[:60]!r}.")
    return service.species_public(catalog.get(species_id), catalog, _model_labels(holder))
