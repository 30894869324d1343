"""The one resize between a photo and every model: training, evaluation and serving share it."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from PIL import Image


def resize_for_model(image: Image.Image, height: int, width: int) -> npt.NDArray[np.uint8]:
    """Resize a whole upright photo (no crop) to the model's input with PIL's bilinear filter.

    The exported models take uint8 RGB pixels at the bundle's `input.height x input.width`; all
    other preprocessing (scaling) is inside the model, so this is the only step that could drift.

    Args:
        image: an upright PIL image (converted to RGB here).
        height: the model's input height.
        width: the model's input width.

    Returns:
        A C-contiguous uint8 array of shape (height, width, 3).
    """
    resized = image.convert("RGB").resize((width, height), Image.Resampling.BILINEAR)
    return np.ascontiguousarray(np.asarray(resized, dtype=np.uint8))
