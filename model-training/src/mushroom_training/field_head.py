"""A new species head on the served model's own fine-tuned features, trained for field photos.

Fine-tuning the trunk again costs about an hour of two CPU cores; the served int8 model already
holds a fine-tuned trunk whose pooled 1280-d features feed both the species head and the
mushroom detector. This module

- exposes those pooled features (`with_pooled_output`: the same TFLite model with the pooling
  tensor as a third output; nothing else changes),
- makes field-like views of training photos (`field_view`: small-scale random resized crops,
  rotation, white balance, blur, noise, resolution and JPEG jitter, mirror),
- trains a linear head on the pooled features of many views with a class-prior correction
  (`train_head`: logit-adjusted loss and/or class-balanced weights, warm-started from the served
  head), and
- writes the head into a copy of the int8 model (`replace_head`: per-channel int8 weights, int32
  bias and the logits' output quantization), so the served model keeps its size, speed, detector
  and input contract.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageFilter, ImageOps

from mushroom_common.imaging import resize_for_model

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float32]
# TFLite builtin operator codes used below.
FULLY_CONNECTED = 9


@dataclass(frozen=True)
class HeadTensors:
    """Where the species head lives in the served int8 model."""

    pooled: int  # the pooled features (FC input)
    weights: int
    bias: int
    logits_int8: int  # the FC output before the dequantize to the float logits output


def _read(path: Path):  # type: ignore[no-untyped-def]
    from tensorflow.lite.tools import flatbuffer_utils

    return flatbuffer_utils.read_model(str(path))


def _write(model, path: Path) -> None:  # type: ignore[no-untyped-def]
    from tensorflow.lite.tools import flatbuffer_utils

    flatbuffer_utils.write_model(model, str(path))


def head_tensors(model, num_labels: int) -> HeadTensors:  # type: ignore[no-untyped-def]
    """The fully connected op whose weights are [num_labels, features] (the species head)."""
    graph = model.subgraphs[0]
    for op in graph.operators:
        if model.operatorCodes[op.opcodeIndex].builtinCode != FULLY_CONNECTED:
            continue
        source, weights, bias = (int(i) for i in op.inputs[:3])
        if int(graph.tensors[weights].shape[0]) == num_labels:
            return HeadTensors(source, weights, bias, int(op.outputs[0]))
    raise ValueError(f"no fully connected layer with {num_labels} outputs")


def with_pooled_output(source: Path, target: Path, num_labels: int) -> HeadTensors:
    """Copy the model with its pooled features as an extra (int8) output."""
    model = _read(source)
    tensors = head_tensors(model, num_labels)
    graph = model.subgraphs[0]
    graph.outputs = np.append(graph.outputs, np.int32(tensors.pooled))
    _write(model, target)
    return tensors


class PooledRunner:
    """The served model with its pooled output: logits and dequantized features per photo."""

    def __init__(self, model_path: Path, num_labels: int, num_threads: int = 2) -> None:
        from mushroom_common.runtime import open_interpreter

        self._interpreter = open_interpreter(model_path, num_threads)
        details = self._interpreter.get_output_details()
        self._logits = next(d for d in details if tuple(d["shape"]) == (1, num_labels))
        self._pooled = next(
            d for d in details if d["dtype"] == np.int8 and d["shape"][-1] != num_labels
        )
        self._input = self._interpreter.get_input_details()[0]

    def run(self, pixels: npt.NDArray[np.uint8]) -> tuple[FloatArray, FloatArray]:
        """One photo (uint8 [H, W, 3]) -> (float logits [labels], pooled features [1280])."""
        self._interpreter.set_tensor(self._input["index"], pixels[np.newaxis])
        self._interpreter.invoke()
        logits = self._interpreter.get_tensor(self._logits["index"])[0].astype(np.float32)
        raw = self._interpreter.get_tensor(self._pooled["index"])[0].astype(np.float32)
        scale, zero = self._pooled["quantization"]
        return logits, (raw - zero) * scale


def field_view(image: Image.Image, size: int, rng: np.random.Generator) -> npt.NDArray[np.uint8]:
    """A training photo made to look more like someone else's field photo, at the model's size.

    Random resized crop (10-100% of the area, aspect 3/4-4/3), rotation up to 25 degrees,
    mirror, white balance (per-channel gain 0.8-1.2) and exposure, then with some probability
    blur, sensor noise, and a trip through a small JPEG (long side 96-320 px, quality 25-90).
    """
    width, height = image.size
    area = width * height
    for _ in range(10):
        target = area * rng.uniform(0.10, 1.0)
        ratio = float(np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3))))
        w = round(float(np.sqrt(target * ratio)))
        h = round(float(np.sqrt(target / ratio)))
        if 0 < w <= width and 0 < h <= height:
            left = int(rng.integers(0, width - w + 1))
            top = int(rng.integers(0, height - h + 1))
            image = image.crop((left, top, left + w, top + h))
            break
    if rng.random() < 0.5:
        image = ImageOps.mirror(image)
    if rng.random() < 0.5:
        image = image.rotate(float(rng.uniform(-25, 25)), Image.Resampling.BILINEAR, expand=False)
    gains = rng.uniform(0.8, 1.2, 3) * rng.uniform(0.75, 1.25)
    pixels = np.asarray(image.convert("RGB"), np.float64) * gains
    if rng.random() < 0.3:
        pixels = pixels + rng.normal(0, rng.uniform(2, 10), pixels.shape)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    if rng.random() < 0.3:
        image = image.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 2.0))))
    if rng.random() < 0.5:
        side = int(rng.integers(96, 321))
        scale = side / max(image.size)
        if scale < 1:
            image = image.resize(
                (max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                Image.Resampling.BILINEAR,
            )
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=int(rng.integers(25, 91)))
        buffer.seek(0)
        image = Image.open(buffer).convert("RGB")
    return resize_for_model(image, size, size)


def _softmax(logits: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return np.asarray(e / e.sum(axis=1, keepdims=True), np.float32)


@dataclass(frozen=True)
class HeadConfig:
    """How a head is trained (see `train_head`)."""

    loss_tau: float = 0.0  # logit-adjusted loss: train on logits + tau * log prior
    balanced_weights: float = 0.0  # class weights (1 / count) ** power
    epochs: int = 30
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    label_smoothing: float = 0.1
    batch_size: int = 256
    seed: int = 42


def train_head(
    features: FloatArray,
    labels: npt.NDArray[np.intp],
    prior: npt.NDArray[np.float64],
    init_weights: FloatArray,
    init_bias: FloatArray,
    config: HeadConfig,
) -> tuple[FloatArray, FloatArray]:
    """A linear head (weights [features, labels], bias [labels]) by Adam on softmax
    cross-entropy, warm-started from the served head; with `loss_tau` the loss sees
    `logits + tau * log(prior)` (Menon et al.'s logit-adjusted loss), so the head itself learns
    prior-free scores; `balanced_weights` weights each photo by (1 / its class count) ** power."""
    rng = np.random.default_rng(config.seed)
    num = len(prior)
    w = init_weights.astype(np.float32).copy()
    b = init_bias.astype(np.float32).copy()
    shift = (config.loss_tau * np.log(prior)).astype(np.float32)
    counts = np.bincount(labels, minlength=num).astype(np.float64)
    sample_w = (1.0 / np.maximum(counts[labels], 1.0)) ** config.balanced_weights
    sample_w = (sample_w / sample_w.mean()).astype(np.float32)
    targets_on = 1.0 - config.label_smoothing
    smooth = config.label_smoothing / num
    m_w, v_w = np.zeros_like(w), np.zeros_like(w)
    m_b, v_b = np.zeros_like(b), np.zeros_like(b)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    step = 0
    x_all = np.asarray(features, np.float32)
    for _ in range(config.epochs):
        order = rng.permutation(len(labels))
        for start in range(0, len(order), config.batch_size):
            batch = order[start : start + config.batch_size]
            x, y, sw = x_all[batch], labels[batch], sample_w[batch]
            p = _softmax(x @ w + b + shift)
            target = np.full_like(p, smooth)
            target[np.arange(len(y)), y] += targets_on
            grad_logits = (p - target) * sw[:, None] / len(y)
            g_w = x.T @ grad_logits + config.weight_decay * w
            g_b = grad_logits.sum(axis=0)
            step += 1
            for param, grad, m, v in ((w, g_w, m_w, v_w), (b, g_b, m_b, v_b)):
                m *= beta1
                m += (1 - beta1) * grad
                v *= beta2
                v += (1 - beta2) * grad * grad
                m_hat = m / (1 - beta1**step)
                v_hat = v / (1 - beta2**step)
                param -= config.learning_rate * m_hat / (np.sqrt(v_hat) + eps)
    return w.astype(np.float32), b.astype(np.float32)


def read_head(model_path: Path, num_labels: int) -> tuple[FloatArray, FloatArray]:
    """The served head's float weights [features, labels] and bias [labels] (dequantized)."""
    model = _read(model_path)
    t = head_tensors(model, num_labels)
    graph = model.subgraphs[0]
    wt, bt = graph.tensors[t.weights], graph.tensors[t.bias]
    raw_w = np.frombuffer(bytes(model.buffers[wt.buffer].data), np.int8).reshape(
        [int(s) for s in wt.shape]
    )
    raw_b = np.frombuffer(bytes(model.buffers[bt.buffer].data), np.int32)
    w_scale = np.asarray(wt.quantization.scale, np.float32)
    b_scale = np.asarray(bt.quantization.scale, np.float32)
    return (raw_w.astype(np.float32) * w_scale[:, None]).T, raw_b.astype(np.float32) * b_scale


def replace_head(
    source: Path,
    target: Path,
    weights: FloatArray,
    bias: FloatArray,
    logit_range: tuple[float, float],
) -> None:
    """Write a float head into a copy of the int8 model (per-channel symmetric int8 weights,
    int32 bias at input scale x weight scale, the logits' int8 output covering `logit_range`)."""
    model = _read(source)
    num = weights.shape[1]
    t = head_tensors(model, num)
    graph = model.subgraphs[0]
    in_scale = float(graph.tensors[t.pooled].quantization.scale[0])
    w_t = weights.T.astype(np.float64)  # [labels, features]
    w_scale = np.maximum(np.abs(w_t).max(axis=1), 1e-8) / 127.0
    q_w = np.clip(np.round(w_t / w_scale[:, None]), -127, 127).astype(np.int8)
    b_scale = in_scale * w_scale
    q_b = np.round(bias.astype(np.float64) / b_scale).astype(np.int32)
    wt, bt, out = graph.tensors[t.weights], graph.tensors[t.bias], graph.tensors[t.logits_int8]
    model.buffers[wt.buffer].data = np.frombuffer(q_w.tobytes(), np.uint8)
    wt.quantization.scale = w_scale.astype(np.float32)
    wt.quantization.zeroPoint = np.zeros(num, np.int64)
    model.buffers[bt.buffer].data = np.frombuffer(q_b.tobytes(), np.uint8)
    bt.quantization.scale = b_scale.astype(np.float32)
    bt.quantization.zeroPoint = np.zeros(num, np.int64)
    low, high = min(logit_range[0], 0.0), max(logit_range[1], 0.0)
    scale = (high - low) / 255.0
    zero = int(np.clip(round(-128 - low / scale), -128, 127))
    out.quantization.scale = np.array([scale], np.float32)
    out.quantization.zeroPoint = np.array([zero], np.int64)
    _write(model, target)
