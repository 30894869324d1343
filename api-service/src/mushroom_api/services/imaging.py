"""Photo decoding: supported formats, limits, upright RGB (resize: mushroom_common.imaging).

Memory is the hostile part of decoding: a 77 KB PNG can declare 40 megapixels of 16-bit grey.
So every decode is priced before it runs, from the header: the bytes Pillow will hold for the
decoded pixels (its modes store 1, 2 or 4 bytes a pixel) plus any full-size conversion. A photo
over the per-request budget is refused with a sentence; JPEGs are priced after draft mode, which
decodes them at a reduced scale, so only formats without one (PNG, WebP, HEIC) meet the budget.
All decodes together share a second budget and wait for it, so concurrency cannot add up. Right
after decoding the image is reduced (box filter) close to the size the caller needs, and every
conversion (16-bit to 8-bit, alpha, CMYK) runs on the small image.
"""

from __future__ import annotations

import io
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pillow_heif
from PIL import ExifTags, Image, UnidentifiedImageError

from mushroom_common.imaging import cover_factor, upright

pillow_heif.register_heif_opener()

SUPPORTED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "HEIF", "HEIC"})


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


class TooSmallImageError(ImageError):
    """Fewer pixels on the shorter side than anyone can identify a mushroom from (422)."""


class DecoderBusyError(ImageError):
    """Decoding memory is taken by other requests for longer than a request may wait (503)."""

    status_code = 503
    retry_after_s = 2


# Bytes a pixel takes in Pillow's storage, by mode (RGB is stored in 4 bytes, like RGBA).
_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}
# Modes that Image.reduce cannot take, converted at full size first: (target mode, its bytes).
_FULL_SIZE_CONVERSIONS = {"1": ("L", 1), "P": ("RGBA", 4)}
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N"})
DEFAULT_DECODE_BUDGET_BYTES = 96 * 1024 * 1024
# Bytes of float32 copy a 16-bit image is scaled to 8 bits through, one strip at a time.
_STRIP_BYTES = 4 * 1024 * 1024


def decode_cost(mode: str, size: tuple[int, int]) -> int:
    """Bytes the decoded pixels of a `mode` image of `size` take, with a full-size conversion."""
    pixels = size[0] * size[1]
    cost = _BYTES_PER_PIXEL.get(mode, 4)
    conversion = _FULL_SIZE_CONVERSIONS.get(mode)
    if conversion is not None:
        cost += conversion[1]
    return pixels * cost


class DecodeMemory:
    """Decoded-pixel bytes all requests together may hold; a decode waits for its share."""

    def __init__(self, total: int, wait_s: float = 10.0) -> None:
        self.total = total
        self.wait_s = wait_s
        self.in_use = 0
        self._free = threading.Condition()

    def resize(self, total: int) -> None:
        """Change the total (the app sets it from its settings)."""
        with self._free:
            self.total = total
            self._free.notify_all()

    @contextmanager
    def hold(self, amount: int) -> Iterator[None]:
        """Hold `amount` bytes while decoding; raise DecoderBusyError after waiting too long."""
        amount = min(amount, self.total)
        with self._free:
            if not self._free.wait_for(lambda: self.in_use + amount <= self.total, self.wait_s):
                raise DecoderBusyError(
                    "The server is busy decoding other photos; please try again in a moment."
                )
            self.in_use += amount
        try:
            yield
        finally:
            with self._free:
                self.in_use -= amount
                self._free.notify_all()


DECODE_MEMORY = DecodeMemory(256 * 1024 * 1024)


@dataclass(frozen=True)
class DecodedPhoto:
    """An upright RGB photo, reduced close to (never below) the size the caller asked for."""

    image: Image.Image
    source_format: str
    source_size: tuple[int, int]


def decode_photo(
    data: bytes,
    max_pixels: int,
    target_size: tuple[int, int],
    *,
    min_side: int = 1,
    budget_bytes: int = DEFAULT_DECODE_BUDGET_BYTES,
    memory: DecodeMemory = DECODE_MEMORY,
) -> DecodedPhoto:
    """Decode a photo to upright RGB, refusing what is not a supported, sane image.

    Args:
        data: the uploaded bytes.
        max_pixels: largest width x height accepted, checked from the header before decoding.
        target_size: (width, height) the photo will be resized to; the decoded image is reduced
            (JPEG: draft mode; others: a box filter right after decoding) to the smallest size
            whose shorter side still covers the longer side of this.
        min_side: smallest accepted shorter side, in pixels.
        budget_bytes: most decoded-pixel memory this one photo may take.
        memory: the budget all concurrent decodes share.

    Returns:
        The decoded photo.
    """
    image = open_photo(data)
    source_format = (image.format or "").upper()
    width, height = image.size
    if width * height > max_pixels:
        raise TooManyPixelsError(_too_many_pixels_message(max_pixels))
    if width < 1 or height < 1:
        raise UndecodableImageError("The photo has no pixels.")
    if min(width, height) < min_side:
        raise TooSmallImageError(
            f"The photo is too small ({width}x{height} pixels): its shorter side needs at least "
            f"{min_side} pixels to show a mushroom."
        )
    side = max(target_size)
    try:
        if source_format in ("JPEG", "MPO"):
            # Decode at 1/2, 1/4 or 1/8 scale while that still covers the model's input: the
            # DCT-domain reduction is a clean low-pass filter, and the demo model's test top-1
            # is the same as with a full decode (measured; see benchmarks/RESULTS.md).
            image.draft("RGB", (side, side))
        cost = decode_cost(image.mode, image.size)
        if cost > budget_bytes:
            raise TooManyPixelsError(_over_budget_message(source_format, image, budget_bytes))
        with memory.hold(cost):
            image.load()
            orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
            small = _reduce(image, cover_factor(image.size, side))
            del image
            rgb = _to_rgb(_upright(small, orientation))
    except ImageError:
        raise
    except (Image.DecompressionBombError, MemoryError) as exc:
        raise TooManyPixelsError(_too_many_pixels_message(max_pixels)) from exc
    except (OSError, ValueError, SyntaxError, EOFError, TypeError) as exc:
        raise UndecodableImageError(
            "The photo could not be decoded; it may be truncated or damaged."
        ) from exc
    return DecodedPhoto(image=rgb, source_format=source_format, source_size=(width, height))


def open_photo(data: bytes) -> Image.Image:
    """Open (not decode) a photo of a supported format; errors say what is wrong with it."""
    if not data:
        raise UndecodableImageError("The uploaded file is empty.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise TooManyPixelsError(
            "The photo has far too many pixels; send a smaller photo."
        ) from exc
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
    return image


def strip_metadata(
    data: bytes,
    max_pixels: int,
    *,
    max_side: int = 4096,
    min_side: int = 1,
    budget_bytes: int = DEFAULT_DECODE_BUDGET_BYTES,
) -> bytes:
    """The photo re-encoded as an upright JPEG with no metadata: no EXIF (GPS position, camera,
    time), no XMP, no comments, no ICC profile. Only the pixels survive.

    Args:
        data: the uploaded bytes.
        max_pixels: largest width x height accepted.
        max_side: the stored copy is reduced while its shorter side stays above this.
        min_side: smallest accepted shorter side, in pixels.
        budget_bytes: most decoded-pixel memory the photo may take.

    Returns:
        JPEG bytes.
    """
    photo = decode_photo(
        data,
        max_pixels,
        (max_side, max_side),
        min_side=min_side,
        budget_bytes=budget_bytes,
    )
    # A new image from the pixels alone: nothing of the source's info dict can be written back.
    clean = Image.frombytes("RGB", photo.image.size, photo.image.tobytes())
    buffer = io.BytesIO()
    clean.save(buffer, format="JPEG", quality=92, optimize=True)
    return buffer.getvalue()


def _reduce(image: Image.Image, factor: int) -> Image.Image:
    """The image shrunk `factor` times with a box filter (16-bit grey becomes 8-bit here)."""
    if image.mode in _SIXTEEN_BIT_MODES:
        return _sixteen_bit_to_gray(image, factor)
    conversion = _FULL_SIZE_CONVERSIONS.get(image.mode)
    if conversion is not None:
        image = image.convert(conversion[0])
    if factor <= 1:
        return image
    return image.reduce(factor)


def _sixteen_bit_to_gray(image: Image.Image, factor: int) -> Image.Image:
    """A 16-bit grey image as 8-bit grey, shrunk `factor` times, a strip at a time.

    Pillow's own conversion clips 16-bit values at 255 (a bright photo turns white), and a
    float copy of the whole image takes 8 bytes a pixel; strips keep the copy small.
    """
    width, height = image.size
    high = image.getextrema()[1]
    peak = 65535.0 if isinstance(high, int | float) and high > 255 else 255.0
    out_width, out_height = max(1, width // factor), max(1, height // factor)
    rows = []
    step = factor * max(1, _STRIP_BYTES // (4 * width * factor))
    for top in range(0, out_height * factor, step):
        bottom = min(top + step, out_height * factor)
        strip = np.asarray(image.crop((0, top, out_width * factor, bottom)), dtype=np.float32)
        blocks = strip.reshape(-1, factor, out_width, factor).mean(axis=(1, 3))
        rows.append(np.clip(blocks * (255.0 / peak), 0, 255).round().astype(np.uint8))
    return Image.fromarray(np.concatenate(rows, axis=0))


# EXIF orientation -> the transpose that makes the photo upright (as ImageOps.exif_transpose).
def _upright(image: Image.Image, orientation: int) -> Image.Image:
    """Apply the source's EXIF orientation; most photos are already upright and not copied."""
    return upright(image, orientation)


def _too_many_pixels_message(max_pixels: int) -> str:
    return (
        f"The photo has too many pixels (the limit is {max_pixels / 1e6:.0f} megapixels); "
        "send a smaller photo."
    )


def _over_budget_message(source_format: str, image: Image.Image, budget_bytes: int) -> str:
    per_pixel = decode_cost(image.mode, (1, 1))
    limit = budget_bytes / per_pixel / 1e6
    return (
        f"This {source_format} photo is too large to decode "
        f"({image.size[0] * image.size[1] / 1e6:.0f} megapixels; at most {limit:.0f} for this "
        "kind of image): send it as a JPEG or smaller."
    )


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode to 8-bit RGB: 32-bit scaled down, CMYK converted, alpha on white."""
    if image.mode in ("I", "F"):
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
