"""Photo decoding in the API: the budgets and limits around the one photo path.

The pixels come from `mushroom_common.imaging` (open -> plan -> decode -> RGB), the same code
training and evaluation use; this module only decides whether, when and for how long a photo
may be decoded:

- from the header, before any pixel: a supported format, at most `max_pixels`, a shorter side
  of at least `min_side`, at most `max_scans` JPEG scans (a progressive JPEG refines the whole
  image once per scan: a few hundred scans in 480 KB is a CPU bomb), and the decoder's real
  peak memory (`DecodePlan.peak_bytes`: a progressive JPEG's full-size coefficients, WebP's and
  HEIC's full-size buffers) under the per-request budget;
- while decoding: a decode slot of the worker (at most `slots` decodes use CPU at once, others
  wait), its share of the worker's decode memory, a CPU-time limit and a wall-clock deadline.
  The decoder reads the photo a block at a time and checks between blocks, so a decode past its
  limits, or whose request was cancelled, stops there instead of running on after the client
  has gone.

Every refusal is a domain error (`ImageError`, a `ServiceError`); routes/errors.py maps them to
HTTP statuses.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TypeVar

import anyio.to_thread
import pillow_heif
from PIL import Image, ImageFile, UnidentifiedImageError

from mushroom_api.services.errors import ServiceError
from mushroom_common.imaging import (
    ABANDONABLE_BLOCK_BYTES,
    JPEG_FORMATS,
    Abandonable,
    DecodePlan,
    decode_planned,
    open_image,
    plan_decode,
)

pillow_heif.register_heif_opener()

SUPPORTED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "HEIF", "HEIC"})
DEFAULT_DECODE_BUDGET_BYTES = 128 * 1024 * 1024
# Cameras, phones and browsers write at most about 10 scans (libjpeg's progressive default);
# each scan decodes the whole image again.
DEFAULT_MAX_SCANS = 32
# CPU seconds one decode may take: a 40-megapixel PNG or 24-megapixel WebP takes under 1 s here.
DEFAULT_DECODE_CPU_S = 3.0
# Wall-clock seconds a decode may run (a busy machine gives it less than a core): past it, 503.
DEFAULT_DECODE_WALL_S = 10.0
# Decodes one worker runs at once (a pod has 2 CPUs); the others wait for a slot.
DEFAULT_DECODE_SLOTS = 2
_T = TypeVar("_T")


class ImageError(ServiceError):
    """A photo the API cannot use (routes map each kind to its status)."""


class UnsupportedImageError(ImageError):
    """Not an image, or an image format the API does not take."""


class UndecodableImageError(ImageError):
    """An image of a supported format that cannot be decoded."""


class TooManyPixelsError(ImageError):
    """More pixels than the limit, or more decoding memory than one photo may take."""


class TooSmallImageError(ImageError):
    """Fewer pixels on the shorter side than anyone can identify a mushroom from."""


class TooMuchDecodeWorkError(ImageError):
    """A photo whose decode takes too much CPU: too many JPEG scans, or past the CPU limit."""


class DecoderBusyError(ImageError):
    """Decoding slots or memory are taken by other requests for longer than a request waits."""

    retry_after_s = 2


class DecodeAbandonedError(ImageError):
    """The decode was stopped because its request was cancelled (the client went away)."""


@dataclass
class DecodeLimits:
    """Limits of one decode: the JPEG scan count and the CPU seconds of its thread."""

    max_scans: int = DEFAULT_MAX_SCANS
    cpu_s: float = DEFAULT_DECODE_CPU_S
    wall_s: float = DEFAULT_DECODE_WALL_S


class DecodeMemory:
    """The worker's decoding resources: decode slots (CPU) and decoded-pixel bytes (memory).

    A decode holds one slot and its estimated peak bytes while it runs; one that cannot get both
    within `wait_s` is refused as busy (503), so one client's photos cannot queue the worker up.
    """

    def __init__(self, total: int, wait_s: float = 10.0, slots: int = DEFAULT_DECODE_SLOTS) -> None:
        self.total = total
        self.wait_s = wait_s
        self.slots = slots
        self.in_use = 0
        self.running = 0
        self._free = threading.Condition()

    def resize(self, total: int, slots: int | None = None) -> None:
        """Change the total bytes (and the slots); the app sets them from its settings."""
        with self._free:
            self.total = total
            if slots is not None:
                self.slots = slots
            self._free.notify_all()

    @contextmanager
    def hold(self, amount: int) -> Iterator[None]:
        """Hold a slot and `amount` bytes while decoding; DecoderBusyError after `wait_s`."""
        amount = min(amount, self.total)
        with self._free:
            if not self._free.wait_for(
                lambda: self.in_use + amount <= self.total and self.running < self.slots,
                self.wait_s,
            ):
                raise DecoderBusyError(
                    "The server is busy decoding other photos; please try again in a moment."
                )
            self.in_use += amount
            self.running += 1
        try:
            yield
        finally:
            with self._free:
                self.in_use -= amount
                self.running -= 1
                self._free.notify_all()


DECODE_MEMORY = DecodeMemory(256 * 1024 * 1024)
DECODE_LIMITS = DecodeLimits()
# Set while a request's decode runs in a worker thread (see `abandonable`): set = stop now.
_CANCELLED: ContextVar[threading.Event | None] = ContextVar("decode_cancelled", default=None)


async def abandonable(function: Callable[..., _T], *args: object) -> _T:
    """Run `function(*args)` in a worker thread; if the awaiting task is cancelled (its request
    is gone or past its deadline), the task goes on at once and a decode inside the thread stops
    at its next block (Starlette's run_in_threadpool would wait for the thread to finish)."""
    cancelled = threading.Event()

    def run() -> _T:
        token = _CANCELLED.set(cancelled)
        try:
            return function(*args)
        finally:
            _CANCELLED.reset(token)

    try:
        return await anyio.to_thread.run_sync(run, abandon_on_cancel=True)
    except BaseException:
        # Cancelled (asyncio or an anyio cancel scope): stop the decode where it is.
        cancelled.set()
        raise


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
    limits: DecodeLimits = DECODE_LIMITS,
) -> DecodedPhoto:
    """Decode a photo to upright RGB, refusing what is not a supported, sane image.

    Args:
        data: the uploaded bytes.
        max_pixels: largest width x height accepted, checked from the header before decoding.
        target_size: (width, height) the photo will be resized to; the decoded image is reduced
            (JPEG: draft mode; others: a box filter right after decoding) to the smallest size
            whose shorter side still covers the longer side of this.
        min_side: smallest accepted shorter side, in pixels.
        budget_bytes: most decoding memory this one photo may take.
        memory: the slots and bytes all concurrent decodes of the worker share.
        limits: the JPEG scan limit, and the CPU and wall-clock limits of one decode.

    Returns:
        The decoded photo.
    """
    if not data:
        raise UndecodableImageError("The uploaded file is empty.")
    stream = Abandonable(data)
    image = open_photo(stream)
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
        # JPEG: decode at 1/2, 1/4 or 1/8 scale while that still covers the model's input (the
        # demo model's test top-1 is the same as with a full decode; benchmarks/RESULTS.md).
        plan = plan_decode(image, side, data)
        if plan.scans > limits.max_scans:
            raise TooMuchDecodeWorkError(
                f"This JPEG has {plan.scans} scans; at most {limits.max_scans} are accepted "
                "(each scan decodes the whole image again): save it as a baseline JPEG."
            )
        if plan.peak_bytes > budget_bytes:
            raise TooManyPixelsError(_over_budget_message(plan, budget_bytes))
        with memory.hold(plan.peak_bytes):
            if plan.source_format in JPEG_FORMATS and isinstance(image, ImageFile.ImageFile):
                image.decodermaxblock = ABANDONABLE_BLOCK_BYTES
            stream.arm(_stop_check(limits, _CANCELLED.get()))
            rgb = decode_planned(image, side)
    except ImageError:
        raise
    except (Image.DecompressionBombError, MemoryError) as exc:
        raise TooManyPixelsError(_too_many_pixels_message(max_pixels)) from exc
    except (OSError, ValueError, SyntaxError, EOFError, TypeError) as exc:
        raise UndecodableImageError(
            "The photo could not be decoded; it may be truncated or damaged."
        ) from exc
    return DecodedPhoto(image=rgb, source_format=plan.source_format, source_size=(width, height))


def _stop_check(limits: DecodeLimits, cancelled: threading.Event | None) -> Callable[[], None]:
    """The check run between blocks of a decode: its request gone, past its CPU time (the
    photo's fault: 422) or past its wall-clock deadline (the server's: 503)."""
    started_cpu = time.thread_time()
    deadline = time.monotonic() + limits.wall_s

    def check() -> None:
        if cancelled is not None and cancelled.is_set():
            raise DecodeAbandonedError("The request was cancelled while its photo was decoded.")
        used = time.thread_time() - started_cpu
        if used > limits.cpu_s:
            raise TooMuchDecodeWorkError(
                f"This photo takes too much work to decode (stopped after {used:.1f} s of CPU; "
                f"the limit is {limits.cpu_s:g} s): send a smaller photo or a baseline JPEG."
            )
        if time.monotonic() > deadline:
            raise DecoderBusyError(
                "The server is too busy to decode this photo in time; please try again in a moment."
            )

    return check


def open_photo(data: bytes | io.BytesIO) -> Image.Image:
    """Open (not decode) a photo of a supported format; errors say what is wrong with it."""
    if isinstance(data, bytes) and not data:
        raise UndecodableImageError("The uploaded file is empty.")
    try:
        image = open_image(data)
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
        image.close()
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
        budget_bytes: most decoding memory the photo may take.

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


def _too_many_pixels_message(max_pixels: int) -> str:
    return (
        f"The photo has too many pixels (the limit is {max_pixels / 1e6:.0f} megapixels); "
        "send a smaller photo."
    )


def _over_budget_message(plan: DecodePlan, budget_bytes: int) -> str:
    pixels = plan.source_size[0] * plan.source_size[1]
    limit = budget_bytes / (plan.peak_bytes / pixels) / 1e6
    return (
        f"This {plan.source_format} photo is too large to decode "
        f"({pixels / 1e6:.0f} megapixels; at most {limit:.0f} for this kind of image): "
        "send it as a baseline JPEG or smaller."
    )
