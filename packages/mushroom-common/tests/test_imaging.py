"""The one photo path: one RGB policy for every mode, JPEG scans read from markers, and a decode
plan whose memory estimate is what the decoder allocates."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from mushroom_common.imaging import (
    Abandonable,
    decode_for_model,
    decode_planned,
    jpeg_scan_count,
    open_image,
    plan_decode,
)
from mushroom_common.imaging_samples import sample_photos, scan_bomb

SIDE = 224


@pytest.fixture(scope="module")
def photos() -> dict[str, bytes]:
    return sample_photos()


def _pixels(data: bytes, side: int | None = SIDE) -> np.ndarray:
    return np.asarray(decode_for_model(data, side), dtype=np.int16)


def _png(image: Image.Image, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **options)
    return buffer.getvalue()


def test_every_kind_decodes_to_upright_rgb_of_the_same_size(photos: dict[str, bytes]) -> None:
    for kind, data in photos.items():
        image = decode_for_model(data, SIDE)
        assert image.mode == "RGB", kind
        assert image.size == (300, 225), kind
    full = decode_for_model(photos["EXIF-rotated JPEG (6)"], None)
    assert (full.mode, full.size) == ("RGB", (600, 450))


def test_exif_rotated_photos_look_like_the_upright_one(photos: dict[str, bytes]) -> None:
    upright = _pixels(photos["RGB JPEG"])
    for kind in ("EXIF-rotated JPEG (6)", "EXIF-rotated JPEG (3)"):
        assert np.abs(_pixels(photos[kind]) - upright).mean() < 6, kind


def test_alpha_is_composited_on_white_in_every_mode() -> None:
    clear = Image.new("RGBA", (128, 96), (200, 10, 10, 0))
    assert (_pixels(_png(clear)) == 255).all()
    grey_alpha = Image.new("LA", (128, 96), (30, 0))
    assert (_pixels(_png(grey_alpha)) == 255).all()
    palette = Image.new("P", (128, 96), 1)
    palette.putpalette([0, 0, 0, 200, 10, 10] + [0] * 762)
    assert (_pixels(_png(palette, transparency=1)) == 255).all()
    assert (_pixels(_png(palette))[..., 0] == 200).all()


def test_sixteen_bit_grey_is_scaled_not_clipped(photos: dict[str, bytes]) -> None:
    deep = _pixels(photos["16-bit grey PNG"])
    grey = _pixels(photos["grey PNG"])
    assert np.abs(deep - grey).max() <= 1
    assert deep.max() > 200
    assert deep.min() < 50


def test_cmyk_and_greyscale_jpegs_keep_their_picture(photos: dict[str, bytes]) -> None:
    rgb = _pixels(photos["RGB JPEG"])
    assert np.abs(_pixels(photos["CMYK JPEG"]) - rgb).mean() < 4
    grey = _pixels(photos["grey JPEG"])
    assert (grey[..., 0] == grey[..., 1]).all()
    assert (grey[..., 1] == grey[..., 2]).all()


def test_scans_are_counted_from_markers(photos: dict[str, bytes]) -> None:
    assert jpeg_scan_count(photos["RGB JPEG"]) == 1
    assert jpeg_scan_count(photos["progressive JPEG"]) == 10
    assert jpeg_scan_count(photos["grey JPEG"]) == 1
    assert jpeg_scan_count(scan_bomb(photos["progressive JPEG"], 250)) == 260
    assert jpeg_scan_count(photos["RGB PNG"]) == 0
    assert jpeg_scan_count(photos["progressive JPEG"][:5000]) >= 1
    assert jpeg_scan_count(b"\xff\xd8\xff") == 0


def test_a_scan_bomb_still_decodes_the_same_picture(photos: dict[str, bytes]) -> None:
    bomb = scan_bomb(photos["progressive JPEG"], 20)
    assert np.abs(_pixels(bomb) - _pixels(photos["progressive JPEG"])).mean() < 6


@pytest.mark.parametrize(("subsampling", "per_pixel"), [(0, 6.0), (2, 3.0)])
def test_a_progressive_jpeg_is_priced_for_its_full_size_coefficients(
    subsampling: int, per_pixel: float
) -> None:
    image = Image.linear_gradient("L").resize((2048, 1536)).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", progressive=True, subsampling=subsampling)
    with open_image(buffer.getvalue()) as opened:
        plan = plan_decode(opened, SIDE, buffer.getvalue())
    assert plan.decoded_size == (512, 384), "draft mode decodes at 1/4 (1/8 < 224 pixels)"
    coefficients = 2048 * 1536 * per_pixel
    assert coefficients <= plan.peak_bytes <= coefficients + 16 * 512 * 384
    baseline = io.BytesIO()
    image.save(baseline, format="JPEG", subsampling=subsampling)
    with open_image(baseline.getvalue()) as opened:
        assert plan_decode(opened, SIDE).peak_bytes == 8 * 512 * 384, "the draft output, turned"


def test_formats_without_draft_are_priced_for_the_decoders_buffers(
    photos: dict[str, bytes],
) -> None:
    pixels = 600 * 450
    expected = {"RGBA WebP": 16, "RGB PNG": 4, "palette PNG": 5, "16-bit grey PNG": 2}
    for kind, per_pixel in expected.items():
        with open_image(photos[kind]) as image:
            plan = plan_decode(image, SIDE)
        assert plan.peak_bytes >= per_pixel * pixels, kind
        assert plan.peak_bytes <= per_pixel * pixels + 4 * 1024 * 1024 + 20 * 300 * 225, kind


def test_a_full_size_rgb_jpeg_is_priced_for_its_pixels_and_one_upright_copy() -> None:
    """A 12 MP phone JPEG decoded whole (the feedback photo's stored copy) fits the budget."""
    image = Image.new("RGB", (4032, 3024), (90, 120, 60))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG")
    with open_image(buffer.getvalue()) as opened:
        plan = plan_decode(opened, 4096)
    assert plan.decoded_size == (4032, 3024)
    assert plan.peak_bytes == 8 * 4032 * 3024


def test_an_armed_reader_abandons_the_decode(photos: dict[str, bytes]) -> None:
    class StopError(Exception):
        pass

    def stop() -> None:
        raise StopError

    stream = Abandonable(photos["progressive JPEG"])
    image = open_image(stream)
    plan_decode(image, SIDE)
    stream.arm(stop)
    with pytest.raises(StopError):
        decode_planned(image, SIDE)
