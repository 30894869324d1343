"""POST /predict and /explain: photo -> pixels -> model -> safety rules."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
from starlette.concurrency import run_in_threadpool

from mushroom_api.config import Settings
from mushroom_api.schemas import DISCLAIMER, IdentificationPublic, ModelRefPublic
from mushroom_api.services import metrics
from mushroom_api.services.classifier import Classifier, ModelOutputError
from mushroom_api.services.errors import ModelUnavailableError, NotFoundError
from mushroom_api.services.explain import ExplainerPool, occlusion_heat_map, render_overlay
from mushroom_api.services.imaging import abandonable, decode_photo
from mushroom_api.services.prediction_log import PredictionLog
from mushroom_api.services.request_ids import new_request_id
from mushroom_common.catalog import Catalog
from mushroom_common.imaging import resize_for_model
from mushroom_common.store import PredictionRecord
from mushroom_common.verdict import VerdictRules, judge, open_set_score

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
    return await abandonable(_prepare, data, settings, size)


def verdict_rules(settings: Settings, classifier: Classifier) -> VerdictRules:
    """The thresholds for this model: settings, and the bundle's detector threshold."""
    return VerdictRules.from_bundle(
        classifier.metadata,
        danger_threshold=settings.danger_threshold,
        edible_threshold=settings.edible_threshold,
        detector_threshold=settings.detector_threshold,
        unseen_lookalike_blocks_edible=settings.unseen_lookalike_blocks_edible,
    )


async def identify(
    data: bytes,
    top_k: int,
    classifier: Classifier,
    catalog: Catalog,
    settings: Settings,
    log: PredictionLog | None,
) -> IdentificationPublic:
    """Answer one photo; the answer is queued for the log, never waiting on the database."""
    photo = await prepare_photo(data, settings, classifier.input_size)
    try:
        # The bundle's test-time views (verdict owner's edit): averaged, and each view's own
        # probabilities for the verdict's view agreement.
        output = await classifier.predict_views(photo.pixels)
    except ModelOutputError as exc:
        logger.error("%s", exc)
        raise ModelUnavailableError(
            "The model could not answer for this photo; please try again later."
        ) from exc
    rules = verdict_rules(settings, classifier)
    judgement = judge(
        output.probabilities,
        classifier.labels,
        output.mushroom_score,
        catalog,
        rules,
        top_k,
        unknown_score=(
            open_set_score(output.logits, rules.open_set_method)
            if rules.open_set_method is not None
            else None
        ),
        view_probabilities=output.view_probabilities,
    )
    answer = IdentificationPublic(
        request_id=new_request_id(settings.request_id_key),
        verdict=judgement.verdict,
        message=judgement.message,
        disclaimer=DISCLAIMER,
        predictions=judgement.predictions,
        genera=judgement.genera,
        possibly_unknown_species=judgement.possibly_unknown_species,
        unknown_species_message=judgement.unknown_species_message,
        caution=judgement.caution,
        lookalikes=judgement.lookalikes,
        mushroom_score=output.mushroom_score,
        model=ModelRefPublic(name=classifier.metadata.name, version=classifier.metadata.version),
    )
    top = judgement.predictions[0]
    metrics.observe_prediction(
        answer.verdict.value, top.species, top.probability, output.mushroom_score
    )
    if log is not None:
        record = PredictionRecord(
            request_id=answer.request_id,
            created_at=datetime.now(UTC),
            photo_sha256=photo.sha256,
            model_name=answer.model.name,
            model_version=answer.model.version,
            verdict=answer.verdict.value,
            top_species=top.species,
            top_probability=top.probability,
            mushroom_score=output.mushroom_score,
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
