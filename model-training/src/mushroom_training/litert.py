"""Running exported TFLite models with LiteRT (the runtime the API uses), one photo at a time."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter


class TFLiteClassifier:
    """A TFLite bundle variant: uint8 [1, H, W, 3] in; logits (and the mushroom score) out."""

    def __init__(self, path: Path, threads: int = 2) -> None:
        self.path = path
        self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.outputs = self.interpreter.get_output_details()
        if self.input["dtype"] != np.uint8:
            raise ValueError(f"{path.name}: input is {self.input['dtype']}, not uint8")

    @property
    def input_quantization(self) -> tuple[float, int]:
        scale, zero_point = self.input["quantization"]
        return float(scale), int(zero_point)

    def _output(self, index: int) -> np.ndarray:
        detail = self.outputs[index]
        raw = np.asarray(self.interpreter.get_tensor(detail["index"]))
        if detail["dtype"] in (np.int8, np.uint8):
            scale, zero_point = detail["quantization"]
            return np.asarray((raw.astype(np.float32) - zero_point) * scale, np.float32)
        return raw.astype(np.float32)

    def run(self, image: np.ndarray) -> tuple[np.ndarray, float | None]:
        """One uint8 (H, W, 3) photo -> (logits [C], mushroom score or None)."""
        self.interpreter.set_tensor(self.input["index"], image[np.newaxis])
        self.interpreter.invoke()
        logits = self._output(0)[0]
        score = float(self._output(1).reshape(-1)[0]) if len(self.outputs) > 1 else None
        return logits, score

    def run_all(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Many photos, one by one (batch 1, as served)."""
        results = [self.run(image) for image in images]
        logits = np.stack([r[0] for r in results])
        scores = [r[1] for r in results]
        return logits, (np.array(scores, np.float32) if scores and scores[0] is not None else None)


def latency_ms(
    path: Path, threads: int, image: np.ndarray, runs: int = 20, warmup: int = 3
) -> float:
    """Median wall time of one batch-1 inference in milliseconds."""
    model = TFLiteClassifier(path, threads)
    for _ in range(warmup):
        model.run(image)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        model.run(image)
        times.append((time.perf_counter() - started) * 1000)
    return float(np.median(times))
