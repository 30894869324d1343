"""Two bundles averaged (issue 23): would an ensemble, or a student distilled from one, pay?

Reads the model outputs `benchmarks/field_test.py` caches for each bundle (run it on both first,
with the same `--cache-dir`), averages the two calibrated probabilities with weights 0, 0.25,
0.5, 0.75 and 1, and prints top-1 on field validation (where the choice is made), the field test,
its `field-extra/` part and the in-source test. Two Lite0 models cost twice the served CPU, over
the 1.5x budget, so an ensemble could ship only distilled into one model: worth training only if
the average beats the served model on field validation.

    uv run python benchmarks/field_ensemble.py --first models/demo --second <bundle>
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from _common import DEMO_BUNDLE_DIR, RESULTS_DIR, SHARED_DATA_DIR, write_report
from field_test import field_rows, outputs_cache

from mushroom_common.bundle import BundleMetadata, read_metadata
from mushroom_common.dataset import read_manifest
from mushroom_common.runtime import calibrated_probabilities
from mushroom_common.storage import open_storage

logger = logging.getLogger("benchmarks.field_ensemble")
app = typer.Typer(add_completion=False, help=__doc__)
WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)


def cached_probabilities(cache_dir: Path, metadata: BundleMetadata) -> np.ndarray:
    """The bundle's calibrated probabilities on field_test.py's photos, in its row order."""
    cache = outputs_cache(cache_dir, metadata.version, metadata.dataset_version or "")
    if not cache.is_file():
        raise typer.BadParameter(f"no {cache}: run benchmarks/field_test.py on the bundle first")
    return calibrated_probabilities(np.load(cache)["logits"], metadata.temperature)


def top1_by_weight(
    first: np.ndarray,
    second: np.ndarray,
    truth: np.ndarray,
    sets: dict[str, list[int]],
    second_name: str,
) -> dict[str, dict[str, float]]:
    """Top-1 on each set of `(1 - w) * first + w * second` for each weight w in WEIGHTS
    (`truth`: each row's label index), logged as it goes."""
    table: dict[str, dict[str, float]] = {}
    for weight in WEIGHTS:
        blended = (1 - weight) * first + weight * second
        table[str(weight)] = {
            name: float(np.mean(blended[rows].argmax(1) == truth[rows]))
            for name, rows in sets.items()
        }
        logger.info(
            "weight of %s %.2f: %s",
            second_name,
            weight,
            "  ".join(f"{k} {v:.3f}" for k, v in table[str(weight)].items()),
        )
    return table


@app.command()
def main(
    first: Annotated[Path, typer.Option(help="the served bundle")] = DEMO_BUNDLE_DIR,
    second: Annotated[Path, typer.Option(help="the bundle averaged in")] = DEMO_BUNDLE_DIR,
    storage_uri: Annotated[str | None, typer.Option(help="storage with the dataset")] = None,
    data_root: Annotated[Path, typer.Option(help="the shared data folder")] = SHARED_DATA_DIR,
    cache_dir: Annotated[Path, typer.Option(help="field_test.py's cache")] = Path(
        "mushroom-data/field-cache"
    ),
    results_dir: Annotated[Path, typer.Option(help="where the JSON report goes")] = RESULTS_DIR,
) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    meta_a, meta_b = read_metadata(first), read_metadata(second)
    if meta_a.labels != meta_b.labels or meta_a.dataset_version != meta_b.dataset_version:
        raise typer.BadParameter("the bundles must share labels and dataset version")
    manifest = read_manifest(open_storage(storage_uri), meta_a.dataset_version or "")
    labels = list(meta_a.labels)
    rows = field_rows(data_root, manifest, labels)
    truth, sets = rows.truth, rows.top1_sets()
    index = {label: i for i, label in enumerate(labels)}
    # Open-set photos are of untrained species: -1, and in no set.
    truth_index = np.array([index.get(species, -1) for species in truth])
    table = top1_by_weight(
        cached_probabilities(cache_dir, meta_a),
        cached_probabilities(cache_dir, meta_b),
        truth_index,
        sets,
        meta_b.version,
    )
    path = write_report(
        "field_ensemble",
        {
            "first": meta_a.version,
            "second": meta_b.version,
            "photos": {k: len(v) for k, v in sets.items()},
            "top1_by_weight_of_second": table,
        },
        results_dir,
    )
    logger.info("wrote %s", path)


if __name__ == "__main__":
    app()
