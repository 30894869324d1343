"""The one photo path before every model: training, evaluation, export checks and serving.

The exported models take uint8 RGB pixels at the bundle's `input.height x input.width`; all other
preprocessing (scaling) is inside the model. Decoding and resizing live in
`mushroom_common.imaging`, which the API serves through too (inside its budgets), so training,
evaluation and serving cannot drift apart: draft/reduce, upright per EXIF, one RGB conversion
(alpha on white, 16-bit scaled, CMYK and palettes converted), then PIL bilinear on the whole photo.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from mushroom_common.imaging import decode_for_model, resize_for_model

__all__ = ["decode_photo", "photo_to_input", "resize_for_model"]


def decode_photo(data: bytes) -> Image.Image:
    """Decode photo bytes to an upright RGB PIL image at full size (the one decode path)."""
    return decode_for_model(data, None)


def photo_to_input(data: bytes, height: int, width: int) -> np.ndarray:
    """Photo bytes -> uint8 (height, width, 3) model input, decoded exactly as the API does."""
    return resize_for_model(decode_for_model(data, max(height, width)), height, width)
