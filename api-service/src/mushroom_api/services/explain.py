"""Occlusion sensitivity with the served LiteRT model: which parts of the photo mattered.

One explanation is about fifty model calls. Run on the interpreters that answer /predict, a few
explanations queue every prediction behind them (p99 of /predict went from 226 to 788 ms with
20% /explain traffic), so explanations get interpreters and threads of their own, and only
`explain_queue` of them run or wait at once; more are refused with 503 and Retry-After.
"""

from __future__ import annotations

import io
import logging
import threading
import weakref
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from PIL import Image

from mushroom_api.services.classifier import Classifier
from mushroom_api.services.errors import ModelUnavailableError, ServiceError
from mushroom_api.services.model_files import ModelFileDamagedError, verify_model_file

logger = logging.getLogger(__name__)

MODEL_FILE_DAMAGED = (
    "The model file on this server is damaged, so explanations are unavailable; an admin "
    "reload repairs it."
)
OCCLUDER_VALUE = 127
OVERLAY_ALPHA = 0.55
EXPLAIN_BUSY_RETRY_AFTER_S = 5


class ExplainerBusyError(ServiceError):
    """As many explanations as allowed are already running or waiting (503, Retry-After)."""

    retry_after_s = EXPLAIN_BUSY_RETRY_AFTER_S


@dataclass
class _Explainer:
    """The interpreters of one served model that only explanations use, and their queue."""

    model: Classifier
    limit: int
    active: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class ExplainerPool:
    """One explanation model per served classifier, built on first use, dropped with it."""

    def __init__(self, pool_size: int, num_threads: int, queue: int) -> None:
        self.pool_size = pool_size
        self.num_threads = num_threads
        self.queue = queue
        self._explainers: weakref.WeakKeyDictionary[Classifier, _Explainer] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    def _explainer(self, served: Classifier) -> _Explainer:
        with self._lock:
            found = self._explainers.get(served)
            if found is None:
                model = served
                if self.pool_size > 0:
                    # Its own copy of the model file: checked, as the served one was at load.
                    try:
                        verify_model_file(served.metadata, served.bundle_dir)
                    except ModelFileDamagedError as exc:
                        logger.error("not explaining with a damaged model file: %s", exc)
                        raise ModelUnavailableError(MODEL_FILE_DAMAGED) from exc
                    model = Classifier(
                        served.metadata,
                        served.bundle_dir,
                        pool_size=self.pool_size,
                        num_threads=self.num_threads,
                        source=served.source,
                    )
                found = _Explainer(model, self.queue)
                self._explainers[served] = found
            return found

    def enter(self, served: Classifier) -> Classifier:
        """The model to explain with; raise ExplainerBusyError when the queue is full.

        Call `leave` with the same classifier when done. Blocking (the first call loads the
        interpreters): run it off the event loop.
        """
        explainer = self._explainer(served)
        with explainer.lock:
            if explainer.active >= explainer.limit:
                raise ExplainerBusyError(
                    "The server is busy explaining other photos; please try again in a few seconds."
                )
            explainer.active += 1
        return explainer.model

    def leave(self, served: Classifier) -> None:
        """One explanation of `served` has finished."""
        explainer = self._explainers.get(served)
        if explainer is not None:
            with explainer.lock:
                explainer.active -= 1


async def occlusion_heat_map(
    classifier: Classifier,
    pixels: npt.NDArray[np.uint8],
    species: str | None,
    grid: int,
) -> npt.NDArray[np.float64]:
    """Heat [grid, grid] in [0, 1]: how much greying each cell lowers the species' probability.

    Args:
        classifier: the served model; every occluded copy is batched through its pool.
        pixels: the model input [height, width, 3].
        species: catalog id to explain; None explains the top prediction.
        grid: cells per side.

    Returns:
        The normalised probability drop per cell (all zeros when no cell matters).
    """
    height, width = pixels.shape[:2]
    rows = np.linspace(0, height, grid + 1).round().astype(int)
    cols = np.linspace(0, width, grid + 1).round().astype(int)
    occluded = []
    for r in range(grid):
        for c in range(grid):
            copy = pixels.copy()
            copy[rows[r] : rows[r + 1], cols[c] : cols[c + 1]] = OCCLUDER_VALUE
            occluded.append(copy)
    outputs = await classifier.predict_many([pixels, *occluded])
    baseline = outputs[0].probabilities
    target = classifier.labels.index(species) if species is not None else int(np.argmax(baseline))
    drops = np.array(
        [baseline[target] - out.probabilities[target] for out in outputs[1:]], dtype=np.float64
    )
    heat: npt.NDArray[np.float64] = np.clip(drops, 0.0, None).reshape(grid, grid)
    peak = float(heat.max())
    return heat / peak if peak > 0 else heat


def _colormap(values: npt.NDArray[np.float64]) -> npt.NDArray[np.uint8]:
    """A blue -> yellow -> red ramp for values in [0, 1]."""
    red = np.clip(2.0 * values, 0.0, 1.0)
    green = np.clip(2.0 * (1.0 - np.abs(values - 0.5) * 2.0), 0.0, 1.0) * 0.9
    blue = np.clip(1.0 - 2.0 * values, 0.0, 1.0)
    return (np.stack([red, green, blue], axis=-1) * 255).round().astype(np.uint8)


def render_overlay(pixels: npt.NDArray[np.uint8], heat: npt.NDArray[np.float64]) -> bytes:
    """The heat map, smoothly upsampled and blended over the model-sized photo, as PNG bytes."""
    height, width = pixels.shape[:2]
    heat_image = Image.fromarray((heat * 255).round().astype(np.uint8))
    smooth = np.asarray(heat_image.resize((width, height), Image.Resampling.BILINEAR)) / 255.0
    colours = _colormap(smooth).astype(np.float64)
    alpha = (OVERLAY_ALPHA * smooth)[..., np.newaxis]
    blended = pixels.astype(np.float64) * (1.0 - alpha) + colours * alpha
    buffer = io.BytesIO()
    Image.fromarray(blended.round().astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()
