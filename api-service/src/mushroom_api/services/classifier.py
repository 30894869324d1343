"""The served model: a LiteRT interpreter pool behind a small thread pool.

A LiteRT interpreter is not thread-safe, so each worker thread borrows one interpreter per call.
Model calls run on the classifier's own threads, never on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from ai_edge_litert.interpreter import Interpreter

from mushroom_common.bundle import BundleMetadata

logger = logging.getLogger(__name__)


class ModelLoadError(RuntimeError):
    """A bundle that cannot be served (missing file, wrong shapes, unknown labels)."""


class ModelOutputError(RuntimeError):
    """The model returned numbers that are not finite."""


@dataclass(frozen=True)
class ModelOutput:
    """One photo's calibrated answer."""

    probabilities: npt.NDArray[np.float64]
    mushroom_score: float | None
    logits: npt.NDArray[np.float64]


def softmax(logits: npt.NDArray[np.float64], temperature: float) -> npt.NDArray[np.float64]:
    """Calibrated probabilities: softmax(logits / temperature), numerically stable."""
    scaled = logits.astype(np.float64) / temperature
    scaled -= scaled.max()
    exp = np.exp(scaled)
    result: npt.NDArray[np.float64] = exp / exp.sum()
    return result


class Classifier:
    """A loaded bundle: its metadata and a pool of ready LiteRT interpreters."""

    def __init__(
        self,
        metadata: BundleMetadata,
        model_path: Path,
        *,
        pool_size: int = 2,
        num_threads: int = 1,
        source: str = "",
    ) -> None:
        self.metadata = metadata
        self.model_path = model_path
        self.source = source
        self.input_size = (metadata.input.width, metadata.input.height)
        self._interpreters: queue.SimpleQueue[_Runner] = queue.SimpleQueue()
        started = time.perf_counter()
        for _ in range(pool_size):
            self._interpreters.put(_Runner(model_path, metadata, num_threads))
        self._executor = ThreadPoolExecutor(max_workers=pool_size, thread_name_prefix="litert")
        # Run once so the first request does not pay for lazy allocation, and fail here, not later.
        try:
            self._run(np.zeros((metadata.input.height, metadata.input.width, 3), dtype=np.uint8))
        except ModelOutputError as exc:
            raise ModelLoadError(str(exc)) from exc
        logger.info(
            "loaded model %s/%s from %s (%d interpreters) in %.2f s",
            metadata.name,
            metadata.version,
            model_path,
            pool_size,
            time.perf_counter() - started,
        )

    @property
    def labels(self) -> list[str]:
        """Catalog ids in the model's output order."""
        return self.metadata.labels

    @property
    def has_detector(self) -> bool:
        """Whether the model says if the photo shows a mushroom at all."""
        return self.metadata.mushroom_detector is not None

    def _run(self, pixels: npt.NDArray[np.uint8]) -> ModelOutput:
        runner = self._interpreters.get()
        try:
            logits, score = runner.invoke(pixels)
        finally:
            self._interpreters.put(runner)
        if not np.all(np.isfinite(logits)) or (score is not None and not np.isfinite(score)):
            raise ModelOutputError(
                f"model {self.metadata.name}/{self.metadata.version} returned non-finite outputs"
            )
        return ModelOutput(softmax(logits, self.metadata.temperature), score, logits)

    def submit(self, pixels: npt.NDArray[np.uint8]) -> Future[ModelOutput]:
        """Queue one photo ([height, width, 3] uint8) on the model threads."""
        return self._executor.submit(self._run, pixels)

    async def predict(self, pixels: npt.NDArray[np.uint8]) -> ModelOutput:
        """Classify one photo off the event loop."""
        return await asyncio.wrap_future(self.submit(pixels))

    async def predict_many(self, batch: Sequence[npt.NDArray[np.uint8]]) -> list[ModelOutput]:
        """Classify several photos, spread over every interpreter of the pool."""
        futures = [asyncio.wrap_future(self.submit(pixels)) for pixels in batch]
        return list(await asyncio.gather(*futures))

    def close(self) -> None:
        """Stop the worker threads once queued calls finish."""
        self._executor.shutdown(wait=False)


class _Runner:
    """One interpreter with its tensor indices resolved."""

    def __init__(self, model_path: Path, metadata: BundleMetadata, num_threads: int) -> None:
        try:
            self.interpreter = Interpreter(model_path=str(model_path), num_threads=num_threads)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelLoadError(f"LiteRT cannot load {model_path}: {exc}") from exc
        height, width = metadata.input.height, metadata.input.width
        inputs = self.interpreter.get_input_details()
        if len(inputs) != 1:
            raise ModelLoadError(f"{model_path} has {len(inputs)} inputs; one is expected")
        shape = tuple(int(d) for d in inputs[0]["shape"])
        if shape != (1, height, width, 3) or inputs[0]["dtype"] != np.uint8:
            raise ModelLoadError(
                f"{model_path} takes {inputs[0]['dtype'].__name__} {shape}; metadata says "
                f"uint8 (1, {height}, {width}, 3)"
            )
        self.input_index = int(inputs[0]["index"])
        self.logits_index, self.score_index = _output_indices(
            self.interpreter.get_output_details(), metadata, model_path
        )

    def invoke(self, pixels: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[np.float64], float | None]:
        self.interpreter.set_tensor(self.input_index, pixels[np.newaxis, ...])
        self.interpreter.invoke()
        logits = np.array(self.interpreter.get_tensor(self.logits_index), dtype=np.float64)[0]
        score: float | None = None
        if self.score_index is not None:
            raw = float(np.asarray(self.interpreter.get_tensor(self.score_index)).reshape(-1)[0])
            score = min(max(raw, 0.0), 1.0) if np.isfinite(raw) else raw
        return logits, score


def _output_indices(
    outputs: list[dict[str, object]], metadata: BundleMetadata, model_path: Path
) -> tuple[int, int | None]:
    """Find the logits and mushroom-score tensors.

    The contract puts logits at output 0 and the score at `mushroom_detector.output_index`, but
    the TFLite converter may reorder outputs, so tensors are matched by shape when that is
    unambiguous and by position otherwise.
    """
    num_labels = len(metadata.labels)
    shapes = [tuple(int(d) for d in np.asarray(o["shape"]).reshape(-1)) for o in outputs]
    indices = [int(np.asarray(o["index"])) for o in outputs]
    logits_at = [i for i, s in enumerate(shapes) if s == (1, num_labels)]
    score_at = [i for i, s in enumerate(shapes) if s == (1, 1)]
    detector = metadata.mushroom_detector
    if num_labels > 1 and len(logits_at) == 1:
        logits_pos = logits_at[0]
    elif shapes and shapes[0] == (1, num_labels):
        logits_pos = 0
    else:
        raise ModelLoadError(
            f"{model_path} has no [1, {num_labels}] logits output (outputs: {shapes})"
        )
    if detector is None:
        return indices[logits_pos], None
    candidates = [i for i in score_at if i != logits_pos]
    if len(candidates) == 1:
        return indices[logits_pos], indices[candidates[0]]
    if detector.output_index < len(shapes) and shapes[detector.output_index] == (1, 1):
        return indices[logits_pos], indices[detector.output_index]
    raise ModelLoadError(
        f"{model_path}: metadata names a mushroom detector but no [1, 1] score output exists"
    )
