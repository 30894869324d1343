"""GET /species and GET /species/{species_id}: the catalog."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response, status
from starlette.concurrency import run_in_threadpool

from mushroom_api.deps import CatalogDep, ModelHolderDep
from mushroom_api.routes.errors import NOT_FOUND
from mushroom_api.schemas import SpeciesPublic
from mushroom_api.services import species as service

router = APIRouter(prefix="/species", tags=["species"])


def _model_labels(holder: ModelHolderDep) -> set[str]:
    current = holder.current
    return set(current.labels) if current is not None else set()


# Browsers and the phone may keep the list for a while and revalidate it with its ETag.
SPECIES_CACHE_CONTROL = "public, max-age=300"


@router.get("", response_model=list[SpeciesPublic])
async def list_species(request: Request, catalog: CatalogDep, holder: ModelHolderDep) -> Response:
    """Every species in the catalog, with edibility, toxins and look-alikes."""
    labels = _model_labels(holder)
    page = service.cached_species_page(catalog, labels)
    if page is None:
        page = await run_in_threadpool(service.species_page, catalog, labels)
    body, etag = page
    headers = {"ETag": etag, "Cache-Control": SPECIES_CACHE_CONTROL}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


@router.get("/{species_id}", responses=NOT_FOUND)
def get_species(species_id: str, catalog: CatalogDep, holder: ModelHolderDep) -> SpeciesPublic:
    """One species of the catalog."""
    if species_id not in catalog:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"There is no species {species_id[:60]!r}.")
    return service.species_public(catalog.get(species_id), catalog, _model_labels(holder))
