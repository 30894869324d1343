"""Observations: several photos of one mushroom, where and when it was found, one answer.

The API (`POST /predict` with several `file` parts) and the phone (replaying
`rules.json["observation"]`, written by `export_rules`) use these functions, so they agree:

1. `fuse`: the calibrated probabilities of each photo -> one row for the observation. With one
   photo the row is returned unchanged, so a one-photo request answers exactly as before.
2. `location_prior` and `apply_prior`: a soft prior from the catalog's regions and fruiting
   months. A species out of range or out of season is multiplied by a bounded factor (never
   zero); a deadly or poisonous species keeps a weight of 1, so renormalising can only raise
   its probability (introduced death caps grow far from home: their warning must never drop,
   and demoting a poisonous look-alike must not talk an observation into `edible`).
3. `next_photo`: when a likely species has a dangerous look-alike whose telling feature shows on
   a view (gills, stem base, ...) the observation lacks, which photo to add and why.

Locations are rounded to 1 degree (`round_location`) before any use.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from mushroom_common.catalog import Catalog, Lookalike, PhotoView, Region, Species
from mushroom_common.verdict import SpeciesPredictionPublic

FusionMethod = Literal["log_mean", "mean", "confidence"]
FUSION_METHODS: tuple[FusionMethod, ...] = ("log_mean", "mean", "confidence")
# Chosen by measurement on pseudo-observations of field photos (benchmarks/RESULTS.md,
# "Observations"): the mean of log-probabilities had the best 2- and 3-photo top-1.
DEFAULT_FUSION: FusionMethod = "log_mean"
MAX_PHOTOS = 5
LOCATION_DECIMALS = 0  # whole degrees: about 111 km, a region, never a patch of forest
SOUTHERN_SHIFT_MONTHS = 6
NEXT_PHOTO_CANDIDATES = 3
NEXT_PHOTO_MIN_PROBABILITY = 0.2
_EPSILON = 1e-12

PHOTO_VIEWS: tuple[str, ...] = tuple(view.value for view in PhotoView)
_VIEW_PHRASES = {
    "cap": "the cap from above",
    "underside": "the underside of the cap (gills, pores or teeth)",
    "stem_base": "the base of the stem, dug out whole (bulb, volva)",
    "ring": "the ring on the stem, or where it would be",
    "flesh": "the flesh, cut or bruised",
    "spore_print": "a spore print",
    "habitat": "where it grows (wood, soil, trees around)",
}

# (lat_min, lat_max, lon_min, lon_max) in degrees; a region is the union of its boxes. Broad on
# purpose: the catalog's ranges are continents, and the prior only demotes, softly. Listed most
# specific first: `region_at` names the first region holding a point.
Box = tuple[float, float, float, float]
# North America includes Mexico and Central America, Africa is south of the Sahara (the
# catalog's `Region`); boxes overlap where regions meet (the Sahel, the Caucasus, the Urals).
REGION_BOXES: dict[str, tuple[Box, ...]] = {
    Region.NORTH_AFRICA.value: ((15.0, 37.5, -18.0, 35.0),),
    Region.EUROPE.value: (
        (35.0, 72.0, -25.0, 45.0),
        (45.0, 72.0, 45.0, 60.0),
        (62.0, 82.0, -25.0, 35.0),
    ),
    Region.AFRICA.value: ((-35.0, 18.0, -18.0, 52.0),),
    Region.ASIA.value: ((-11.0, 78.0, 26.0, 180.0), (60.0, 72.0, -180.0, -168.0)),
    Region.NORTH_AMERICA.value: ((7.0, 84.0, -170.0, -50.0), (59.0, 84.0, -75.0, -10.0)),
    Region.SOUTH_AMERICA.value: ((-56.0, 13.0, -82.0, -34.0),),
    Region.OCEANIA.value: ((-48.0, 0.0, 110.0, 180.0), (-48.0, -5.0, -180.0, -170.0)),
}


class PriorStrength(BaseModel):
    """How strongly the prior demotes; every factor lies in (0, 1], so nothing reaches zero."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    out_of_range_factor: float = Field(
        0.2, gt=0, le=1, description="weight of a species whose regions do not hold the location"
    )
    out_of_season_factor: float = Field(
        0.5, gt=0, le=1, description="weight of a species that does not fruit in the month"
    )
    season_margin_months: int = Field(
        1, ge=0, le=6, description="a month this close to a fruiting month counts as in season"
    )


DEFAULT_PRIOR = PriorStrength()


class PhotoPublic(BaseModel):
    """One photo of the observation and the species it alone looks most like."""

    index: int = Field(ge=0, description="the photo's position among the request's files")
    view: PhotoView | None = Field(description="the view the person said it shows, if any")
    top: SpeciesPredictionPublic = Field(description="this photo's own most likely species")


class NextPhotoPublic(BaseModel):
    """The photo that would tell the likely species from a dangerous look-alike."""

    view: PhotoView = Field(description="the view to photograph next")
    reason: str = Field(description="one sentence for a person: why this photo")
    lookalike: str = Field(description="catalog id of the dangerous look-alike it rules out")


class PriorPublic(BaseModel):
    """Whether the location and month prior re-weighted the answer."""

    applied: bool = Field(description="a location or month was given and used")
    region: str | None = Field(description="the broad region of the (rounded) location")
    month: int | None = Field(ge=1, le=12, description="the month used, as sent")


def fuse(
    per_photo: npt.NDArray[np.float64] | Sequence[Sequence[float]],
    method: FusionMethod = DEFAULT_FUSION,
) -> npt.NDArray[np.float64]:
    """One row of probabilities for an observation from its photos' calibrated rows.

    Args:
        per_photo: [photos, labels] calibrated probabilities, one row per photo.
        method: `log_mean` (mean of log-probabilities, renormalised: a geometric mean),
            `mean` (mean of probabilities) or `confidence` (mean weighted by each photo's top
            probability).

    Returns:
        [labels] probabilities summing to 1; with one photo, that photo's row unchanged.
    """
    rows = np.asarray(per_photo, dtype=np.float64)
    if rows.ndim != 2 or rows.shape[0] == 0:
        raise ValueError(f"expected [photos, labels] probabilities, got shape {rows.shape}")
    if rows.shape[0] == 1:
        return np.array(rows[0], dtype=np.float64)
    if method == "log_mean":
        logs = np.log(np.clip(rows, _EPSILON, 1.0)).mean(axis=0)
        fused = np.exp(logs - logs.max())
    elif method == "mean":
        fused = rows.mean(axis=0)
    elif method == "confidence":
        weights = rows.max(axis=1)
        fused = (rows * weights[:, None]).sum(axis=0) / weights.sum()
    else:
        raise ValueError(f"unknown fusion method {method!r}")
    total = float(fused.sum())
    return np.asarray(fused / total, dtype=np.float64)


def used_photos(scores: Sequence[float | None], detector_threshold: float | None) -> list[int]:
    """The photos fused into the answer: those that look like a mushroom (all when none does).

    A habitat shot or a blurred photo says little about the species; its probabilities would
    only dilute the others'. Without a detector every photo is used.
    """
    if detector_threshold is None:
        return list(range(len(scores)))
    passing = [i for i, score in enumerate(scores) if score is None or score >= detector_threshold]
    return passing or list(range(len(scores)))


def observation_mushroom_score(scores: Sequence[float | None]) -> float | None:
    """The observation's mushroom score: the highest of its photos' (None without a detector)."""
    known = [score for score in scores if score is not None]
    return max(known) if known else None


def round_location(lat: float, lon: float) -> tuple[float, float]:
    """Round to whole degrees, halves away from zero (the phone rounds the same way)."""
    return _round_half_away(lat), _round_half_away(lon)


def _round_half_away(value: float) -> float:
    rounded = math.floor(abs(value) + 0.5)
    return float(math.copysign(rounded, value)) if rounded else 0.0


def regions_at(lat: float, lon: float) -> list[str]:
    """Every region whose boxes hold the point, most specific first."""
    return [
        region
        for region, boxes in REGION_BOXES.items()
        if any(a <= lat <= b and c <= lon <= d for a, b, c, d in boxes)
    ]


def region_at(lat: float, lon: float) -> str | None:
    """The most specific region holding the point, None at sea or in Antarctica."""
    found = regions_at(lat, lon)
    return found[0] if found else None


def species_regions(species: Species) -> list[str]:
    """The species' regions as plain strings."""
    return [str(region) for region in species.regions]


def fruiting_months(species: Species) -> list[int]:
    """Northern Hemisphere months when the species fruits (empty when the catalog says none)."""
    return [int(month) for month in species.fruiting_months]


def lookalike_view(lookalike: Lookalike) -> str | None:
    """The view that shows a look-alike's telling feature (None when the catalog says none)."""
    return lookalike.view.value if lookalike.view is not None else None


def northern_month(month: int, lat: float | None) -> int:
    """The Northern Hemisphere month of the same season (shifted by 6 below the equator)."""
    if lat is not None and lat < 0:
        return (month - 1 + SOUTHERN_SHIFT_MONTHS) % 12 + 1
    return month


def _month_distance(a: int, b: int) -> int:
    gap = abs(a - b) % 12
    return min(gap, 12 - gap)


@dataclass(frozen=True)
class LocationPrior:
    """Per-label weights in (0, 1] and what they came from."""

    weights: npt.NDArray[np.float64]
    applied: bool
    region: str | None
    month: int | None

    def public(self) -> PriorPublic:
        """The response block."""
        return PriorPublic(applied=self.applied, region=self.region, month=self.month)


def location_prior(
    labels: Sequence[str],
    catalog: Catalog,
    *,
    lat: float | None = None,
    lon: float | None = None,
    month: int | None = None,
    strength: PriorStrength = DEFAULT_PRIOR,
) -> LocationPrior:
    """Weights of the model's labels for a (rounded) location and a month.

    A species whose regions do not hold the location gets `out_of_range_factor`; one that does
    not fruit within `season_margin_months` of the month (shifted by 6 below the equator) gets
    `out_of_season_factor`; both multiply. A species without regions or months in the catalog,
    or with a region this module has no boxes for, is not demoted for it. Deadly and poisonous
    species keep 1: the prior never lowers a dangerous species' probability.

    Args:
        labels: catalog ids in the model's output order.
        catalog: the species catalog.
        lat: latitude in degrees (rounded to 1 degree here as well), None when not given.
        lon: longitude in degrees, None when not given.
        month: 1-12, None when not given.
        strength: the factors.

    Returns:
        The weights; `applied` is False (and every weight 1) when neither place nor month came.
    """
    place = round_location(lat, lon) if lat is not None and lon is not None else None
    here = set(regions_at(*place)) if place is not None else None
    season = northern_month(month, place[0] if place else None) if month is not None else None
    weights = np.ones(len(labels), dtype=np.float64)
    for index, label in enumerate(labels):
        entry = catalog.get(label)
        if entry.edibility.is_dangerous:
            continue
        if here:
            regions = species_regions(entry)
            known = regions and all(region in REGION_BOXES for region in regions)
            if known and not here.intersection(regions):
                weights[index] *= strength.out_of_range_factor
        months = fruiting_months(entry)
        if season is not None and months:
            nearest = min(_month_distance(season, m) for m in months)
            if nearest > strength.season_margin_months:
                weights[index] *= strength.out_of_season_factor
    return LocationPrior(
        weights=weights,
        applied=place is not None or month is not None,
        region=region_at(*place) if place is not None else None,
        month=month,
    )


def apply_prior(
    probabilities: npt.NDArray[np.float64], prior: LocationPrior
) -> npt.NDArray[np.float64]:
    """The re-weighted, renormalised probabilities; unchanged when the prior was not applied.

    Every weight is at most 1 and a dangerous species' weight is 1, so the normaliser is at most
    1 and a deadly or poisonous species' probability can only rise.
    """
    values = np.asarray(probabilities, dtype=np.float64)
    if not prior.applied:
        return values
    if prior.weights.shape != values.shape:
        raise ValueError(f"{prior.weights.shape[0]} weights for {values.shape[0]} probabilities")
    weights = np.clip(prior.weights, _EPSILON, 1.0)
    weighted = values * weights
    total = float(weighted.sum())
    if total <= 0:
        return values
    return np.asarray(weighted / total, dtype=np.float64)


def parse_views(views: Sequence[str] | None, photos: int) -> list[PhotoView | None]:
    """One view (or None) per photo; raise ValueError with a sentence for a person.

    Args:
        views: the request's `view` values: none at all, or one per photo ('' for "not said").
        photos: how many photos came.
    """
    if not views:
        return [None] * photos
    if len(views) != photos:
        raise ValueError(
            f"The request has {photos} photo{'s' if photos != 1 else ''} but {len(views)} "
            "view values: send one view per photo (empty when not known), or none."
        )
    parsed: list[PhotoView | None] = []
    for value in views:
        cleaned = value.strip()
        if cleaned and cleaned not in PHOTO_VIEWS:
            raise ValueError(
                f"The view {cleaned[:40]!r} is not one of {', '.join(PHOTO_VIEWS)} (or empty)."
            )
        parsed.append(PhotoView(cleaned) if cleaned else None)
    return parsed


def next_photo(
    probabilities: npt.NDArray[np.float64],
    labels: Sequence[str],
    catalog: Catalog,
    views: Sequence[str | None],
    *,
    candidates: int = NEXT_PHOTO_CANDIDATES,
    min_probability: float = NEXT_PHOTO_MIN_PROBABILITY,
) -> NextPhotoPublic | None:
    """Which photo to add: the view that shows how a likely species differs from a danger.

    The likely species are the top one and any of the next `candidates - 1` with at least
    `min_probability`. For each, most likely first, its deadly or poisonous look-alikes (most
    dangerous first) whose telling feature shows on a view no photo of the observation has.

    Args:
        probabilities: the observation's probabilities in label order.
        labels: catalog ids in the model's output order.
        catalog: the species catalog.
        views: the views of the observation's photos (None where not said).
        candidates: how many of the most likely species to look at.
        min_probability: below this, a species after the top one is not likely.

    Returns:
        The photo to ask for, or None when no other view would help (or all are there).
    """
    values = np.asarray(probabilities, dtype=np.float64)
    present = {view for view in views if view is not None}
    order = np.argsort(-values, kind="stable")[:candidates]
    for rank, index in enumerate(order):
        if rank > 0 and float(values[index]) < min_probability:
            break
        entry = catalog.get(labels[int(index)])
        dangerous = [
            (catalog.get(la.id), la)
            for la in entry.lookalikes
            if catalog.get(la.id).edibility.is_dangerous
        ]
        dangerous.sort(key=lambda pair: pair[0].edibility.danger_rank)
        for other, lookalike in dangerous:
            view = lookalike_view(lookalike)
            if view is None or view in present:
                continue
            return NextPhotoPublic(
                view=PhotoView(view),
                reason=(
                    f"This could be {_name(entry)}, but the {other.edibility.value} "
                    f"{_name(other).removeprefix('the ')} looks like it "
                    f"({lookalike.distinguishing_feature}): add a photo of "
                    f"{_VIEW_PHRASES.get(view, view)} to tell them apart."
                ),
                lookalike=other.id,
            )
    return None


def _name(species: Species) -> str:
    name = species.english_names[0]
    if name.casefold() == species.scientific_name.casefold():
        return species.scientific_name
    return f"the {name} ({species.scientific_name})"


class ObservationSpeciesPublic(BaseModel):
    """Where and when one label occurs, as the prior reads it."""

    model_config = ConfigDict(extra="forbid")

    regions: list[str]
    fruiting_months: list[int] = Field(description="Northern Hemisphere months (1-12)")
    protected: bool = Field(description="deadly or poisonous: never demoted by the prior")


class ObservationLookalikePublic(BaseModel):
    """A dangerous look-alike and the view that shows how it differs."""

    model_config = ConfigDict(extra="forbid")

    species: str
    view: str


class ObservationRulesPublic(BaseModel):
    """`rules.json["observation"]`: what the phone needs to fuse, apply the prior and ask."""

    model_config = ConfigDict(extra="forbid")

    max_photos: int
    fusion_method: FusionMethod
    location_decimals: int = Field(description="lat/lon are rounded to this many decimals")
    southern_shift_months: int = Field(description="months added below the equator")
    prior: PriorStrength
    region_boxes: dict[str, list[list[float]]] = Field(
        description="region -> [[lat_min, lat_max, lon_min, lon_max], ...], most specific first"
    )
    species: dict[str, ObservationSpeciesPublic] = Field(description="every label, by id")
    photo_selection: str = Field(
        description="which photos are fused: those whose mushroom score reaches the detector "
        "threshold (all of them when none does); the observation's mushroom score is the "
        "highest photo's and its unknown-species score the mean of the fused photos'"
    )
    next_photo_candidates: int
    next_photo_min_probability: float
    dangerous_lookalike_views: dict[str, list[ObservationLookalikePublic]] = Field(
        description="label -> its deadly/poisonous look-alikes with a view, most dangerous first"
    )


def export_rules(
    catalog: Catalog,
    labels: Sequence[str],
    *,
    fusion_method: FusionMethod = DEFAULT_FUSION,
    strength: PriorStrength = DEFAULT_PRIOR,
) -> ObservationRulesPublic:
    """The `observation` section of rules.json for a model's labels."""
    species: dict[str, ObservationSpeciesPublic] = {}
    views: dict[str, list[ObservationLookalikePublic]] = {}
    for label in labels:
        entry = catalog.get(label)
        species[label] = ObservationSpeciesPublic(
            regions=species_regions(entry),
            fruiting_months=fruiting_months(entry),
            protected=entry.edibility.is_dangerous,
        )
        dangerous = [
            (catalog.get(la.id), la)
            for la in entry.lookalikes
            if catalog.get(la.id).edibility.is_dangerous and lookalike_view(la) is not None
        ]
        dangerous.sort(key=lambda pair: pair[0].edibility.danger_rank)
        if dangerous:
            views[label] = [
                ObservationLookalikePublic(species=other.id, view=str(lookalike_view(la)))
                for other, la in dangerous
            ]
    return ObservationRulesPublic(
        max_photos=MAX_PHOTOS,
        fusion_method=fusion_method,
        location_decimals=LOCATION_DECIMALS,
        southern_shift_months=SOUTHERN_SHIFT_MONTHS,
        prior=strength,
        region_boxes={name: [list(box) for box in boxes] for name, boxes in REGION_BOXES.items()},
        species=species,
        photo_selection="mushroom_score_at_least_detector_threshold",
        next_photo_candidates=NEXT_PHOTO_CANDIDATES,
        next_photo_min_probability=NEXT_PHOTO_MIN_PROBABILITY,
        dangerous_lookalike_views=views,
    )
