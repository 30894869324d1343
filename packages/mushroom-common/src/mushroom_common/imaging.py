"""The one photo path: bytes -> upright 8-bit RGB -> model input, shared by every caller.

Training, evaluation, the benchmarks and the API all decode here, so what is evaluated is what
is served, pixel for pixel. The API only adds its limits around these steps (pixel limit, memory
and CPU budgets, a deadline; see api-service services/imaging.py):

1. `open_image`: read the header (no pixels yet).
2. `plan_decode`: JPEG draft mode (decode at 1/2, 1/4 or 1/8 scale while that still covers the
   model's input), and what decoding will cost: the bytes the decoder really allocates (for a
   progressive JPEG the coefficients of the full image, whatever the draft; for WebP, HEIC and
   AVIF the decoder's own full-size buffers besides Pillow's) and the JPEG's scan count.
3. `decode_planned`: load, reduce with a box filter close to (never below) the needed side,
   apply the EXIF orientation, and convert to RGB with one policy for every mode: 16-bit grey
   scaled to 8 bits (not clipped), palette and 1-bit expanded, CMYK converted, and any alpha
   (RGBA, LA, palette transparency) composited on white.
4. `resize_for_model`: PIL bilinear to the model's input.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

import numpy as np
import numpy.typing as npt
from PIL import ExifTags, Image

__all__ = [
    "ABANDONABLE_BLOCK_BYTES",
    "Abandonable",
    "DecodePlan",
    "cover_factor",
    "decode_for_model",
    "decode_planned",
    "jpeg_scan_count",
    "jpeg_scan_spans",
    "open_image",
    "plan_decode",
    "resize_for_model",
    "to_rgb",
    "upright",
]


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


# EXIF orientation -> the transpose that makes the photo upright (as ImageOps.exif_transpose).
UPRIGHT_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
JPEG_FORMATS = frozenset({"JPEG", "MPO"})
# Bytes a pixel takes in Pillow's storage, by mode (RGB is stored in 4 bytes, like RGBA).
_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}
# Modes that Image.reduce cannot take, converted at full size first: (target mode, its bytes).
_FULL_SIZE_CONVERSIONS = {"1": ("L", 1), "P": ("RGBA", 4), "PA": ("RGBA", 4)}
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N"})
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
# Bytes a pixel of the full image the decoder library holds besides Pillow's own storage
# (measured by benchmarks/decode_memory.py, peak RSS against this estimate): libwebp decodes
# the whole picture to RGBA and Pillow copies it; libheif/libavif decode to planes, then to an
# interleaved buffer, then Pillow copies.
_DECODER_BYTES_PER_PIXEL = {"WEBP": 12, "HEIF": 6, "HEIC": 6, "AVIF": 6}
# Bytes of float32 copy a 16-bit image is scaled to 8 bits through, one strip at a time.
_STRIP_BYTES = 4 * 1024 * 1024
# Pillow feeds the JPEG decoder this many bytes at a time when a decode may be abandoned: each
# feed ends with a check (see `Abandonable`), so a slow progressive JPEG stops within one feed.
ABANDONABLE_BLOCK_BYTES = 16 * 1024
# A marker after entropy-coded data: 0xFF then anything but a stuffed zero or a restart marker
# (a fill byte 0xFF is skipped by the marker loop). A literal first byte lets `re` search with
# memchr: 8 ms for a 12 MB JPEG, where `\xff+` took 450 ms.
_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7]")


def upright(image: Image.Image, orientation: int) -> Image.Image:
    """Apply an EXIF orientation; upright photos are returned as they are (not copied)."""
    method = UPRIGHT_TRANSPOSE.get(orientation)
    return image if method is None else image.transpose(method)


def cover_factor(size: tuple[int, int], side: int) -> int:
    """The largest integer shrink that keeps the shorter side at or above `side`."""
    return max(1, min(size) // max(side, 1))


def jpeg_scan_count(data: bytes) -> int:
    """How many scans (SOS segments) the first image of a JPEG has, read from its markers.

    A progressive JPEG refines the whole image once per scan, so its decode CPU grows with this
    count (a few hundred repeated scans in a few hundred KB make a "scan bomb"). Only markers
    are read, never the entropy-coded data, so this costs a regex pass over the bytes.

    Returns:
        The count, 0 when `data` is not a JPEG; a malformed tail stops the count where it is.
    """
    return len(jpeg_scan_spans(data))


def jpeg_scan_spans(data: bytes) -> list[tuple[int, int]]:
    """(start, end) byte offsets of each scan of a JPEG's first image: its SOS segment and its
    entropy-coded data, up to the next marker (see `jpeg_scan_count`)."""
    spans: list[tuple[int, int]] = []
    if not data.startswith(b"\xff\xd8"):
        return spans
    position = 2
    end = len(data)
    while position + 4 <= end:
        if data[position] != 0xFF:
            break
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte before a marker
            position += 1
            continue
        if marker == 0xD9:  # EOI: the first image ends (an MPO's others follow)
            break
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # standalone markers
            position += 2
            continue
        length = int.from_bytes(data[position + 2 : position + 4], "big")
        if length < 2:
            break
        start = position
        position += 2 + length
        if marker == 0xDA:
            found = _NEXT_MARKER.search(data, position)
            if found is None:
                spans.append((start, end))
                break
            position = found.start()
            spans.append((start, position))
    return spans


class Abandonable(io.BytesIO):
    """Photo bytes whose reads raise once `check` does: a decode that can be abandoned.

    Pillow reads the compressed data a block at a time while it decodes; `check` runs before
    every read once `arm` was called (not while the header is read), so a decode stops at the
    next block when its deadline passes or its request is gone.
    """

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self._check: Callable[[], None] | None = None

    def arm(self, check: Callable[[], None]) -> None:
        """From now on, call `check()` before every read (it raises to abandon the decode)."""
        self._check = check

    def read(self, size: int | None = -1, /) -> bytes:
        if self._check is not None:
            self._check()
        return super().read(size)


def open_image(data: bytes | IO[bytes]) -> Image.Image:
    """Open (not decode) photo bytes: Pillow's errors propagate, its bomb warning is silenced.

    The caller checks the pixel count (the API against its limit); Pillow still raises
    DecompressionBombError far above any limit.
    """
    stream = io.BytesIO(data) if isinstance(data, bytes | bytearray) else data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(stream)


@dataclass(frozen=True)
class DecodePlan:
    """What decoding an opened photo will take, known from its header before any pixel.

    Attributes:
        source_format: Pillow's format name (JPEG, MPO, PNG, WEBP, HEIF, AVIF, ...).
        source_size: width and height in the file.
        decoded_size: width and height the decoder produces (JPEG: after draft mode).
        mode: Pillow's mode of the decoded pixels.
        peak_bytes: the memory decoding allocates at its peak (estimate from the header).
        scans: the JPEG's scan count (0 for other formats).
    """

    source_format: str
    source_size: tuple[int, int]
    decoded_size: tuple[int, int]
    mode: str
    peak_bytes: int
    scans: int


def plan_decode(image: Image.Image, side: int, data: bytes | None = None) -> DecodePlan:
    """Put a JPEG in draft mode for `side` and price the decode of `image` (header only).

    Args:
        image: an opened, not yet loaded photo.
        side: the shorter side the caller needs (the decode stays at or above it).
        data: the file's bytes, to count a JPEG's scans (0 without them).

    Returns:
        The plan; `image` is left in draft mode, ready for `decode_planned`.
    """
    source_format = (image.format or "").upper()
    source_size = image.size
    scans = 0
    decoder_bytes = 0
    if source_format in JPEG_FORMATS:
        scans = jpeg_scan_count(data) if data is not None else 0
        if image.info.get("progressive"):
            # libjpeg keeps every DCT coefficient of the full image (2 bytes each) for a
            # progressive JPEG, whatever the output scale.
            decoder_bytes = _jpeg_coefficient_bytes(image)
        image.draft("RGB", (side, side))
    else:
        decoder_bytes = _DECODER_BYTES_PER_PIXEL.get(source_format, 0) * _pixels(source_size)
    mode = image.mode
    decoded_size = image.size
    stored = _pixels(decoded_size) * _BYTES_PER_PIXEL.get(mode, 4)
    conversion = _FULL_SIZE_CONVERSIONS.get(mode)
    converted = _pixels(decoded_size) * conversion[1] if conversion is not None else 0
    factor = cover_factor(decoded_size, side)
    out = _pixels((decoded_size[0] // factor, decoded_size[1] // factor))
    # The reduced copy (none at factor 1), the upright copy (counted whatever the orientation)
    # and the RGB conversion (none for RGB; with alpha: RGBA, a white background, the composite).
    reduced = 4 * out if factor > 1 else 0
    if mode == "RGB":
        rgb = 0
    elif mode in _ALPHA_MODES or mode in _FULL_SIZE_CONVERSIONS:
        rgb = 12 * out
    else:
        rgb = 4 * out
    output = reduced + 4 * out + rgb
    strips = _STRIP_BYTES if mode in _SIXTEEN_BIT_MODES else 0
    return DecodePlan(
        source_format=source_format,
        source_size=source_size,
        decoded_size=decoded_size,
        mode=mode,
        peak_bytes=decoder_bytes + stored + converted + output + strips,
        scans=scans,
    )


def decode_planned(image: Image.Image, side: int) -> Image.Image:
    """Decode a planned photo to upright 8-bit RGB, reduced close to (never below) `side`."""
    image.load()
    orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    small = _reduce(image, cover_factor(image.size, side))
    return to_rgb(upright(small, orientation))


def decode_for_model(data: bytes, side: int | None) -> Image.Image:
    """Photo bytes -> an upright RGB image reduced close to (never below) `side`, as served.

    The API decodes the same way (`plan_decode` then `decode_planned`) inside its budgets, so
    training and evaluation see what is served, pixel for pixel. `side=None` keeps the full
    size (same conversions, no reduction).
    """
    with open_image(data) as image:
        wanted = max(image.size) if side is None else side
        plan_decode(image, wanted)
        return decode_planned(image, wanted)


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode to 8-bit RGB: 32-bit scaled down, CMYK converted, alpha on white."""
    if image.mode in ("I", "F"):
        values = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if values.max(initial=0) > 255 else 255.0
        gray = np.clip(values * (255.0 / peak), 0, 255).round().astype(np.uint8)
        return Image.fromarray(gray).convert("RGB")
    if image.mode in _SIXTEEN_BIT_MODES:
        return _sixteen_bit_to_gray(image, 1).convert("RGB")
    if image.mode == "RGB":
        return image
    has_alpha = image.mode in _ALPHA_MODES or (image.mode == "P" and "transparency" in image.info)
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _pixels(size: tuple[int, int]) -> int:
    return size[0] * size[1]


def _jpeg_coefficient_bytes(image: Image.Image) -> int:
    """Bytes of the full-image DCT coefficient arrays libjpeg holds for a progressive JPEG."""
    width, height = image.size
    layers = getattr(image, "layer", None) or [("", 1, 1, 0)]
    h_max = max(max(layer[1] for layer in layers), 1)
    v_max = max(max(layer[2] for layer in layers), 1)
    total = 0
    for _, h, v, _ in layers:
        blocks_wide = -(-width * max(h, 1) // (8 * h_max))
        blocks_high = -(-height * max(v, 1) // (8 * v_max))
        # Arrays are padded to whole MCUs: round the block counts up to the sampling factor.
        blocks_wide = -(-blocks_wide // max(h, 1)) * max(h, 1)
        blocks_high = -(-blocks_high // max(v, 1)) * max(v, 1)
        total += blocks_wide * blocks_high * 64 * 2
    return total


def _reduce(image: Image.Image, factor: int) -> Image.Image:
    """The image shrunk `factor` times with a box filter (16-bit grey becomes 8-bit here)."""
    if image.mode in _SIXTEEN_BIT_MODES:
        return _sixteen_bit_to_gray(image, factor)
    conversion = _FULL_SIZE_CONVERSIONS.get(image.mode)
    if conversion is not None:
        # Palette transparency becomes alpha here, so it is composited on white like RGBA.
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
