"""The one resize between a photo and every model: training, evaluation and serving share it."""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt
from PIL import ExifTags, Image


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


# EXIF orientation -> the transpose that makes the photo upright.
UPRIGHT_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_REDUCIBLE_MODES = ("RGB", "RGBA", "L", "LA")


def upright(image: Image.Image, orientation: int) -> Image.Image:
    """Apply an EXIF orientation; upright photos are returned as they are (not copied)."""
    method = UPRIGHT_TRANSPOSE.get(orientation)
    return image if method is None else image.transpose(method)


def cover_factor(size: tuple[int, int], side: int) -> int:
    """The largest integer shrink that keeps the shorter side at or above `side`."""
    return max(1, min(size) // max(side, 1))


def decode_for_model(data: bytes, side: int) -> Image.Image:
    """Photo bytes -> an upright RGB image reduced close to (never below) `side`, as served.

    The API decodes this way to bound its memory (JPEG: DCT-domain draft mode; others: a box
    filter right after decoding); training and evaluation decode the same way so that what is
    evaluated is what is served, pixel for pixel (see api-service services/imaging.py).
    """
    with Image.open(io.BytesIO(data)) as image:
        if image.format in ("JPEG", "MPO"):
            image.draft("RGB", (side, side))
        image.load()
        orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
        decoded = image if image.mode in _REDUCIBLE_MODES else image.convert("RGB")
        factor = cover_factor(decoded.size, side)
        small = decoded.reduce(factor) if factor > 1 else decoded
        return upright(small, orientation).convert("RGB")
