"""The served model: a pool of `BundleRuntime`s (mushroom_common.runtime) behind a thread pool.

A LiteRT interpreter is not thread-safe, so each worker thread borrows one runtime per call.
Model calls run on the classifier's own threads, never on the event loop. Finding the outputs,
dequantizing and calibrating are the runtime's, so the API serves what evaluation measures.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import numpy.typing as npt

from mushroom_common.bundle import BundleMetadata, InferenceView
from mushroom_common.runtime import (
    BundleRuntime,
    NonFiniteOutputError,
    Prediction,
    RuntimeLoadError,
    ViewedPrediction,
)

logger = logging.getLogger(__name__)

# The runtime's error for a model answer that is not finite, under the name the routes use.
ModelOutputError = NonFiniteOutputError


class ModelLoadError(RuntimeError):
    """A bundle that cannot be served (missing file, wrong shapes, unknown labels)."""


class Classifier:
    """A loaded bundle: its metadata and a pool of ready LiteRT interpreters."""

    def __init__(
        self,
        metadata: BundleMetadata,
        bundle_dir: Path,
        *,
        pool_size: int = 2,
        num_threads: int = 1,
        source: str = "",
    ) -> None:
        self.metadata = metadata
        self.bundle_dir = bundle_dir
        self.model_path = bundle_dir / metadata.variant().path
        self.source = source
        self.input_size = (metadata.input.width, metadata.input.height)
        self._runtimes: queue.SimpleQueue[BundleRuntime] = queue.SimpleQueue()
        started = time.perf_counter()
        for _ in range(pool_size):
            try:
                runtime = BundleRuntime.for_variant(bundle_dir, metadata, num_threads=num_threads)
            except RuntimeLoadError as exc:
                raise ModelLoadError(str(exc)) from exc
            if runtime.has_detector != (metadata.mushroom_detector is not None):
                raise ModelLoadError(
                    f"{self.model_path}: the metadata names a mushroom detector but the model "
                    "has no [1, 1] score output"
                )
            self._runtimes.put(runtime)
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
            self.model_path,
            pool_size,
            time.perf_counter() - started,
        )

    @property
    def labels(self) -> list[str]:
        """Catalog ids in the model's output order."""
        return self.metadata.labels

    def _run(self, pixels: npt.NDArray[np.uint8]) -> Prediction:
        runtime = self._runtimes.get()
        try:
            return runtime.run(pixels)
        finally:
            self._runtimes.put(runtime)

    @property
    def views(self) -> tuple[InferenceView, ...]:
        """The test-time views the bundle's rules ask for (the photo, maybe its mirror)."""
        return tuple(self.metadata.decision_rules.test_time_views)

    def _run_views(self, pixels: npt.NDArray[np.uint8]) -> ViewedPrediction:
        runtime = self._runtimes.get()
        try:
            return runtime.run_views(pixels, self.views)
        finally:
            self._runtimes.put(runtime)

    async def predict_views(self, pixels: npt.NDArray[np.uint8]) -> ViewedPrediction:
        """Classify one photo in each of the bundle's test-time views, off the event loop."""
        return await asyncio.wrap_future(self._executor.submit(self._run_views, pixels))

    def submit(self, pixels: npt.NDArray[np.uint8]) -> Future[Prediction]:
        """Queue one photo ([height, width, 3] uint8) on the model threads."""
        return self._executor.submit(self._run, pixels)

    async def predict(self, pixels: npt.NDArray[np.uint8]) -> Prediction:
        """Classify one photo off the event loop."""
        return await asyncio.wrap_future(self.submit(pixels))

    async def predict_many(self, batch: Sequence[npt.NDArray[np.uint8]]) -> list[Prediction]:
        """Classify several photos, spread over every interpreter of the pool."""
        futures = [asyncio.wrap_future(self.submit(pixels)) for pixels in batch]
        return list(await asyncio.gather(*futures))
