"""POST /predict and /explain: photos -> pixels -> model -> fusion and prior -> safety rules."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
from starlette.concurrency import run_in_threadpool

from mushroom_api.config import Settings
from mushroom_api.schemas import DISCLAIMER, IdentificationPublic, ModelRefPublic, PhotoPublic
from mushroom_api.services import metrics
from mushroom_api.services.classifier import Classifier, ModelOutputError
from mushroom_api.services.errors import InvalidInputError, ModelUnavailableError, NotFoundError
from mushroom_api.services.explain import ExplainerPool, occlusion_heat_map, render_overlay
from mushroom_api.services.imaging import ImageError, decode_photo
from mushroom_api.services.prediction_log import PredictionLog
from mushroom_common.catalog import Catalog, PhotoView
from mushroom_common.imaging import resize_for_model
from mushroom_common.observation import (
    apply_prior,
    fuse,
    location_prior,
    next_photo,
    observation_mushroom_score,
    parse_views,
    used_photos,
)
from mushroom_common.store import PredictionRecord
from mushroom_common.verdict import (
    SpeciesPredictionPublic,
    Verdict,
    VerdictRules,
    judge,
    open_set_score,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreparedPhoto:
    """The uploaded bytes' hash and the pixels the model takes."""

    sha256: str
    pixels: npt.NDArray[np.uint8]


def _prepare(data: bytes, settings: Settings, size: tuple[int, int]) -> PreparedPhoto:
    photo = decode_photo(
        data,
        settings.max_pixels,
        size,
        min_side=settings.min_image_side,
        budget_bytes=settings.decode_budget_bytes,
    )
    return PreparedPhoto(
        hashlib.sha256(data).hexdigest(), resize_for_model(photo.image, size[1], size[0])
    )


async def prepare_photo(data: bytes, settings: Settings, size: tuple[int, int]) -> PreparedPhoto:
    """Check and decode a photo off the event loop; `ImageError` for bad photos."""
    return await run_in_threadpool(_prepare, data, settings, size)


def verdict_rules(settings: Settings, classifier: Classifier) -> VerdictRules:
    """The thresholds for this model: settings, and the bundle's detector threshold."""
    return VerdictRules.from_bundle(
        classifier.metadata,
        danger_threshold=settings.danger_threshold,
        edible_threshold=settings.edible_threshold,
        detector_threshold=settings.detector_threshold,
        unseen_lookalike_blocks_edible=settings.unseen_lookalike_blocks_edible,
    )


@dataclass(frozen=True)
class Place:
    """What a request says about the observation besides its photos (all optional)."""

    lat: float | None = None
    lon: float | None = None
    month: int | None = None
    views: list[str] | None = None


async def _prepare_all(
    photos: Sequence[bytes], settings: Settings, size: tuple[int, int]
) -> list[PreparedPhoto]:
    """Decode every photo (concurrently; the shared decode budget bounds their memory)."""
    if len(photos) == 1:
        return [await prepare_photo(photos[0], settings, size)]
    prepared = await asyncio.gather(
        *(prepare_photo(data, settings, size) for data in photos), return_exceptions=True
    )
    ready: list[PreparedPhoto] = []
    for index, item in enumerate(prepared):
        if isinstance(item, ImageError):
            # Say which photo: the same error, its sentence prefixed.
            item.args = (f"Photo {index + 1} of {len(photos)}: {item}",)
            raise item
        if isinstance(item, BaseException):
            raise item
        ready.append(item)
    return ready


def _check_place(place: Place, photos: int) -> list[PhotoView | None]:
    if (place.lat is None) != (place.lon is None):
        raise InvalidInputError("Send lat and lon together, or neither.")
    try:
        return parse_views(place.views, photos)
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from None


def _top(
    probabilities: npt.NDArray[np.float64], labels: list[str], catalog: Catalog
) -> SpeciesPredictionPublic:
    index = int(np.argmax(probabilities))
    entry = catalog.get(labels[index])
    return SpeciesPredictionPublic(
        species=entry.id,
        scientific_name=entry.scientific_name,
        common_names=entry.english_names,
        probability=min(max(float(probabilities[index]), 0.0), 1.0),
        edibility=entry.edibility,
    )


async def identify(
    photos: Sequence[bytes],
    place: Place,
    top_k: int,
    classifier: Classifier,
    catalog: Catalog,
    settings: Settings,
    log: PredictionLog | None,
) -> IdentificationPublic:
    """Answer an observation (one to five photos of one mushroom, where and when).

    The photos' calibrated probabilities are fused (`mushroom_common.observation.fuse`) over
    the photos that look like a mushroom, the location and month prior re-weights them, and the
    safety rules judge the result once. One photo without a place answers exactly as a single
    photo always did. The answer is queued for the log, never waiting on the database; the log
    keeps no location at all.
    """
    if not photos:
        raise InvalidInputError("Send at least one photo.")
    views = _check_place(place, len(photos))
    prepared = await _prepare_all(photos, settings, classifier.input_size)
    try:
        # Each photo in the bundle's test-time views (averaged, and each view's own row),
        # spread over the model threads.
        outputs = await asyncio.gather(
            *(classifier.predict_views(photo.pixels) for photo in prepared)
        )
    except ModelOutputError as exc:
        logger.error("%s", exc)
        raise ModelUnavailableError(
            "The model could not answer for this photo; please try again later."
        ) from exc
    rules = verdict_rules(settings, classifier)
    labels = classifier.labels
    rows = np.stack([output.probabilities for output in outputs])
    scores = [output.mushroom_score for output in outputs]
    used = used_photos(scores, rules.detector_threshold)
    fused = fuse(rows[used])
    prior = location_prior(labels, catalog, lat=place.lat, lon=place.lon, month=place.month)
    probabilities = apply_prior(fused, prior)
    mushroom_score = observation_mushroom_score(scores)
    unknown_score = (
        float(np.mean([open_set_score(outputs[i].logits, rules.open_set_method) for i in used]))
        if rules.open_set_method is not None
        else None
    )
    judgement = judge(
        probabilities,
        labels,
        mushroom_score,
        catalog,
        rules,
        top_k,
        unknown_score=unknown_score,
        # Every test-time view of every fused photo must agree before `edible` (one photo: its
        # own views, as for a single photo).
        view_probabilities=np.concatenate([outputs[i].view_probabilities for i in used]),
    )
    ask = (
        next_photo(probabilities, labels, catalog, views)
        if judgement.verdict is not Verdict.NOT_A_MUSHROOM
        else None
    )
    answer = IdentificationPublic(
        request_id=uuid.uuid4().hex,
        verdict=judgement.verdict,
        message=judgement.message,
        disclaimer=DISCLAIMER,
        predictions=judgement.predictions,
        genera=judgement.genera,
        possibly_unknown_species=judgement.possibly_unknown_species,
        unknown_species_message=judgement.unknown_species_message,
        caution=judgement.caution,
        lookalikes=judgement.lookalikes,
        mushroom_score=mushroom_score,
        model=ModelRefPublic(name=classifier.metadata.name, version=classifier.metadata.version),
        photos=[
            PhotoPublic(index=index, view=views[index], top=_top(rows[index], labels, catalog))
            for index in range(len(prepared))
        ],
        next_photo=ask,
        prior=prior.public(),
    )
    top = judgement.predictions[0]
    metrics.observe_prediction(answer.verdict.value, top.species, top.probability, mushroom_score)
    if log is not None:
        record = PredictionRecord(
            request_id=answer.request_id,
            created_at=datetime.now(UTC),
            # The first photo: the one a feedback's shared photo is checked against.
            photo_sha256=prepared[0].sha256,
            model_name=answer.model.name,
            model_version=answer.model.version,
            verdict=answer.verdict.value,
            top_species=top.species,
            top_probability=top.probability,
            mushroom_score=mushroom_score,
        )
        log.submit(record)
    return answer


async def explain(
    data: bytes,
    species: str | None,
    classifier: Classifier,
    catalog: Catalog,
    settings: Settings,
    explainers: ExplainerPool,
) -> bytes:
    """PNG heat map of where covering the photo lowers the species' probability most."""
    if species is not None:
        if species not in catalog:
            raise NotFoundError(f"There is no species {species!r}.")
        if species not in classifier.labels:
            raise NotFoundError(
                f"The served model cannot recognise {species!r}, so it cannot explain it."
            )
    photo = await prepare_photo(data, settings, classifier.input_size)
    # A bounded pool of its own: explanations (about 50 model calls each) cannot starve /predict.
    # ExplainerBusyError (a domain error, 503 with Retry-After) when it is full.
    model = await run_in_threadpool(explainers.enter, classifier)
    try:
        heat = await occlusion_heat_map(model, photo.pixels, species, settings.explain_grid)
    finally:
        explainers.leave(classifier)
    return await run_in_threadpool(render_overlay, photo.pixels, heat)
