"""The one resize that runs before every model: training, evaluation, export checks and serving.

The exported models take uint8 RGB pixels at the bundle's `input.height x input.width`; all other
preprocessing (scaling) is inside the model. Serving must resize exactly like this (PIL bilinear on
the whole photo, upright per EXIF) so that training and serving cannot drift apart.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps

from mushroom_common.imaging import decode_for_model, resize_for_model

__all__ = ["decode_photo", "photo_to_input", "resize_for_model"]


def decode_photo(data: bytes) -> Image.Image:
    """Decode photo bytes to an upright RGB PIL image."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        upright = ImageOps.exif_transpose(image)
        return upright.convert("RGB")


def photo_to_input(data: bytes, height: int, width: int) -> np.ndarray:
    """Photo bytes -> uint8 (height, width, 3) model input, decoded exactly as the API does."""
    return resize_for_model(decode_for_model(data, max(height, width)), height, width)
