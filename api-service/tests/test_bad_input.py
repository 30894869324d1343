"""Every awkward upload gets its documented status, a sentence in `detail`, and never a 500."""

from __future__ import annotations

import io
import struct
import zlib

import httpx
import numpy as np
import pillow_heif
import pytest
from fastapi.testclient import TestClient
from mushroom_api_testkit import GREEN, RED, PhotoFactory
from PIL import Image

from mushroom_api.config import Settings
from mushroom_api.main import create_app
from mushroom_api.services.imaging import decode_photo


def _post(
    client: TestClient, data: bytes, name: str = "photo.jpg", mime: str = "image/jpeg"
) -> httpx.Response:
    return client.post("/predict", files={"file": (name, data, mime)})


def noise_jpeg(size: tuple[int, int] = (320, 240)) -> bytes:
    """A JPEG that does not compress to nothing (so truncating it cuts real scan data)."""
    pixels = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def huge_bilevel_png(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of width x height, all black, streamed through zlib: ~100 KB on disk."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        body = kind + payload
        return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes((width + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(9)
    parts = [compressor.compress(row * 1000) for _ in range(height // 1000)]
    parts.append(compressor.compress(row * (height % 1000)))
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", b"".join(parts))
        + chunk(b"IEND", b"")
    )


def exif_rotated_jpeg() -> bytes:
    """A 128x64 landscape JPEG whose EXIF says 'rotate 90 degrees clockwise to view'."""
    image = Image.new("RGB", (128, 64), RED)
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif.tobytes())
    return buffer.getvalue()


def heic_photo() -> bytes:
    """A HEIC photo written by pillow-heif."""
    buffer = io.BytesIO()
    pillow_heif.from_pillow(Image.new("RGB", (80, 64), GREEN)).save(buffer, quality=80)
    return buffer.getvalue()


def sixteen_bit_png() -> bytes:
    """A 16-bit greyscale PNG."""
    ramp = np.tile(np.linspace(0, 65535, 64, dtype=np.uint16), (64, 1))
    buffer = io.BytesIO()
    Image.fromarray(ramp).save(buffer, format="PNG")
    return buffer.getvalue()


def cmyk_jpeg() -> bytes:
    """A CMYK JPEG (as print workflows write them)."""
    buffer = io.BytesIO()
    Image.new("CMYK", (80, 64), (200, 0, 200, 0)).save(buffer, format="JPEG")
    return buffer.getvalue()


def test_empty_file_is_422(client: TestClient) -> None:
    response = _post(client, b"")
    assert response.status_code == 422
    assert response.json()["detail"] == "The uploaded file is empty."


def test_truncated_jpeg_is_422(client: TestClient) -> None:
    data = noise_jpeg()
    response = _post(client, data[: len(data) // 2])
    assert response.status_code == 422
    assert "truncated" in response.json()["detail"]


def test_text_file_named_jpg_is_415(client: TestClient) -> None:
    response = _post(client, b"these are my notes, not a photo\n" * 10, "notes.jpg")
    assert response.status_code == 415
    assert "supported format" in response.json()["detail"]


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
def test_other_image_formats_are_415(client: TestClient, photo: PhotoFactory, fmt: str) -> None:
    response = _post(client, photo(GREEN, fmt=fmt), f"photo.{fmt.lower()}", "image/x")
    assert response.status_code == 415
    assert "not supported" in response.json()["detail"]


def test_20_mb_upload_is_413_before_reading(client: TestClient) -> None:
    response = _post(client, bytes(20 * 1024 * 1024))
    assert response.status_code == 413
    assert response.json()["detail"] == "The photo is too large: the limit is 15 MB."


def test_30000_square_png_is_422_without_decoding(client: TestClient) -> None:
    data = huge_bilevel_png(30000, 30000)
    assert len(data) < 1_000_000
    response = _post(client, data, "bomb.png", "image/png")
    assert response.status_code == 422
    assert "too many pixels" in response.json()["detail"]


def test_pixel_limit_is_a_setting(settings: Settings, photo: PhotoFactory) -> None:
    small = settings.model_copy(update={"max_pixels": 1000})
    with TestClient(create_app(small)) as client:
        response = _post(client, photo(GREEN, size=(40, 30)))
    assert response.status_code == 422
    assert "megapixels" in response.json()["detail"]


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (cmyk_jpeg(), "cmyk.jpg"),
        (sixteen_bit_png(), "deep.png"),
        (heic_photo(), "photo.heic"),
        (exif_rotated_jpeg(), "rotated.jpg"),
    ],
    ids=["cmyk-jpeg", "16-bit-png", "heic", "exif-rotated"],
)
def test_awkward_but_valid_photos_are_answered(client: TestClient, data: bytes, name: str) -> None:
    response = _post(client, data, name, "application/octet-stream")
    assert response.status_code == 200, response.text
    assert response.json()["verdict"] in {"dangerous", "edible", "uncertain", "not_a_mushroom"}


def test_heic_is_decoded_to_its_colour(client: TestClient) -> None:
    body = _post(client, heic_photo(), "photo.heic", "image/heic").json()
    assert body["predictions"][0]["species"] == "suillus_luteus"


def test_cmyk_jpeg_is_converted_to_rgb() -> None:
    decoded = decode_photo(cmyk_jpeg(), 10**8, (32, 32))
    red, green, blue = np.asarray(decoded.image)[10, 10]
    assert decoded.image.mode == "RGB"
    assert red < 100
    assert green > 200
    assert blue < 100


def test_sixteen_bit_png_keeps_its_range() -> None:
    decoded = decode_photo(sixteen_bit_png(), 10**8, (64, 64))
    left = decoded.image.getpixel((0, 0))
    right = decoded.image.getpixel((63, 0))
    assert decoded.image.mode == "RGB"
    assert left == (0, 0, 0)
    assert right == (255, 255, 255)


def test_exif_orientation_is_honoured() -> None:
    decoded = decode_photo(exif_rotated_jpeg(), 10**8, (32, 32))
    assert decoded.source_size == (128, 64)
    assert decoded.image.size == (32, 64)


def test_jpeg_draft_mode_decodes_big_photos_at_reduced_scale() -> None:
    decoded = decode_photo(noise_jpeg((2048, 1536)), 10**8, (224, 224))
    # Draft mode picks the smallest 1/2^n scale whose shorter side still covers 224 pixels:
    # 1/8 would leave 192, so 1/4.
    assert decoded.image.size == (512, 384)


def test_png_with_alpha_is_composited_on_white() -> None:
    buffer = io.BytesIO()
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(buffer, format="PNG")
    decoded = decode_photo(buffer.getvalue(), 10**8, (32, 32))
    assert decoded.image.getpixel((0, 0)) == (255, 255, 255)
