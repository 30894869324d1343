"""POST /predict and /explain: photo -> pixels -> model -> safety rules."""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
from fastapi import HTTPException, UploadFile, status
from starlette.concurrency import run_in_threadpool

from mushroom_api.config import Settings
from mushroom_api.schemas import DISCLAIMER, IdentificationPublic, ModelRefPublic
from mushroom_api.services import metrics
from mushroom_api.services.classifier import Classifier, ModelOutputError
from mushroom_api.services.explain import occlusion_heat_map, render_overlay
from mushroom_api.services.imaging import ImageError, decode_photo
from mushroom_common.catalog import Catalog
from mushroom_common.feedback import FeedbackStore, PredictionRecord
from mushroom_common.imaging import resize_for_model
from mushroom_common.verdict import VerdictRules, judge, open_set_score

logger = logging.getLogger(__name__)

_READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class PreparedPhoto:
    """The uploaded bytes' hash and the pixels the model takes."""

    sha256: str
    pixels: npt.NDArray[np.uint8]


async def read_upload(upload: UploadFile, max_bytes: int) -> bytes:
    """Read an uploaded file in chunks, refusing more than `max_bytes` with 413."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await upload.read(_READ_CHUNK):
        size += len(chunk)
        if size > max_bytes:
            raise HTTPException(
                status.HTTP_413_CONTENT_TOO_LARGE,
                f"The photo is too large: the limit is {max_bytes / (1024 * 1024):.0f} MB.",
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _prepare(data: bytes, max_pixels: int, size: tuple[int, int]) -> PreparedPhoto:
    photo = decode_photo(data, max_pixels, size)
    return PreparedPhoto(
        hashlib.sha256(data).hexdigest(), resize_for_model(photo.image, size[1], size[0])
    )


async def prepare_photo(
    upload: UploadFile, settings: Settings, size: tuple[int, int]
) -> PreparedPhoto:
    """Read, check and decode an upload off the event loop; HTTP errors for bad photos."""
    data = await read_upload(upload, settings.max_upload_bytes)
    try:
        return await run_in_threadpool(_prepare, data, settings.max_pixels, size)
    except ImageError as exc:
        raise HTTPException(exc.status_code, str(exc)) from exc


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
    upload: UploadFile,
    top_k: int,
    classifier: Classifier,
    catalog: Catalog,
    settings: Settings,
    store: FeedbackStore | None,
) -> IdentificationPublic:
    """Answer one photo."""
    photo = await prepare_photo(upload, settings, classifier.input_size)
    try:
        output = await classifier.predict(photo.pixels)
    except ModelOutputError as exc:
        logger.error("%s", exc)
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "The model could not answer for this photo; please try again later.",
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
    )
    answer = IdentificationPublic(
        request_id=uuid.uuid4().hex,
        verdict=judgement.verdict,
        message=judgement.message,
        disclaimer=DISCLAIMER,
        predictions=judgement.predictions,
        genera=judgement.genera,
        possibly_unknown_species=judgement.possibly_unknown_species,
        lookalikes=judgement.lookalikes,
        mushroom_score=output.mushroom_score,
        model=ModelRefPublic(name=classifier.metadata.name, version=classifier.metadata.version),
    )
    top = judgement.predictions[0]
    metrics.observe_prediction(
        answer.verdict.value, top.species, top.probability, output.mushroom_score
    )
    if store is not None:
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
        await run_in_threadpool(store.add_prediction, record)
    return answer


async def explain(
    upload: UploadFile,
    species: str | None,
    classifier: Classifier,
    catalog: Catalog,
    settings: Settings,
) -> bytes:
    """PNG heat map of where covering the photo lowers the species' probability most."""
    if species is not None:
        if species not in catalog:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"There is no species {species!r}.")
        if species not in classifier.labels:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND,
                f"The served model cannot recognise {species!r}, so it cannot explain it.",
            )
    photo = await prepare_photo(upload, settings, classifier.input_size)
    heat = await occlusion_heat_map(classifier, photo.pixels, species, settings.explain_grid)
    return await run_in_threadpool(render_overlay, photo.pixels, heat)
