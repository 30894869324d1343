"""Photos of every kind the one photo path must handle, made in memory from one picture.

Tests send each of these through the API and through training's decode and compare the results
bit for bit: RGB, RGBA, palette with and without transparency, 16-bit grey, greyscale with and
without alpha, CMYK JPEG, progressive JPEG, lossless WebP with alpha and EXIF-rotated JPEGs.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from mushroom_common.imaging import jpeg_scan_spans

__all__ = ["sample_photos", "scan_bomb"]


def _picture(width: int, height: int, seed: int) -> np.ndarray:
    """A smooth colourful picture with some grain (uint8 RGB)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(6, 8, 3)).astype(np.uint8)
    smooth = Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC)
    grain = rng.normal(0, 12, size=(height, width, 3))
    return np.clip(np.asarray(smooth, dtype=np.float64) + grain, 0, 255).astype(np.uint8)


def _save(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def sample_photos(width: int = 600, height: int = 450, seed: int = 0) -> dict[str, bytes]:
    """One photo of each kind, named by kind.

    Args:
        width: the photos' width (EXIF-rotated ones are stored turned, so upright they are this).
        height: the photos' height.
        seed: picks the picture.

    Returns:
        kind -> encoded bytes.
    """
    pixels = _picture(width, height, seed)
    rgb = Image.fromarray(pixels)
    ramp = np.linspace(0, 255, width, dtype=np.float64)[None, :].repeat(height, axis=0)
    alpha = Image.fromarray(ramp.astype(np.uint8))
    rgba = rgb.copy()
    rgba.putalpha(alpha)
    grey = rgb.convert("L")
    grey_alpha = grey.copy()
    grey_alpha.putalpha(alpha)
    palette = rgb.quantize(colors=64, method=Image.Quantize.MEDIANCUT)
    # 16-bit grey using the whole range (Pillow's own conversion would clip it at 255).
    deep = (np.asarray(grey, dtype=np.uint32) * 257).astype(np.uint16)
    sixteen = Image.fromarray(deep)
    exif_right = Image.Exif()
    exif_right[0x0112] = 6  # stored turned left: rotate 270 to make upright
    exif_down = Image.Exif()
    exif_down[0x0112] = 3
    return {
        "RGB PNG": _save(rgb, "PNG"),
        "RGB JPEG": _save(rgb, "JPEG", quality=90),
        "progressive JPEG": _save(rgb, "JPEG", quality=90, progressive=True),
        "RGBA PNG": _save(rgba, "PNG"),
        "palette PNG": _save(palette, "PNG"),
        "palette PNG with transparency": _save(palette, "PNG", transparency=3),
        "16-bit grey PNG": _save(sixteen, "PNG"),
        "grey PNG": _save(grey, "PNG"),
        "grey JPEG": _save(grey, "JPEG", quality=90),
        "grey+alpha PNG": _save(grey_alpha, "PNG"),
        "CMYK JPEG": _save(rgb.convert("CMYK"), "JPEG", quality=90),
        "RGBA WebP": _save(rgba, "WEBP", lossless=True),
        "EXIF-rotated JPEG (6)": _save(
            rgb.transpose(Image.Transpose.ROTATE_90), "JPEG", quality=90, exif=exif_right
        ),
        "EXIF-rotated JPEG (3)": _save(
            rgb.transpose(Image.Transpose.ROTATE_180), "JPEG", quality=90, exif=exif_down
        ),
    }


def scan_bomb(progressive_jpeg: bytes, repeats: int, scan: int = 5) -> bytes:
    """A progressive JPEG with one of its scans repeated `repeats` more times (a "scan bomb").

    Every repeated scan decodes the whole image again, so the decode CPU grows with `repeats`
    while the file grows by only that scan's size each time. The default, scan 5 of libjpeg's
    progression (the first refinement of the brightness coefficients), is a few dozen bytes for
    a smooth picture and costs about 12 ms per repeat for 4000x4000 pixels.
    """
    spans = jpeg_scan_spans(progressive_jpeg)
    if len(spans) <= scan:
        raise ValueError(f"the JPEG has {len(spans)} scans, not a scan {scan}")
    start, end = spans[scan]
    return progressive_jpeg[:end] + progressive_jpeg[start:end] * repeats + progressive_jpeg[end:]
