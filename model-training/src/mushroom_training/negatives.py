"""Images that are not mushrooms, available offline, for the detector's false-acceptance rate.

Real photos come from the sample images shipped inside scikit-image and scikit-learn (the `eval`
extra); generated images (noise, gradients, stripes, shapes, flat colours) are always added.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from mushroom_training.preprocess import decode_photo, resize_for_model

logger = logging.getLogger(__name__)

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def sample_photos() -> list[tuple[str, Image.Image]]:
    """(name, RGB image) of the sample photos shipped by scikit-image and scikit-learn."""
    photos: list[tuple[str, Image.Image]] = []
    for package, folder in (("skimage", "data"), ("sklearn", "datasets/images")):
        root = _package_dir(package)
        if root is None or not (root / folder).is_dir():
            logger.info("%s is not installed: no %s sample photos", package, package)
            continue
        for path in sorted((root / folder).iterdir()):
            if path.suffix.lower() in _IMAGE_SUFFIXES:
                # The one photo path: upright, alpha on white, 16-bit scaled (as served).
                photos.append((f"{package}:{path.stem}", decode_photo(path.read_bytes())))
    return photos


def generated_images(count: int, seed: int = 0, size: int = 256) -> list[tuple[str, Image.Image]]:
    """Synthetic non-mushroom images: noise, gradients, stripes, random shapes, flat colours."""
    rng = np.random.default_rng(seed)
    images: list[tuple[str, Image.Image]] = []
    kinds = ("noise", "gradient", "stripes", "shapes", "flat")
    for i in range(count):
        kind = kinds[i % len(kinds)]
        if kind == "noise":
            array = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        elif kind == "gradient":
            ramp = np.linspace(0, 1, size)
            a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
            array = (a + (b - a) * ramp[None, :, None] * np.ones((size, 1, 1))).astype(np.uint8)
        elif kind == "stripes":
            period = int(rng.integers(4, 40))
            mask = (np.arange(size) // period) % 2
            a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
            array = (np.where(mask[None, :, None], a, b) * np.ones((size, 1, 1))).astype(np.uint8)
        elif kind == "shapes":
            image = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(0, 256, 3)))
            draw = ImageDraw.Draw(image)
            for _ in range(int(rng.integers(3, 12))):
                x0, y0 = (int(v) for v in rng.integers(0, size - 20, 2))
                x1, y1 = (
                    x0 + int(rng.integers(10, size // 2)),
                    y0 + int(rng.integers(10, size // 2)),
                )
                colour = tuple(int(v) for v in rng.integers(0, 256, 3))
                if rng.random() < 0.5:
                    draw.rectangle((x0, y0, x1, y1), fill=colour)
                else:
                    draw.polygon([(x0, y1), (x1, y1), ((x0 + x1) // 2, y0)], fill=colour)
            images.append((f"generated:{kind}-{i}", image))
            continue
        else:
            array = np.full((size, size, 3), rng.integers(0, 256, 3), np.uint8)
        images.append((f"generated:{kind}-{i}", Image.fromarray(array)))
    return images


def negative_set(size: int, generated: int = 40, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Model inputs (N, size, size, 3) of non-mushroom images, and their names."""
    items = sample_photos() + generated_images(generated, seed)
    images = np.stack([resize_for_model(image, size, size) for _, image in items])
    return images, [name for name, _ in items]


def describe_sources(names: list[str]) -> str:
    """e.g. 'skimage 25, sklearn 2, generated 40'."""
    counts: dict[str, int] = {}
    for name in names:
        source = name.split(":", 1)[0]
        counts[source] = counts.get(source, 0) + 1
    return ", ".join(f"{source} {count}" for source, count in counts.items())
