"""Photo decoding: supported formats, limits, upright RGB (resize: mushroom_common.imaging)."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
import pillow_heif
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

pillow_heif.register_heif_opener()

SUPPORTED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "HEIF", "HEIC"})
_HIGH_BIT_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})


class ImageError(ValueError):
    """A photo the API cannot use; `status_code` says which HTTP error it becomes."""

    status_code = 422


class UnsupportedImageError(ImageError):
    """Not an image, or an image format the API does not take (415)."""

    status_code = 415


class UndecodableImageError(ImageError):
    """An image of a supported format that cannot be decoded (422)."""


class TooManyPixelsError(ImageError):
    """More pixels than the limit: a decompression bomb or a needlessly huge photo (422)."""


@dataclass(frozen=True)
class DecodedPhoto:
    """An upright RGB photo, reduced (JPEG draft mode) close to what the model needs."""

    image: Image.Image
    source_format: str
    source_size: tuple[int, int]


def decode_photo(data: bytes, max_pixels: int, target_size: tuple[int, int]) -> DecodedPhoto:
    """Decode a photo to upright RGB, refusing what is not a supported, sane image.

    Args:
        data: the uploaded bytes.
        max_pixels: largest width x height accepted, checked from the header before decoding.
        target_size: (width, height) the photo will be resized to; JPEGs are decoded at the
            smallest 1/2^n scale that still covers this size (draft mode).

    Returns:
        The decoded photo.
    """
    if not data:
        raise UndecodableImageError("The uploaded file is empty.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise TooManyPixelsError(_too_many_pixels_message(max_pixels)) from exc
    except UnidentifiedImageError as exc:
        raise UnsupportedImageError(
            "This file is not a photo in a supported format (JPEG, PNG, WebP, HEIC or HEIF)."
        ) from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise UndecodableImageError("The photo could not be read; it may be damaged.") from exc
    source_format = (image.format or "").upper()
    if source_format not in SUPPORTED_FORMATS:
        raise UnsupportedImageError(
            f"{source_format or 'This'} images are not supported; send a JPEG, PNG, WebP or HEIC "
            "photo."
        )
    width, height = image.size
    if width * height > max_pixels:
        raise TooManyPixelsError(_too_many_pixels_message(max_pixels))
    if width < 1 or height < 1:
        raise UndecodableImageError("The photo has no pixels.")
    try:
        if source_format in ("JPEG", "MPO"):
            # Decode at 1/2, 1/4 or 1/8 scale while that still covers the model's input: the
            # DCT-domain reduction is a clean low-pass filter, and the demo model's test top-1
            # is the same as with a full decode (measured; see benchmarks/RESULTS.md).
            side = max(target_size)
            image.draft("RGB", (side, side))
        image.load()
        upright = _upright(image)
        rgb = _to_rgb(upright)
    except Image.DecompressionBombError as exc:
        raise TooManyPixelsError(_too_many_pixels_message(max_pixels)) from exc
    except (OSError, ValueError, SyntaxError, EOFError, TypeError) as exc:
        raise UndecodableImageError(
            "The photo could not be decoded; it may be truncated or damaged."
        ) from exc
    return DecodedPhoto(image=rgb, source_format=source_format, source_size=(width, height))


def _upright(image: Image.Image) -> Image.Image:
    """Apply EXIF orientation; most photos are already upright and are not copied."""
    if image.getexif().get(ExifTags.Base.Orientation, 1) in (0, 1):
        return image
    return ImageOps.exif_transpose(image) or image


def _too_many_pixels_message(max_pixels: int) -> str:
    return (
        f"The photo has too many pixels (the limit is {max_pixels / 1e6:.0f} megapixels); "
        "send a smaller photo."
    )


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode to 8-bit RGB: 16-bit scaled down, CMYK converted, alpha on white."""
    if image.mode in _HIGH_BIT_MODES:
        values = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if values.max(initial=0) > 255 else 255.0
        gray = np.clip(values * (255.0 / peak), 0, 255).round().astype(np.uint8)
        return Image.fromarray(gray).convert("RGB")
    if image.mode == "RGB":
        return image
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")
