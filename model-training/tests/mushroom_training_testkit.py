"""A field world for tests of field bundles: a served bundle with a detector, its dataset
version, and a shared data folder whose field photos fall in that version's splits.

(Kept out of conftest.py so the pipeline's tests can import it too, by a name no other package
uses.) The model is a real TFLite file: nearest species colour by the photo's mean RGB, and a
mushroom score that calls every photo a mushroom. The tiny training config has no detector, and
`export_field_bundle` needs one.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from mushroom_common.bundle import (
    BundleMetadata,
    InputSpec,
    ModelVariant,
    MushroomDetectorSpec,
    hash_bundle_files,
    write_metadata,
)
from mushroom_common.dataset import ManifestRow, dataset_prefix
from mushroom_common.storage import LocalStorage

# Poisonous, choice, choice (the species catalog): the field tuning sees both sides.
FIELD_COLOURS = {
    "amanita_muscaria": (220, 40, 30),
    "boletus_edulis": (130, 90, 50),
    "cantharellus_cibarius": (240, 190, 40),
}
FIELD_LABELS = list(FIELD_COLOURS)
FIELD_SIZE = 32
FIELD_DATASET = "ds-field-world"
# A deadly species the model does not know: field-extra/ photos of it are the open set.
UNKNOWN_SPECIES = "amanita_phalloides"


@dataclass(frozen=True)
class FieldWorld:
    """A storage with the dataset version, the served bundle folder and the shared data folder."""

    storage: LocalStorage
    bundle_dir: Path
    data_root: Path
    metadata: BundleMetadata


def _jpeg(colour: tuple[int, int, int], rng: np.random.Generator) -> bytes:
    noise = rng.integers(-25, 26, (48, 48, 3))
    pixels = np.clip(np.array(colour) + noise, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def build_colour_tflite(path: Path) -> None:
    """uint8 [1, 32, 32, 3] -> logits [1, 3], mushroom_score [1, 1].

    The logits rank the species by the distance of the photo's mean colour to each species'
    colour; the score says "mushroom" near one of them and "not a mushroom" far from all (grey
    noise, most flat colours), as the model tests ask of a detector.
    """
    import keras
    import tensorflow as tf

    centres = np.array(list(FIELD_COLOURS.values()), np.float32) / 255.0
    sharpness = 20.0
    inputs = keras.Input(shape=(FIELD_SIZE, FIELD_SIZE, 3), batch_size=1, dtype="uint8")
    scaled = keras.layers.Rescaling(1.0 / 255.0)(keras.ops.cast(inputs, "float32"))
    pooled = keras.layers.GlobalAveragePooling2D()(scaled)
    logits_layer = keras.layers.Dense(len(FIELD_LABELS), name="logits")
    logits = logits_layer(pooled)
    # -sharpness * |x - c|^2 without the |x|^2 every class shares ...
    logits_layer.set_weights([2 * sharpness * centres.T, -sharpness * (centres**2).sum(axis=1)])
    # ... which the score adds back: -sharpness * (squared distance to the nearest colour).
    nearest = keras.ops.max(logits, axis=-1, keepdims=True) - sharpness * keras.ops.sum(
        pooled * pooled, axis=-1, keepdims=True
    )
    # 0.5 at a distance of 0.1 (in [0, 1] RGB units); the photos sit within about 0.05.
    score = keras.layers.Activation("sigmoid", name="mushroom_score")(8.0 + 40.0 * nearest)
    model = keras.Model(inputs, [logits, score])
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())


def _write_dataset(storage: LocalStorage, data_root: Path, per_split: dict[str, int]) -> None:
    """The dataset version, every photo also in the shared data folder's layout: two in three
    are field photos (`web-species/` source YaSeCA, `nordic-field/`), the rest in-source."""
    rng = np.random.default_rng(23)
    rows: list[ManifestRow] = []
    for species, colour in FIELD_COLOURS.items():
        for split, count in per_split.items():
            for index in range(count):
                data = _jpeg(colour, rng)
                digest = hashlib.sha256(data).hexdigest()
                key = f"photos/{digest[:2]}/{digest}.jpg"
                storage.write_bytes_if_absent(key, data, "image/jpeg")
                rows.append(
                    ManifestRow.model_validate(
                        {
                            "content_hash": digest,
                            "image_key": key,
                            "species": species,
                            "split": split,
                            "group_id": f"g-{digest[:12]}",
                            "source": "folder",
                            "license": "unlicensed",
                            "width": 48,
                            "height": 48,
                        }
                    )
                )
                # Two photos in three are field photos (a web-species field source or
                # nordic-field); the third comes from a source that is not (in-source photos).
                folder, name = (
                    ("web-species", f"YaSeCA-{digest[:8]}.jpg"),
                    ("nordic-field", f"{digest[:8]}.jpg"),
                    ("web-species", f"wiki-{digest[:8]}.jpg"),
                )[index % 3]
                (data_root / folder / species).mkdir(parents=True, exist_ok=True)
                (data_root / folder / species / name).write_bytes(data)
    prefix = dataset_prefix(FIELD_DATASET)
    storage.write_text(
        f"{prefix}/manifest.jsonl", "".join(r.model_dump_json() + "\n" for r in rows)
    )
    for split in per_split:
        hashes = [r.content_hash for r in rows if r.split == split]
        storage.write_text(f"{prefix}/splits/{split}.txt", "\n".join(hashes) + "\n")
    storage.write_text(f"{prefix}/_COMPLETE", "")
    # Other photographers' photos: a known species (field test) and an unknown one (open set).
    for species, colour in (
        ("boletus_edulis", FIELD_COLOURS["boletus_edulis"]),
        (UNKNOWN_SPECIES, (200, 200, 180)),
    ):
        (data_root / "field-extra" / species).mkdir(parents=True)
        for index in range(3):
            photo = data_root / "field-extra" / species / f"inat-{index}.jpg"
            photo.write_bytes(_jpeg(colour, rng))


def _report(metadata: BundleMetadata) -> dict[str, object]:
    """The parts of an exported bundle's report.json that report.md is rendered from."""
    return {
        "name": metadata.name,
        "version": metadata.version,
        "dataset_version": metadata.dataset_version,
        "test_photos": 0,
        "backbone": metadata.backbone,
        "weights_loaded": "none",
        "run_id": "test-run",
        "git_revision": metadata.git_revision,
        "command": "pytest",
        "temperature": metadata.temperature,
        "serving_variant": metadata.serving_variant,
        "variants": {},
        "per_species": [],
        "plots": {},
    }


def write_field_world(
    root: Path,
    *,
    name: str = "field-world",
    version: str = "v1",
    per_split: dict[str, int] | None = None,
) -> FieldWorld:
    """root/store (dataset version), root/bundle (the served bundle), root/data (field photos)."""
    storage = LocalStorage(root / "store")
    data_root = root / "data"
    _write_dataset(storage, data_root, per_split or {"train": 4, "val": 6, "test": 6})
    bundle_dir = root / "bundle"
    bundle_dir.mkdir(parents=True)
    model = bundle_dir / "model_int8.tflite"
    build_colour_tflite(model)
    metadata = BundleMetadata(
        name=name,
        version=version,
        labels=FIELD_LABELS,
        input=InputSpec(height=FIELD_SIZE, width=FIELD_SIZE),
        serving_variant="int8",
        variants=[
            ModelVariant(
                name="int8",
                path=model.name,
                format="tflite",
                size_bytes=model.stat().st_size,
                metrics={"top1": 1.0},
            )
        ],
        mushroom_detector=MushroomDetectorSpec(method="colour_distance", threshold=0.5),
        backbone="colour",
        dataset_version=FIELD_DATASET,
        git_revision="0" * 40,
        data_status="synthetic test bundle",
        metrics={"top1": 1.0, "macro_f1": 1.0, "poison_cost": 0.0},
        files=[],
    )
    (bundle_dir / "report.json").write_text(json.dumps(_report(metadata)), "utf-8")
    metadata = metadata.model_copy(update={"files": hash_bundle_files(bundle_dir)})
    write_metadata(bundle_dir, metadata)
    return FieldWorld(storage, bundle_dir, data_root, metadata)
