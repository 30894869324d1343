"""The API decodes through the one photo path (mushroom_common.imaging), bit for bit with what
training and evaluation decode, for every kind of photo; its own part is the limits around it."""

from __future__ import annotations

import io
import threading
import time

import anyio
import numpy as np
import pytest
from PIL import Image

from mushroom_api.routes.errors import status_for
from mushroom_api.services import imaging
from mushroom_api.services.errors import ServiceError
from mushroom_api.services.imaging import (
    DecodeAbandonedError,
    DecodeLimits,
    DecodeMemory,
    DecoderBusyError,
    ImageError,
    TooManyPixelsError,
    TooMuchDecodeWorkError,
    UnsupportedImageError,
    abandonable,
    decode_photo,
    strip_metadata,
)
from mushroom_common.imaging import decode_for_model, resize_for_model
from mushroom_common.imaging_samples import sample_photos, scan_bomb

SIZE = (224, 224)


@pytest.fixture(scope="module")
def photos() -> dict[str, bytes]:
    return sample_photos()


def test_every_kind_decodes_bit_for_bit_like_training(photos: dict[str, bytes]) -> None:
    for kind, data in photos.items():
        served = decode_photo(data, 10**8, SIZE).image
        trained = decode_for_model(data, max(SIZE))
        assert served.mode == trained.mode == "RGB", kind
        assert served.size == trained.size, kind
        assert served.tobytes() == trained.tobytes(), kind
        assert np.array_equal(resize_for_model(served, *SIZE), resize_for_model(trained, *SIZE)), (
            kind
        )


def test_photo_errors_are_service_errors_mapped_by_routes() -> None:
    assert issubclass(ImageError, ServiceError)
    assert not hasattr(ImageError("x"), "status_code")
    assert status_for(UnsupportedImageError("no")) == 415
    assert status_for(TooMuchDecodeWorkError("scans")) == 422
    assert status_for(TooManyPixelsError("big")) == 422
    assert status_for(DecoderBusyError("busy")) == 503
    assert status_for(DecodeAbandonedError("gone")) == 503


def test_too_many_scans_are_refused_before_decoding(photos: dict[str, bytes]) -> None:
    bomb = scan_bomb(photos["progressive JPEG"], 40)
    with pytest.raises(TooMuchDecodeWorkError, match="This JPEG has 50 scans; at most 32"):
        decode_photo(bomb, 10**8, SIZE)
    allowed = scan_bomb(photos["progressive JPEG"], 20)
    assert decode_photo(allowed, 10**8, SIZE).image.size == (300, 225)


def test_a_decode_past_its_cpu_limit_is_stopped(photos: dict[str, bytes]) -> None:
    bomb = scan_bomb(photos["progressive JPEG"], 30)
    started = time.thread_time()
    with pytest.raises(TooMuchDecodeWorkError, match="too much work to decode"):
        decode_photo(bomb, 10**8, SIZE, limits=DecodeLimits(max_scans=1000, cpu_s=0.0001))
    assert time.thread_time() - started < 1.0


def test_a_decode_past_its_wall_clock_deadline_is_refused_as_busy(
    photos: dict[str, bytes],
) -> None:
    bomb = scan_bomb(photos["progressive JPEG"], 20)
    with pytest.raises(DecoderBusyError, match="too busy to decode this photo in time"):
        decode_photo(bomb, 10**8, SIZE, limits=DecodeLimits(wall_s=0.0))
    assert status_for(DecoderBusyError("late")) == 503


def test_the_budget_counts_what_the_decoder_allocates(photos: dict[str, bytes]) -> None:
    # 600x450 lossless WebP: about 16 bytes a pixel (4.3 MB), not Pillow's 4 (1.1 MB).
    with pytest.raises(TooManyPixelsError, match="too large to decode"):
        decode_photo(photos["RGBA WebP"], 10**8, SIZE, budget_bytes=3 * 1024 * 1024)
    assert decode_photo(photos["RGB PNG"], 10**8, SIZE, budget_bytes=3 * 1024 * 1024)


def test_decode_slots_bound_concurrent_decodes(photos: dict[str, bytes]) -> None:
    memory = DecodeMemory(10**9, wait_s=0.2, slots=1)
    with memory.hold(10), pytest.raises(DecoderBusyError):
        decode_photo(photos["RGB PNG"], 10**8, SIZE, memory=memory)
    assert decode_photo(photos["RGB PNG"], 10**8, SIZE, memory=memory)


def test_a_cancelled_request_abandons_its_decode(photos: dict[str, bytes]) -> None:
    bomb = scan_bomb(photos["progressive JPEG"], 20)
    entered = threading.Event()
    outcome: list[BaseException] = []

    def slow_decode() -> None:
        entered.set()
        time.sleep(0.3)  # the request is cancelled meanwhile
        try:
            decode_photo(bomb, 10**8, SIZE)
        except ImageError as exc:
            outcome.append(exc)

    async def cancel_it() -> float:
        started = time.monotonic()
        # A request deadline as middleware sets one: an anyio cancel scope.
        with anyio.move_on_after(0.1):
            await abandonable(slow_decode)
        return time.monotonic() - started

    waited = anyio.run(cancel_it)
    assert waited < 0.3, "the request went on without waiting for the decode thread"
    deadline = time.monotonic() + 10
    while not outcome and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(outcome) == 1
    assert isinstance(outcome[0], DecodeAbandonedError)
    assert imaging.DECODE_MEMORY.in_use == 0


def test_a_12_megapixel_phone_jpeg_is_stored_for_feedback_under_the_default_budget() -> None:
    image = Image.new("RGB", (4032, 3024), (90, 120, 60))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG")
    stored = strip_metadata(buffer.getvalue(), 40_000_000)
    with Image.open(io.BytesIO(stored)) as kept:
        assert kept.size == (4032, 3024)
