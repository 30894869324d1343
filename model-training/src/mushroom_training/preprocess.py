"""The one resize that runs before every model: training, evaluation, export checks and serving.

The exported models take uint8 RGB pixels at the bundle's `input.height x input.width`; all other
preprocessing (scaling) is inside the model. Serving must resize exactly like this (PIL bilinear on
the whole photo, upright per EXIF) so that training and serving cannot drift apart.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps


def decode_photo(data: bytes) -> Image.Image:
    """Decode photo bytes to an upright RGB PIL image."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        upright = ImageOps.exif_transpose(image)
        return upright.convert("RGB")


def resize_for_model(image: Image.Image, height: int, width: int) -> np.ndarray:
    """Resize a whole RGB photo (no crop) to the model's input with PIL's bilinear filter.

    Args:
        image: an RGB PIL image.
        height: the model's input height.
        width: the model's input width.

    Returns:
        A C-contiguous uint8 array of shape (height, width, 3).
    """
    resized = image.convert("RGB").resize((width, height), Image.Resampling.BILINEAR)
    return np.ascontiguousarray(np.asarray(resized, dtype=np.uint8))


def photo_to_input(data: bytes, height: int, width: int) -> np.ndarray:
    """Photo bytes -> uint8 (height, width, 3) model input."""
    return resize_for_model(decode_photo(data), height, width)
