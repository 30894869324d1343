"""Running a bundle variant with LiteRT: the one code path that serving and evaluation share.

Install with the `runtime` extra (`mushroom-common[runtime]`, which pulls `ai-edge-litert`).

One rule for every caller (the API's interpreter pool, training's evaluation, the pipeline's
drift reference, the benchmarks):
- input: one uint8 RGB tensor `[1, H, W, 3]` at the bundle's input size (preprocessing inside);
- outputs are found by signature name: `logits` or `output_0` for the logits, `mushroom_score`
  or `output_<mushroom_detector.output_index>` for the score (the exporter writes `output_0`,
  `output_1`); a model without a signature falls back to the documented positions (logits at 0,
  the score at `output_index`). Shapes are checked either way;
- quantized outputs are dequantized with the tensor's scale and zero point;
- probabilities are softmax(logits / T) in float64, T being the variant's own temperature (the
  bundle's `temperature` for bundles written before variants had one);
- the mushroom score is clipped to [0, 1];
- test-time views (`run_views`): the photo and its mirror image run as one batch; each view is
  calibrated on its own, and the answer averages them (probabilities, logits and scores, added
  view after view in the given order, then divided by the number of views). The phone does the
  same from `rules.json` (`model.test_time_views`); the bundle's decision rules name the views
  (`DecisionRulesSpec.test_time_views`, `bundle.InferenceView`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from ai_edge_litert.interpreter import Interpreter

from mushroom_common.bundle import BundleMetadata, InferenceView, ModelVariant, read_metadata

logger = logging.getLogger(__name__)

LOGITS_NAMES = ("logits", "output_0")
SCORE_NAME = "mushroom_score"

FloatArray = npt.NDArray[np.float64]
Pixels = npt.NDArray[np.uint8]


class RuntimeLoadError(RuntimeError):
    """A variant that cannot be run: missing file, not TFLite, unexpected inputs or outputs."""


class NonFiniteOutputError(RuntimeError):
    """The model returned NaN or infinite numbers."""


def calibrated_probabilities(logits: npt.ArrayLike, temperature: float) -> FloatArray:
    """softmax(logits / temperature) in float64, row-wise for a 2-D array, numerically stable.

    Args:
        logits: one photo's logits [C] or several photos' [N, C].
        temperature: the calibration temperature (> 0).

    Returns:
        Probabilities of the same shape, each row summing to 1.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, not {temperature}")
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    scaled = scaled - scaled.max(axis=-1, keepdims=True)
    exp = np.exp(scaled)
    probabilities: FloatArray = exp / exp.sum(axis=-1, keepdims=True)
    return probabilities


def variant_temperature(metadata: BundleMetadata, variant: ModelVariant) -> float:
    """The temperature that calibrates a variant: its own, else the bundle's (old bundles)."""
    return variant.effective_temperature(metadata.temperature)


@dataclass(frozen=True)
class Prediction:
    """One photo's answer: raw logits, calibrated probabilities, mushroom score (or None)."""

    logits: FloatArray
    probabilities: FloatArray
    mushroom_score: float | None


def view_pixels(pixels: Pixels, view: InferenceView) -> Pixels:
    """The photo ([H, W, 3]) as this view shows it."""
    if view is InferenceView.MIRROR:
        return np.ascontiguousarray(pixels[:, ::-1, :])
    return pixels


def average_rows(rows: FloatArray) -> FloatArray:
    """The mean of the rows, added one row after the other in order (the phone's order)."""
    total = np.array(rows[0], dtype=np.float64, copy=True)
    for row in rows[1:]:
        total = total + row
    mean: FloatArray = total / len(rows)
    return mean


@dataclass(frozen=True)
class ViewedPrediction:
    """One photo seen in several test-time views: the averaged answer and each view's own.

    `logits`, `probabilities` and `mushroom_score` are the views' averages (the probabilities
    are each view's calibrated probabilities, averaged); `view_probabilities` [V, C] feed the
    verdict's view agreement (`mushroom_common.verdict.judge(view_probabilities=...)`).
    """

    views: tuple[InferenceView, ...]
    logits: FloatArray
    probabilities: FloatArray
    mushroom_score: float | None
    view_logits: FloatArray
    view_probabilities: FloatArray


@dataclass(frozen=True)
class BatchPrediction:
    """Several photos' answers, one row per photo."""

    logits: FloatArray
    probabilities: FloatArray
    mushroom_scores: FloatArray | None

    def __len__(self) -> int:
        return len(self.logits)


@dataclass(frozen=True)
class _Tensor:
    index: int
    scale: float
    zero_point: int
    quantized: bool


def _tensor(detail: dict[str, Any]) -> _Tensor:
    scale, zero_point = detail.get("quantization", (0.0, 0))
    quantized = np.dtype(detail["dtype"]) in (np.dtype(np.int8), np.dtype(np.uint8))
    return _Tensor(int(detail["index"]), float(scale), int(zero_point), quantized and scale != 0)


def _shape(detail: dict[str, Any]) -> tuple[int, ...]:
    return tuple(int(d) for d in np.asarray(detail["shape"]).reshape(-1))


def open_interpreter(model_path: Path, num_threads: int) -> Interpreter:
    """A LiteRT interpreter of this model file with its tensors allocated: the one place that
    opens one (`BundleRuntime`, and tools that read other outputs of a model, such as the field
    head's pooled features)."""
    interpreter = Interpreter(model_path=str(model_path), num_threads=num_threads)
    interpreter.allocate_tensors()
    return interpreter


class BundleRuntime:
    """One LiteRT interpreter running one TFLite model (not thread-safe: one per thread).

    Build it for a bundle variant with `BundleRuntime.for_variant`; the constructor takes the
    facts directly, for a model whose metadata is not written yet (the exporter).

    Args:
        model_path: the .tflite file.
        labels: catalog ids in the model's output order.
        input_size: (height, width) of the uint8 input.
        temperature: the calibration temperature of this model.
        score_output: the documented output index of the mushroom score (None: no detector).
        num_threads: LiteRT's CPU threads.
        batch_size: photos per invoke in `run_batch`; when the model cannot be resized to it,
            the runtime falls back to one photo per invoke (check `batch_size` afterwards).
    """

    def __init__(
        self,
        model_path: Path,
        *,
        labels: Sequence[str],
        input_size: tuple[int, int],
        temperature: float,
        score_output: int | None = None,
        num_threads: int = 1,
        batch_size: int = 1,
    ) -> None:
        if temperature <= 0:
            raise RuntimeLoadError(f"{model_path}: temperature must be positive, not {temperature}")
        self.model_path = model_path
        self.labels = list(labels)
        self.input_size = input_size
        self.temperature = temperature
        self.num_threads = num_threads
        self.batch_size = 1
        self._score_output = score_output
        self._interpreter = self._open()
        if batch_size > 1:
            self._try_batch(batch_size)
        self._resolve_tensors()

    @classmethod
    def for_variant(
        cls,
        bundle_dir: Path,
        metadata: BundleMetadata | None = None,
        variant: str | None = None,
        *,
        num_threads: int = 1,
        batch_size: int = 1,
    ) -> BundleRuntime:
        """The runtime of a bundle variant, calibrated with the variant's own temperature.

        Args:
            bundle_dir: the local bundle folder.
            metadata: the bundle's metadata (default: read from `bundle_dir`).
            variant: variant name (default: the serving variant).
            num_threads: LiteRT's CPU threads.
            batch_size: photos per invoke in `run_batch`.
        """
        metadata = metadata if metadata is not None else read_metadata(bundle_dir)
        try:
            chosen = metadata.variant(variant)
        except KeyError as exc:
            raise RuntimeLoadError(str(exc.args[0])) from None
        if chosen.format != "tflite":
            raise RuntimeLoadError(f"variant {chosen.name} is {chosen.format}, not a TFLite model")
        detector = metadata.mushroom_detector
        return cls(
            bundle_dir / chosen.path,
            labels=metadata.labels,
            input_size=(metadata.input.height, metadata.input.width),
            temperature=variant_temperature(metadata, chosen),
            score_output=detector.output_index if detector is not None else None,
            num_threads=num_threads,
            batch_size=batch_size,
        )

    @property
    def has_detector(self) -> bool:
        """Whether this model outputs a mushroom score."""
        return self._score is not None

    @property
    def output_quantization(self) -> dict[str, tuple[float, int] | None]:
        """(scale, zero point) of each integer output the runtime dequantizes; None for floats."""
        tensors = {"logits": self._logits, "mushroom_score": self._score}
        return {
            name: (t.scale, t.zero_point) if t is not None and t.quantized else None
            for name, t in tensors.items()
        }

    # ------------------------------------------------------------------ loading

    def _open(self) -> Interpreter:
        if not self.model_path.is_file():
            raise RuntimeLoadError(f"the model file {self.model_path} does not exist")
        try:
            interpreter = open_interpreter(self.model_path, self.num_threads)
        except (ValueError, RuntimeError) as exc:
            raise RuntimeLoadError(f"LiteRT cannot load {self.model_path}: {exc}") from exc
        inputs = interpreter.get_input_details()
        height, width = self.input_size
        if len(inputs) != 1:
            raise RuntimeLoadError(f"{self.model_path} has {len(inputs)} inputs; one is expected")
        shape = _shape(inputs[0])
        if shape != (1, height, width, 3) or np.dtype(inputs[0]["dtype"]) != np.uint8:
            raise RuntimeLoadError(
                f"{self.model_path} takes {np.dtype(inputs[0]['dtype']).name} {shape}; the "
                f"metadata says uint8 (1, {height}, {width}, 3)"
            )
        scale, zero_point = inputs[0].get("quantization", (0.0, 0))
        if float(scale) not in (0.0, 1.0) or int(zero_point) != 0:
            # Preprocessing is inside the model: its input must be the raw pixel values.
            raise RuntimeLoadError(
                f"{self.model_path} quantizes its input (scale {scale}, zero point "
                f"{zero_point}); the contract is raw uint8 pixels"
            )
        return interpreter

    def _try_batch(self, batch_size: int) -> None:
        height, width = self.input_size
        index = int(self._interpreter.get_input_details()[0]["index"])
        try:
            self._interpreter.resize_tensor_input(index, [batch_size, height, width, 3])
            self._interpreter.allocate_tensors()
            self.batch_size = batch_size
        except (ValueError, RuntimeError) as exc:
            logger.info(
                "%s cannot take batch %d (%s): one photo per call", self.model_path, batch_size, exc
            )
            self._interpreter = self._open()

    def _resolve_tensors(self) -> None:
        """Find the logits and score tensors by signature name, else by documented position."""
        position = self._score_output
        score_names = (SCORE_NAME, f"output_{position}") if position is not None else ()
        signatures = self._interpreter.get_signature_list()
        named: dict[str, dict[str, Any]] = {}
        if len(signatures) == 1:
            named = self._interpreter.get_signature_runner(
                next(iter(signatures))
            ).get_output_details()
        outputs = self._interpreter.get_output_details()
        logits = next((named[n] for n in LOGITS_NAMES if n in named), None)
        score = next((named[n] for n in score_names if n in named), None)
        if logits is None:
            logits = outputs[0] if outputs else None
            if position is not None and position < len(outputs):
                score = outputs[position]
        num_labels = len(self.labels)
        if logits is None or _shape(logits) != (self.batch_size, num_labels):
            shapes = [_shape(o) for o in outputs]
            raise RuntimeLoadError(
                f"{self.model_path} has no [{self.batch_size}, {num_labels}] logits output "
                f"(outputs: {shapes})"
            )
        if score is not None and (
            int(score["index"]) == int(logits["index"]) or _shape(score) != (self.batch_size, 1)
        ):
            raise RuntimeLoadError(
                f"{self.model_path}: the mushroom score output has shape {_shape(score)}, not "
                f"[{self.batch_size}, 1]"
            )
        self._input_index = int(self._interpreter.get_input_details()[0]["index"])
        self._logits = _tensor(logits)
        self._score = _tensor(score) if score is not None else None

    # ------------------------------------------------------------------ running

    def _read(self, tensor: _Tensor) -> FloatArray:
        raw = np.asarray(self._interpreter.get_tensor(tensor.index))
        if tensor.quantized:
            values: FloatArray = (raw.astype(np.float64) - tensor.zero_point) * tensor.scale
            return values
        return raw.astype(np.float64)

    def _invoke(self, pixels: Pixels) -> tuple[FloatArray, FloatArray | None]:
        """pixels [batch_size, H, W, 3] -> logits [batch_size, C], scores [batch_size] or None."""
        self._interpreter.set_tensor(self._input_index, pixels)
        self._interpreter.invoke()
        logits = self._read(self._logits)
        scores = self._read(self._score).reshape(-1) if self._score is not None else None
        if not np.all(np.isfinite(logits)) or (
            scores is not None and not np.all(np.isfinite(scores))
        ):
            raise NonFiniteOutputError(
                f"the model {self.model_path.name} returned non-finite outputs"
            )
        return logits, (np.clip(scores, 0.0, 1.0) if scores is not None else None)

    def _check(self, pixels: Pixels) -> Pixels:
        height, width = self.input_size
        array = np.asarray(pixels)
        if array.dtype != np.uint8 or array.shape[-3:] != (height, width, 3):
            raise ValueError(
                f"the model takes uint8 pixels [{height}, {width}, 3], not {array.dtype} "
                f"{list(array.shape)}"
            )
        return np.ascontiguousarray(array)

    def run(self, pixels: Pixels) -> Prediction:
        """One photo (uint8 [H, W, 3] at the bundle's input size) through the model."""
        single = self._check(pixels)[np.newaxis, ...]
        if self.batch_size > 1:
            batch = self.run_batch(single)
            score = batch.mushroom_scores
            return Prediction(
                batch.logits[0], batch.probabilities[0], None if score is None else float(score[0])
            )
        logits, scores = self._invoke(single)
        return Prediction(
            logits[0],
            calibrated_probabilities(logits[0], self.temperature),
            None if scores is None else float(scores[0]),
        )

    def run_batch(self, pixels: Pixels | Sequence[Pixels]) -> BatchPrediction:
        """Many photos ([N, H, W, 3] or a sequence of [H, W, 3]), `batch_size` per invoke.

        A short last batch is padded with black photos whose answers are dropped.
        """
        stacked = self._check(
            np.stack(list(pixels)) if not isinstance(pixels, np.ndarray) else pixels
        )
        if stacked.ndim != 4:
            raise ValueError("run_batch takes photos [N, H, W, 3]")
        count = len(stacked)
        logits_parts: list[FloatArray] = []
        score_parts: list[FloatArray] = []
        for start in range(0, count, self.batch_size):
            chunk = stacked[start : start + self.batch_size]
            if len(chunk) < self.batch_size:
                padding = np.zeros((self.batch_size - len(chunk), *chunk.shape[1:]), np.uint8)
                chunk = np.concatenate([chunk, padding])
            logits, scores = self._invoke(chunk)
            taken = min(self.batch_size, count - start)
            logits_parts.append(logits[:taken])
            if scores is not None:
                score_parts.append(scores[:taken])
        num_labels = len(self.labels)
        all_logits = np.concatenate(logits_parts) if logits_parts else np.zeros((0, num_labels))
        all_scores: FloatArray | None = None
        if self._score is not None:
            all_scores = np.concatenate(score_parts) if score_parts else np.zeros(0)
        return BatchPrediction(
            all_logits, calibrated_probabilities(all_logits, self.temperature), all_scores
        )

    def run_views(
        self, pixels: Pixels, views: Sequence[InferenceView] = (InferenceView.ORIGINAL,)
    ) -> ViewedPrediction:
        """One photo (uint8 [H, W, 3]) in each test-time view, as one batch; see the module doc.

        With the one view `original` the answer is exactly `run`'s.
        """
        chosen = tuple(InferenceView(v) for v in views)
        if not chosen:
            raise ValueError("run_views needs at least one view")
        photo = self._check(pixels)
        batch = self.run_batch(np.stack([view_pixels(photo, view) for view in chosen]))
        scores = batch.mushroom_scores
        return ViewedPrediction(
            views=chosen,
            logits=average_rows(batch.logits),
            probabilities=average_rows(batch.probabilities),
            mushroom_score=None if scores is None else float(average_rows(scores[:, None])[0]),
            view_logits=batch.logits,
            view_probabilities=batch.probabilities,
        )
