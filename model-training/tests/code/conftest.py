"""Fixtures of the code tests: a generated 3-species dataset version in a temporary storage, in
the collector's layout, and training settings pointing at temporary folders."""

from __future__ import annotations

import hashlib
import io
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from mushroom_common.dataset import ManifestRow, dataset_prefix
from mushroom_common.storage import Storage
from mushroom_training.config import Settings, TrainConfig, load_config

# mushroom_training_testkit (the field world) lives beside the test folders.
sys.path.insert(0, str(Path(__file__).parents[1]))

SPECIES = ("amanita_muscaria", "boletus_edulis", "cantharellus_cibarius")
COLOURS = ((200, 30, 30), (120, 80, 40), (240, 190, 40))


def photo(species_index: int, rng: np.random.Generator, size: int = 48) -> bytes:
    """A JPEG of a coloured 'cap' on a noisy background; the colour tells the species."""
    background = rng.integers(40, 120, (size, size, 3), dtype=np.uint8)
    image = Image.fromarray(background)
    draw = ImageDraw.Draw(image)
    jitter = rng.integers(-20, 21, 3)
    colour = tuple(
        int(np.clip(c + j, 0, 255)) for c, j in zip(COLOURS[species_index], jitter, strict=True)
    )
    r = int(rng.integers(size // 4, size // 2.5))
    cx, cy = (int(v) for v in rng.integers(r, size - r, 2))
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def write_dataset(
    storage: Storage,
    version_id: str = "ds-synthetic",
    per_split: tuple[int, int, int] = (12, 6, 6),
    seed: int = 0,
) -> str:
    """Write a complete dataset version with `per_split` photos per species and split."""
    rng = np.random.default_rng(seed)
    rows: list[ManifestRow] = []
    for split, count in zip(("train", "val", "test"), per_split, strict=True):
        for index, species in enumerate(SPECIES):
            for _ in range(count):
                data = photo(index, rng)
                digest = hashlib.sha256(data).hexdigest()
                key = f"photos/{digest[:2]}/{digest}.jpg"
                storage.write_bytes_if_absent(key, data, "image/jpeg")
                rows.append(
                    ManifestRow(
                        content_hash=digest,
                        image_key=key,
                        species=species,
                        split=split,  # type: ignore[arg-type]  # split comes from the fixed tuple above
                        group_id=f"g-{digest[:12]}",
                        source="folder",
                        license="unlicensed",
                        width=48,
                        height=48,
                    )
                )
    prefix = dataset_prefix(version_id)
    storage.write_text(
        f"{prefix}/manifest.jsonl", "".join(r.model_dump_json() + "\n" for r in rows)
    )
    for split in ("train", "val", "test"):
        hashes = [r.content_hash for r in rows if r.split == split]
        storage.write_text(f"{prefix}/splits/{split}.txt", "\n".join(hashes) + "\n")
    storage.write_json(f"{prefix}/report.json", {"generated": datetime.now(UTC).isoformat()})
    storage.write_text(f"{prefix}/_COMPLETE", "")
    return version_id


@pytest.fixture(scope="session")
def dataset_writer() -> Callable[..., str]:
    """`write_dataset`, for tests that need a dataset version in another storage."""
    return write_dataset


@pytest.fixture(scope="session")
def weights_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One converted EfficientNet-Lite0 weights cache for the session."""
    return tmp_path_factory.mktemp("weights-cache")


@pytest.fixture(scope="session")
def storage(tmp_path_factory: pytest.TempPathFactory) -> Storage:
    """A local storage holding the generated dataset version `ds-synthetic`."""
    from mushroom_common.storage import open_storage

    store = open_storage(str(tmp_path_factory.mktemp("storage")))
    write_dataset(store)
    return store


@pytest.fixture(scope="session")
def quick_tiny_config() -> Callable[..., TrainConfig]:
    """The tiny config with these overrides, trained in phase 1 only and exported as the int8
    variant alone (no SavedModel, Grad-CAM examples or flip TTA): a run that takes seconds."""

    def load(*overrides: str) -> TrainConfig:
        return load_config(
            Path(__file__).parents[2] / "configs" / "tiny.yaml",
            [
                *overrides,
                "training.phase2_epochs=0",
                "student.enabled=false",
                "export.variants=[int8]",
                "export.saved_model=false",
                "export.gradcam_examples=0",
                "export.flip_tta=false",
            ],
        )

    return load


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory, weights_cache: Path) -> Settings:
    """Training settings with temporary runs folder and weights cache."""
    from mushroom_training.config import Settings

    return Settings(runs_dir=tmp_path_factory.mktemp("runs"), weights_cache_dir=weights_cache)


@pytest.fixture(scope="session")
def cap_photos() -> tuple[np.ndarray, np.ndarray]:
    """48 decoded 64x64 photos of the three generated species and their labels."""
    rng = np.random.default_rng(5)
    labels = np.arange(48) % len(SPECIES)
    photos = np.stack(
        [np.asarray(Image.open(io.BytesIO(photo(int(s), rng, 64))).convert("RGB")) for s in labels]
    )
    return photos, labels
