"""Photo normalisation (import time) and analysis (build time).

Import stores each photo once, content addressed, in one canonical form: EXIF orientation
applied, RGB, JPEG. A photo that already is an upright RGB JPEG is stored byte for byte (no
second lossy compression); anything else (rotated by EXIF, PNG, WebP, HEIC, CMYK, alpha) is
re-encoded as JPEG quality 95. The content hash is the sha256 of the stored bytes.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

import imagehash
import numpy as np
import pillow_heif
from PIL import Image, UnidentifiedImageError

from mushroom_common import imaging

pillow_heif.register_heif_opener()

JPEG_QUALITY = 95
EXIF_ORIENTATION_TAG = 0x0112
PHASH_BITS = 64
# A hostile or broken file cannot make us allocate more than this many pixels.
MAX_PIXELS = 64_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


class InvalidImageError(ValueError):
    """The bytes are not an image we can decode."""


@dataclass(frozen=True)
class StoredPhoto:
    """A normalised photo ready to store."""

    data: bytes
    content_hash: str
    width: int
    height: int
    reencoded: bool


@dataclass(frozen=True)
class PhotoInfo:
    """What build needs to know about one stored photo."""

    width: int
    height: int
    mode: str
    upright: bool
    phash: int


def sha256_hex(data: bytes) -> str:
    """Hex sha256 of the bytes."""
    return hashlib.sha256(data).hexdigest()


def _open(data: bytes, draft_side: int | None = None) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if draft_side is not None and image.format == "JPEG":
                # Decode at a reduced scale (still the whole file, so truncation is caught).
                image.draft("RGB", (draft_side, draft_side))
            image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InvalidImageError(f"cannot decode image: {exc}") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidImageError(f"image too large: {exc}") from exc
    return image


def _size_and_mode(data: bytes) -> tuple[int, int, str]:
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.width, image.height, image.mode
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InvalidImageError(f"cannot decode image: {exc}") from exc


def _orientation(image: Image.Image) -> int:
    value = image.getexif().get(EXIF_ORIENTATION_TAG, 1)
    return int(value) if isinstance(value, int) else 1


def normalise_photo(data: bytes, *, force_reencode: bool = False) -> StoredPhoto:
    """Return the canonical stored form of a photo.

    Args:
        data: the photo's bytes as downloaded or read (JPEG, PNG, WebP, HEIC, ...).
        force_reencode: re-encode even an upright RGB JPEG (drops every metadata field,
            GPS included; used for photos people shared with us).

    Returns:
        The bytes to store (upright RGB JPEG), their sha256 and the pixel size.

    Raises:
        InvalidImageError: the bytes do not decode as an image.
    """
    image = _open(data)
    upright = _orientation(image) == 1
    if image.format == "JPEG" and image.mode == "RGB" and upright and not force_reencode:
        return StoredPhoto(data, sha256_hex(data), image.width, image.height, reencoded=False)
    rgb = imaging.to_rgb(imaging.upright(image, _orientation(image)))
    buffer = io.BytesIO()
    rgb.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    stored = buffer.getvalue()
    return StoredPhoto(stored, sha256_hex(stored), rgb.width, rgb.height, reencoded=True)


def analyse_photo(data: bytes) -> PhotoInfo:
    """Decode a stored photo and compute its 64-bit perceptual hash (pHash).

    Large JPEGs are decoded at a reduced scale (at least 256 px), which is plenty for a 32x32
    pHash and several times faster; the reported size is the stored photo's full size.

    Raises:
        InvalidImageError: the bytes do not decode as an image.
    """
    width, height, mode = _size_and_mode(data)
    image = _open(data, draft_side=256)
    upright = _orientation(image) == 1
    phash = imagehash.phash(imaging.to_rgb(image))
    return PhotoInfo(width, height, mode, upright, phash_to_int(phash))


def phash_to_int(value: imagehash.ImageHash) -> int:
    """Pack an 8x8 ImageHash into a 64-bit integer."""
    bits = np.asarray(value.hash, dtype=np.uint8).flatten()
    return int("".join(str(int(b)) for b in bits), 2)


def phash_hex(value: int) -> str:
    """A 64-bit pHash as 16 hex digits."""
    return f"{value:016x}"


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two hashes."""
    return (a ^ b).bit_count()


def near_pairs(
    hashes: list[int], max_distance: int, chunk: int = 2048
) -> list[tuple[int, int, int]]:
    """Every pair (i, j, distance) with i < j whose Hamming distance is at most max_distance.

    Vectorised in chunks, so tens of thousands of photos take seconds, not an O(n^2) Python loop.
    """
    if len(hashes) < 2:
        return []
    values = np.array(hashes, dtype=np.uint64)
    pairs: list[tuple[int, int, int]] = []
    for start in range(0, len(values), chunk):
        block = values[start : start + chunk]
        distances = np.bitwise_count(block[:, None] ^ values[None, :])
        rows, cols = np.nonzero(distances <= max_distance)
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
            i = start + r
            if i < c:
                pairs.append((i, c, int(distances[r, c])))
    return pairs
