"""Occlusion sensitivity with the served LiteRT model: which parts of the photo mattered."""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt
from PIL import Image

from mushroom_api.services.classifier import Classifier

OCCLUDER_VALUE = 127
OVERLAY_ALPHA = 0.55


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
