"""What the benchmark scripts share: statistics, tables, JSON reports, machine facts, test photos.

Nothing here times anything by itself; the scripts compare alternatives within one run because the
machines are noisy.
"""

from __future__ import annotations

import io
import json
import math
import os
import platform
import re
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mushroom_common.store import PredictionRecord

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS_DIR = REPO_ROOT / "benchmarks"
RESULTS_DIR = BENCHMARKS_DIR / "results"
DEMO_BUNDLE_DIR = REPO_ROOT / "models" / "demo"
SHARED_DATA_DIR = REPO_ROOT.parent / "shared" / "data"

# The frontend sends photos downscaled to this long side at this JPEG quality
# (frontend-react/src/config/env.ts: VITE_UPLOAD_MAX_SIDE, VITE_UPLOAD_JPEG_QUALITY).
FRONTEND_MAX_SIDE = 1024
FRONTEND_JPEG_QUALITY = 85
CAMERA_JPEG_QUALITY = 92
PHOTO_CACHE_DIR = Path.home() / ".cache" / "mushroom-benchmarks"
PHOTO_VERSION = 1


# ----------------------------------------------------------------------------- statistics


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between order statistics.

    Same definition as numpy's default ("linear"), written out so the tests can pin it.

    Args:
        values: the samples (any order, at least one).
        q: the percentile, 0 to 100.

    Returns:
        The interpolated value.
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside 0..100")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class LatencySummary:
    """Latency percentiles in milliseconds over `count` samples."""

    count: int
    mean_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float


def summarize_latencies(seconds: Sequence[float]) -> LatencySummary:
    """Percentiles (ms) of latencies given in seconds.

    Args:
        seconds: one latency per call, in seconds.

    Returns:
        The summary.
    """
    ms = [s * 1000.0 for s in seconds]
    return LatencySummary(
        count=len(ms),
        mean_ms=sum(ms) / len(ms),
        p50_ms=percentile(ms, 50),
        p95_ms=percentile(ms, 95),
        p99_ms=percentile(ms, 99),
        max_ms=max(ms),
    )


def parse_int_list(text: str) -> list[int]:
    """`"1,8,32"` -> [1, 8, 32]: positive integers, order kept, duplicates dropped.

    Args:
        text: comma-separated integers (spaces allowed).

    Returns:
        The integers.
    """
    values: list[int] = []
    for part in text.split(","):
        if not part.strip():
            continue
        value = int(part)
        if value < 1:
            raise ValueError(f"{value} is not a positive integer")
        if value not in values:
            values.append(value)
    if not values:
        raise ValueError(f"no integers in {text!r}")
    return values


# ----------------------------------------------------------------------------- tables and reports


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (pipes, padded columns) of the rows; floats get 2 significant decimals.

    Args:
        headers: the column names.
        rows: one sequence per row, as long as `headers`.

    Returns:
        The table text, one line per row, header and separator first.
    """
    cells = [[format_cell(value) for value in row] for row in rows]
    for row in cells:
        if len(row) != len(headers):
            raise ValueError(f"row {row} has {len(row)} cells; expected {len(headers)}")
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"

    separator = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(headers), separator, *(line(row) for row in cells)])


def format_cell(value: Any) -> str:
    """One table cell: None as a dash, floats rounded for reading, everything else as text."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if abs(value) >= 100:
            return f"{value:.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    return str(value)


def timestamp(now: datetime | None = None) -> str:
    """A UTC timestamp safe in file names, e.g. 20261126T071500Z."""
    return (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def write_report(
    name: str,
    payload: dict[str, Any],
    results_dir: Path = RESULTS_DIR,
    now: datetime | None = None,
) -> Path:
    """Write `<results_dir>/<name>-<timestamp>.json` with the payload (never overwrites).

    Args:
        name: the benchmark's name (inference, api_load, train).
        payload: JSON-serialisable results; dataclasses inside are converted.
        results_dir: where reports go.
        now: the time to stamp (the current time by default).

    Returns:
        The path written.
    """
    results_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{name}-{timestamp(now)}"
    path = results_dir / f"{stem}.json"
    counter = 1
    while path.exists():
        path = results_dir / f"{stem}-{counter}.json"
        counter += 1
    document = {"benchmark": name, **payload}
    path.write_text(json.dumps(document, indent=2, default=_jsonable) + "\n", "utf-8")
    return path


def _jsonable(value: Any) -> Any:
    if hasattr(value, "__dataclass_fields__"):
        return asdict(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


# ----------------------------------------------------------------------------- the machine


@dataclass(frozen=True)
class MachineInfo:
    """What the numbers were measured on."""

    cpu_model: str
    cpu_count: int
    cpu_flags: list[str]
    memory_gib: float
    load_average: tuple[float, float, float]
    date_utc: str
    python: str
    platform: str


def parse_lscpu(text: str) -> dict[str, str]:
    """`lscpu` output as a field -> value mapping."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


INTERESTING_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8")


def machine_info() -> MachineInfo:
    """The CPU model, core count, memory, load and date of this machine."""
    try:
        lscpu = parse_lscpu(subprocess.run(["lscpu"], capture_output=True, text=True).stdout)
    except OSError:
        lscpu = {}
    flags = set(lscpu.get("Flags", "").split())
    memory_kib = 0
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        match = re.search(r"MemTotal:\s+(\d+) kB", meminfo.read_text())
        memory_kib = int(match.group(1)) if match else 0
    return MachineInfo(
        cpu_model=lscpu.get("Model name", platform.processor() or "unknown"),
        cpu_count=os.cpu_count() or 1,
        cpu_flags=[flag for flag in INTERESTING_FLAGS if flag in flags],
        memory_gib=round(memory_kib / 1024**2, 1),
        load_average=os.getloadavg(),
        date_utc=datetime.now(UTC).isoformat(timespec="seconds"),
        python=platform.python_version(),
        platform=platform.platform(),
    )


def describe_machine(info: MachineInfo) -> str:
    """One line for a table's caption."""
    load = " ".join(f"{v:.2f}" for v in info.load_average)
    flags = ",".join(info.cpu_flags) or "none of " + ",".join(INTERESTING_FLAGS)
    return (
        f"{info.cpu_model}, {info.cpu_count} cores, {info.memory_gib} GiB RAM, flags {flags}; "
        f"load {load}; {info.date_utc}"
    )


# ----------------------------------------------------------------------------- the model bundle


REGISTRY_CACHE_DIR = Path.home() / ".cache" / "mushroom-benchmarks" / "bundles"


def registry_copy(
    name: str, version: str, storage_uri: str | None, cache_dir: Path = REGISTRY_CACHE_DIR
) -> tuple[Path | None, str]:
    """The registry's copy of a bundle version (`models/<name>/<version>/` in storage).

    The repository's demo bundle leaves out its largest files (the float32 TFLite file, the
    SavedModel); the registry copy of the same version has every variant.

    Args:
        name: the bundle's name.
        version: the bundle's version.
        storage_uri: the registry's storage (None: MUSHROOM_STORAGE_URI).
        cache_dir: where a copy in remote storage is downloaded.

    Returns:
        The local folder (or None) and its URI, or why there is none.
    """
    from mushroom_common.bundle import METADATA_FILE
    from mushroom_common.registry import ModelRegistry, RegistryError
    from mushroom_common.storage import StorageError, open_storage

    try:
        registry = ModelRegistry(open_storage(storage_uri))
        uri = registry.bundle_uri(name, version)
        if not registry.has_version(name, version):
            return None, f"no registry copy at {uri}"
        local = registry.storage.local_path(registry.bundle_prefix(name, version))
        if local is None:
            local = cache_dir / name / version
            if not (local / METADATA_FILE).is_file():
                registry.download(name, version, local)
        return local, uri
    except (StorageError, RegistryError) as exc:
        return None, f"registry unavailable ({exc})"


def locate_saved_model(
    bundle_dir: Path,
    name: str,
    version: str,
    saved_model_paths: Sequence[str],
    storage_uri: str | None,
    cache_dir: Path = REGISTRY_CACHE_DIR,
) -> tuple[Path | None, str]:
    """The SavedModel of a bundle version: in the bundle folder, else in its registry copy.

    Args:
        bundle_dir: the local bundle folder.
        name: the bundle's name.
        version: the bundle's version.
        saved_model_paths: the bundle's saved_model variant paths (usually ["saved_model"]).
        storage_uri: the registry's storage (None: MUSHROOM_STORAGE_URI).
        cache_dir: where a copy in remote storage is downloaded.

    Returns:
        The folder (or None) and where it was found, or why it was not.
    """
    for rel in [*saved_model_paths, "saved_model"]:
        if (bundle_dir / rel / "saved_model.pb").is_file():
            return bundle_dir / rel, "bundle folder"
    copy, where = registry_copy(name, version, storage_uri, cache_dir)
    if copy is None:
        return None, f"not in the bundle folder; {where}"
    for rel in [*saved_model_paths, "saved_model"]:
        if (copy / rel / "saved_model.pb").is_file():
            return copy / rel, f"registry copy {where}"
    return None, f"neither the bundle folder nor its registry copy {where} has one"


# ----------------------------------------------------------------------------- test photos


def _photo_layers(width: int, height: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A smooth photo-like base (gradients, soft blobs) and unit per-pixel grain."""
    rng = np.random.default_rng(seed)
    ys = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    xs = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    channels = []
    for c in range(3):
        gradient = 60 + 120 * (0.6 * xs + 0.4 * ys) * (0.7 + 0.1 * c)
        coarse = rng.normal(0.0, 40.0, size=(12, 16)).astype(np.float32)
        blobs = np.asarray(
            Image.fromarray(coarse, mode="F").resize((width, height), Image.Resampling.BICUBIC),
            dtype=np.float32,
        )
        channels.append(gradient + blobs)
    base = np.stack(channels, axis=-1)
    grain = rng.normal(0.0, 1.0, size=(height, width, 1)).astype(np.float32)
    return base, grain


def _compose(base: np.ndarray, grain: np.ndarray, noise: float) -> Image.Image:
    pixels = np.clip(base + noise * grain, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, mode="RGB")


def synthetic_photo(width: int, height: int, seed: int, noise: float) -> Image.Image:
    """A deterministic photo-like RGB image: smooth gradients, soft blobs and grain.

    Args:
        width: pixels.
        height: pixels.
        seed: the random seed (same seed and size, same image).
        noise: standard deviation of the per-pixel grain (0..255 scale); more grain, bigger JPEG.

    Returns:
        The image.
    """
    base, grain = _photo_layers(width, height, seed)
    return _compose(base, grain, noise)


def encode_jpeg(image: Image.Image, quality: int) -> bytes:
    """JPEG bytes of an image (4:2:0, baseline, like a phone camera)."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality, subsampling=2)
    return buffer.getvalue()


def noise_jpeg(seed: int, width: int, height: int) -> bytes:
    """A photo of uniform random pixels, JPEG quality 90: the worst case for the decoder."""
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def synthetic_jpeg(
    width: int,
    height: int,
    target_bytes: int,
    quality: int = CAMERA_JPEG_QUALITY,
    seed: int = 0,
    tolerance: float = 0.1,
) -> bytes:
    """A deterministic JPEG of the given size whose file size is within `tolerance` of the target.

    The grain of `synthetic_photo` is tuned by bisection: more grain, more bytes.

    Args:
        width: pixels.
        height: pixels.
        target_bytes: the file size to hit.
        quality: JPEG quality.
        seed: the random seed.
        tolerance: accepted relative error of the size.

    Returns:
        The JPEG bytes (the closest found, even if outside the tolerance).
    """
    base, grain = _photo_layers(width, height, seed)
    low, high = 0.0, 80.0
    best = encode_jpeg(_compose(base, grain, low), quality)
    for _ in range(14):
        noise = (low + high) / 2
        data = encode_jpeg(_compose(base, grain, noise), quality)
        if abs(len(data) - target_bytes) < abs(len(best) - target_bytes):
            best = data
        if abs(len(data) - target_bytes) <= tolerance * target_bytes:
            return data
        if len(data) < target_bytes:
            low = noise
        else:
            high = noise
    return best


@dataclass(frozen=True)
class TestPhoto:
    """A named test JPEG."""

    name: str
    data: bytes
    width: int
    height: int

    @property
    def kib(self) -> float:
        return len(self.data) / 1024


def photo_from_bytes(name: str, data: bytes) -> TestPhoto:
    """Wrap JPEG bytes with their dimensions."""
    with Image.open(io.BytesIO(data)) as image:
        width, height = image.size
    return TestPhoto(name, data, width, height)


@dataclass(frozen=True)
class PhotoSpec:
    """How to generate one test JPEG."""

    width: int
    height: int
    target_bytes: int
    quality: int
    seed: int


STANDARD_PHOTOS = {
    "1MB-2000x1500": PhotoSpec(2000, 1500, 1_000_000, CAMERA_JPEG_QUALITY, 1),
    "4MB-4000x3000": PhotoSpec(4000, 3000, 4_000_000, CAMERA_JPEG_QUALITY, 2),
    "upload-1024px": PhotoSpec(1024, 768, 200_000, FRONTEND_JPEG_QUALITY, 3),
}


def standard_photos(
    cache_dir: Path | None = PHOTO_CACHE_DIR, specs: dict[str, PhotoSpec] | None = None
) -> dict[str, TestPhoto]:
    """The benchmarks' photos, generated once and cached (they are deterministic).

    - `1MB-2000x1500`: a ~1 MB camera-like JPEG (quality 92).
    - `4MB-4000x3000`: a ~4 MB 12-megapixel camera-like JPEG (quality 92).
    - `upload-1024px`: what the frontend sends, 1024x768 at quality 85, ~200 KB (a real photo
      downscaled by the browser lands at 150-250 KB).

    Args:
        cache_dir: where generated JPEGs are kept between runs (None: always generate).
        specs: the photos to make (default `STANDARD_PHOTOS`).

    Returns:
        The photos by name.
    """
    photos = {}
    for name, spec in (specs or STANDARD_PHOTOS).items():
        key = f"{name}-{spec.width}x{spec.height}-{spec.target_bytes}-q{spec.quality}-s{spec.seed}"
        cached = cache_dir / f"{key}-v{PHOTO_VERSION}.jpg" if cache_dir else None
        if cached is not None and cached.is_file():
            data = cached.read_bytes()
        else:
            data = synthetic_jpeg(
                spec.width, spec.height, spec.target_bytes, quality=spec.quality, seed=spec.seed
            )
            if cached is not None:
                cached.parent.mkdir(parents=True, exist_ok=True)
                cached.write_bytes(data)
        photos[name] = photo_from_bytes(name, data)
    return photos


def bench_record(n: int) -> PredictionRecord:
    """The n-th made-up prediction the store benchmarks write."""
    return PredictionRecord(
        request_id=f"bench-{n}",
        created_at=datetime.now(UTC),
        photo_sha256=f"{n:064d}",
        model_name="demo",
        model_version="1",
        verdict="uncertain",
        top_species="boletus_edulis",
        top_probability=0.5,
        mushroom_score=0.9,
    )
