"""The not-a-mushroom detector on field-like photos (issue 23): what passes it, what it turns away.

False acceptance is measured on photos a forager's phone sees next to mushrooms (leaves, grass,
moss, flowers, forest floor, water; the list in `benchmarks/field_negatives.txt`, photos from
Debian's wallpaper packages), each whole and as random crops (a phone framed closer); false
rejection on every field photo of mushrooms (`nordic-field/`, `field-extra/` and the field
sources in `web-species/`). Thresholds compared side by side: the bundle's and the ones that
would keep false rejection of field photos at 1, 2, 3 and 5%.

    uv run python benchmarks/detector_negatives.py fetch          # apt-get download + unpack
    uv run python benchmarks/detector_negatives.py measure        # the served bundle

`measure --negatives DIR` takes any folder of non-mushroom photos instead (sub-folder = category).
"""

from __future__ import annotations

import logging
import subprocess
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from _common import BENCHMARKS_DIR, DEMO_BUNDLE_DIR, RESULTS_DIR, SHARED_DATA_DIR, write_report
from PIL import Image

from mushroom_common.bundle import read_metadata
from mushroom_common.catalog import load_catalog
from mushroom_common.imaging import decode_for_model, resize_for_model
from mushroom_common.runtime import BundleRuntime, calibrated_probabilities
from mushroom_common.verdict import VerdictRules, judge
from mushroom_training.field import FIELD_EXTRA, FIELD_SOURCES, source_of

logger = logging.getLogger("benchmarks.detector_negatives")
app = typer.Typer(add_completion=False, help=__doc__)
NEGATIVES_LIST = BENCHMARKS_DIR / "field_negatives.txt"
DEFAULT_CACHE = Path.home() / ".cache" / "mushroom-benchmarks" / "field-negatives"
FALSE_REJECTION_TARGETS = (0.01, 0.02, 0.03, 0.05)


@dataclass(frozen=True)
class NegativePhoto:
    """One listed photo: its Debian package, path inside it and what it shows."""

    package: str
    path: str
    category: str

    @property
    def name(self) -> str:
        """The wallpaper's folder name (Plasma) or the file's stem (the others)."""
        parts = Path(self.path).parts
        return parts[3] if parts[:3] == ("usr", "share", "wallpapers") else Path(self.path).stem


def listed_photos(listing: Path = NEGATIVES_LIST) -> list[NegativePhoto]:
    """The photos named by the list file (comments and blank lines skipped)."""
    photos = []
    for line in listing.read_text("utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        package, path, category = line.split()
        photos.append(NegativePhoto(package, path, category))
    return photos


@app.command()
def fetch(
    cache_dir: Annotated[Path, typer.Option(help="where the photos go")] = DEFAULT_CACHE,
) -> None:
    """Download the listed Debian packages and copy the listed photos to <cache>/<category>/."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    photos = listed_photos()
    with tempfile.TemporaryDirectory() as work:
        packages = sorted({p.package for p in photos})
        subprocess.run(["apt-get", "download", *packages], cwd=work, check=True)
        for deb in Path(work).glob("*.deb"):
            subprocess.run(["dpkg-deb", "-x", str(deb), str(Path(work) / "root")], check=True)
        for photo in photos:
            source = Path(work) / "root" / photo.path
            target = cache_dir / photo.category / f"{photo.package}-{photo.name}{source.suffix}"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
            logger.info("%s", target)


def random_crops(
    image: Image.Image, count: int, rng: np.random.Generator, min_area: float = 0.1
) -> list[Image.Image]:
    """`count` crops of 10-60% of the area (aspect 3/4-4/3): the photo framed closer."""
    width, height = image.size
    crops: list[Image.Image] = []
    while len(crops) < count:
        area = width * height * rng.uniform(min_area, 0.6)
        ratio = float(np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3))))
        w, h = round(float(np.sqrt(area * ratio))), round(float(np.sqrt(area / ratio)))
        if not (0 < w <= width and 0 < h <= height):
            continue
        left, top = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
        crops.append(image.crop((left, top, left + w, top + h)))
    return crops


def mushroom_photos(data_root: Path) -> list[Path]:
    """Every field photo of a mushroom in the shared folders (any species, any split)."""
    paths = []
    for folder in ("web-species", "nordic-field"):
        for path in sorted((data_root / folder).glob("*/*.jpg")):
            if source_of(folder, path) in FIELD_SOURCES:
                paths.append(path)
    return paths + sorted((data_root / FIELD_EXTRA).glob("*/*.jpg"))


def threshold_for(scores: np.ndarray, false_rejection: float) -> float:
    """The highest threshold that turns away at most this share of mushroom photos."""
    return float(np.quantile(scores, false_rejection, method="lower"))


def _rates(scores: np.ndarray, threshold: float) -> float:
    return float(np.mean(scores >= threshold)) if len(scores) else float("nan")


@app.command()
def measure(
    bundle_dir: Annotated[Path, typer.Option(help="the bundle to measure")] = DEMO_BUNDLE_DIR,
    negatives: Annotated[
        Path, typer.Option(help="non-mushroom photos, one sub-folder per category")
    ] = DEFAULT_CACHE,
    data_root: Annotated[Path, typer.Option(help="the shared data folder")] = SHARED_DATA_DIR,
    crops: Annotated[int, typer.Option(help="random crops per negative photo")] = 12,
    seed: Annotated[int, typer.Option()] = 0,
    results_dir: Annotated[Path, typer.Option(help="where the JSON report goes")] = RESULTS_DIR,
) -> None:
    """Detector scores of the negatives (whole and cropped) and of the field photos."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    started = time.perf_counter()
    metadata = read_metadata(bundle_dir)
    if metadata.mushroom_detector is None:
        raise typer.BadParameter(f"{bundle_dir} has no mushroom detector")
    served = metadata.mushroom_detector.threshold
    size = metadata.input.height
    runtime = BundleRuntime.for_variant(bundle_dir, metadata, num_threads=2, batch_size=8)
    files = sorted(p for p in negatives.rglob("*") if p.suffix.lower() in {".jpg", ".png"})
    if not files:
        raise typer.BadParameter(f"no photos under {negatives}: run `fetch` first")
    rng = np.random.default_rng(seed)
    pixels, kinds, categories, names = [], [], [], []
    for path in files:
        image = decode_for_model(path.read_bytes(), 4 * size)
        for index, view in enumerate([image, *random_crops(image, crops, rng)]):
            pixels.append(resize_for_model(view, size, size))
            kinds.append("whole" if index == 0 else "crop")
            categories.append(path.parent.name)
            names.append(path.name)

    def run(batch: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Logits and mushroom scores of photos (the bundle has a detector: checked above)."""
        result = runtime.run_batch(batch)
        assert result.mushroom_scores is not None
        return result.logits, np.asarray(result.mushroom_scores, np.float64).ravel()

    negative_logits, negative_scores = run(pixels)
    # What a forager is told about each negative the detector lets through: the bundle's rules
    # with its open-set score, as the API judges one photo.
    rules, catalog, labels = (
        VerdictRules.from_bundle(metadata),
        load_catalog(),
        list(metadata.labels),
    )
    verdicts_accepted: Counter[str] = Counter(
        judge(
            calibrated_probabilities(logits, runtime.temperature),
            labels,
            float(score),
            catalog,
            rules,
            3,
            unknown_score=rules.unknown_score(logits),
        ).verdict.value
        for logits, score in zip(negative_logits, negative_scores, strict=True)
        if score >= served
    )
    field_paths = mushroom_photos(data_root)
    _, field_scores = run(
        [resize_for_model(decode_for_model(p.read_bytes(), size), size, size) for p in field_paths]
    )
    thresholds = {"served": served} | {
        f"field false rejection {round(100 * t)}%": threshold_for(field_scores, t)
        for t in FALSE_REJECTION_TARGETS
    }
    kinds_arr, categories_arr = np.array(kinds), np.array(categories)
    table: dict[str, Any] = {}
    for name, threshold in thresholds.items():
        row: dict[str, Any] = {
            "threshold": threshold,
            "field_false_rejection": 1 - _rates(field_scores, threshold),
            "false_acceptance_whole": _rates(negative_scores[kinds_arr == "whole"], threshold),
            "false_acceptance_crops": _rates(negative_scores[kinds_arr == "crop"], threshold),
            "false_acceptance_all": _rates(negative_scores, threshold),
            "by_category": {
                c: _rates(negative_scores[categories_arr == c], threshold)
                for c in sorted(set(categories))
            },
        }
        table[name] = row
    passed = defaultdict(list)
    for score, name, kind in zip(negative_scores, names, kinds, strict=True):
        if score >= served:
            passed[name].append(f"{kind} {score:.3f}")
    payload = {
        "bundle": metadata.version,
        "negatives": {
            "photos": len(files),
            "views": len(pixels),
            "by_category": dict(Counter(categories)),
            "crops_per_photo": crops,
        },
        "field_photos": len(field_paths),
        "thresholds": table,
        "passed_served_threshold": dict(passed),
        "verdicts_of_accepted_views": dict(verdicts_accepted),
        "seconds": time.perf_counter() - started,
    }
    path = write_report("detector_negatives", payload, results_dir)
    for name, row in table.items():
        logger.info(
            "%-28s thr %.4f  field FR %5.1f%%  FA whole %5.1f%%  crops %5.1f%%  all %5.1f%%",
            name,
            row["threshold"],
            100 * row["field_false_rejection"],
            100 * row["false_acceptance_whole"],
            100 * row["false_acceptance_crops"],
            100 * row["false_acceptance_all"],
        )
    logger.info(
        "verdicts of the negatives the served threshold accepts: %s", dict(verdicts_accepted)
    )
    logger.info("wrote %s", path)


if __name__ == "__main__":
    app()
