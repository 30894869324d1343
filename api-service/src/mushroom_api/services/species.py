"""The species catalog as the API shows it."""

from __future__ import annotations

import hashlib
import threading

from pydantic import TypeAdapter

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


_LIST = TypeAdapter(list[SpeciesPublic])
_pages_lock = threading.Lock()
# One build at a time: a crowd arriving before the first page is built waits for that one.
_build_lock = threading.Lock()
# (catalog identity, model labels) -> (JSON bytes, ETag): the list is built once per model.
_pages: dict[tuple[int, frozenset[str]], tuple[bytes, str]] = {}
_MAX_PAGES = 8


def cached_species_page(catalog: Catalog, model_labels: set[str]) -> tuple[bytes, str] | None:
    """The list's page when it was built already (cheap: no thread needed)."""
    with _pages_lock:
        return _pages.get((id(catalog), frozenset(model_labels)))


def species_page(catalog: Catalog, model_labels: set[str]) -> tuple[bytes, str]:
    """The whole list as JSON bytes and its ETag, built once per catalog and served model.

    The list is about 300 KB: serialising it per request cost tens of milliseconds of CPU, so
    a crowd of clients asking for it again and again held up /predict.
    """
    with _build_lock:
        found = cached_species_page(catalog, model_labels)
        if found is not None:
            return found
        key = (id(catalog), frozenset(model_labels))
        body = _LIST.dump_json(list_species(catalog, model_labels))
        page = (body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')
        with _pages_lock:
            if len(_pages) >= _MAX_PAGES:
                _pages.clear()
            _pages[key] = page
        return page
