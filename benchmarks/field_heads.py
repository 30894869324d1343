"""Heads for field photos on the served model's fine-tuned features (issue 23), side by side.

`extract` runs every photo of the dataset version and of the field split through the served
int8 model with its pooled features exposed (`mushroom_training.field_head`): each photo and its
mirror image, plus `--views` field-like augmented views of each train photo; cached as .npz.
`study` trains linear heads on those features (warm-started from the served head: seconds each)
with and without a class-prior correction and the augmented views, and measures each on field
validation (source-balanced top-1: each field source counts the same), the field test and the
in-source test. The field test is only read for the report, never to choose.

    MUSHROOM_STORAGE_URI=/work/store uv run python benchmarks/field_heads.py extract --help
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from _common import DEMO_BUNDLE_DIR, SHARED_DATA_DIR
from PIL import ImageOps

from mushroom_common.bundle import read_metadata
from mushroom_common.dataset import read_manifest
from mushroom_common.imaging import decode_for_model, resize_for_model
from mushroom_common.storage import open_storage
from mushroom_training import field, field_head

logger = logging.getLogger("benchmarks.field_heads")
app = typer.Typer(add_completion=False, help=__doc__)
CACHE = Path("mushroom-data/field-heads")


@app.callback()
def main() -> None:
    """Extract features, then study heads."""


@app.command()
def extract(
    bundle_dir: Annotated[Path, typer.Option(help="the served bundle")] = DEMO_BUNDLE_DIR,
    storage_uri: Annotated[str | None, typer.Option(help="storage with the dataset")] = None,
    data_root: Annotated[Path, typer.Option(help="the shared data folder")] = SHARED_DATA_DIR,
    cache_dir: Annotated[Path, typer.Option(help="where the features go")] = CACHE,
    views: Annotated[int, typer.Option(help="augmented views per train photo")] = 3,
    seed: Annotated[int, typer.Option(help="augmentation seed")] = 42,
) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    metadata = read_metadata(bundle_dir)
    labels = list(metadata.labels)
    storage = open_storage(storage_uri)
    assert metadata.dataset_version is not None
    manifest = read_manifest(storage, metadata.dataset_version)
    photos = field.field_photos(data_root, manifest, labels)
    cache_dir.mkdir(parents=True, exist_ok=True)
    model = cache_dir / "pooled.tflite"
    field_head.with_pooled_output(bundle_dir / "model_int8.tflite", model, len(labels))
    runner = field_head.PooledRunner(model, len(labels))
    size = metadata.input.height
    field_hashes = {field.sha256_of(p.path): p for p in photos}
    # 1. every dataset photo and every field-extra photo: plain and mirrored.
    rows = sorted(manifest, key=lambda r: r.content_hash)
    key_of = {r.content_hash: r.image_key for r in rows}
    items = [(r.content_hash, r.species, r.split, None) for r in rows]
    items += [
        (field.sha256_of(p.path), p.species, p.role, p.path)
        for p in photos
        if p.origin == field.FIELD_EXTRA
    ]
    plain_path = cache_dir / "plain.npz"
    if not plain_path.exists():
        t0 = time.perf_counter()
        feats, mfeats, logits = [], [], []
        for i, (content_hash, _, _, path) in enumerate(items):
            data = (
                path.read_bytes() if path is not None else storage.read_bytes(key_of[content_hash])
            )
            image = decode_for_model(data, size)
            lg, f = runner.run(resize_for_model(image, size, size))
            _, mf = runner.run(resize_for_model(ImageOps.mirror(image), size, size))
            feats.append(f)
            mfeats.append(mf)
            logits.append(lg)
            if i % 1000 == 0:
                logger.info("plain %d/%d %.0f s", i, len(items), time.perf_counter() - t0)
        roles = [field_hashes[h].role if h in field_hashes else s for h, _, s, _ in items]
        origins = [field_hashes[h].origin if h in field_hashes else "" for h, _, _, _ in items]
        np.savez(
            plain_path,
            hashes=np.array([h for h, _, _, _ in items]),
            species=np.array([s for _, s, _, _ in items]),
            split=np.array([s for _, _, s, _ in items]),
            role=np.array(roles),
            origin=np.array(origins),
            features=np.array(feats, np.float32),
            mirror_features=np.array(mfeats, np.float32),
            logits=np.array(logits, np.float32),
        )
        logger.info("plain views of %d photos: %.0f s", len(items), time.perf_counter() - t0)
    # 2. augmented views of train photos, one file per round (resumable).
    train_rows = [r for r in rows if r.split == "train"]
    for view in range(views):
        path = cache_dir / f"aug{view}.npz"
        if path.exists():
            continue
        t0 = time.perf_counter()
        rng = np.random.default_rng(seed + view)
        feats = []
        for i, row in enumerate(train_rows):
            image = decode_for_model(storage.read_bytes(row.image_key), 2 * size)
            feats.append(runner.run(field_head.field_view(image, size, rng))[1])
            if i % 1000 == 0:
                logger.info(
                    "aug %d: %d/%d %.0f s", view, i, len(train_rows), time.perf_counter() - t0
                )
        np.savez(
            path,
            hashes=np.array([r.content_hash for r in train_rows]),
            features=np.array(feats, np.float32),
        )
        logger.info("augmented view %d: %.0f s", view, time.perf_counter() - t0)


if __name__ == "__main__":
    app()
