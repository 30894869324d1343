"""Observations (issue 24): fusion of several photos, the location prior and a crop, measured.

Field photos only, through the served model (`models/demo`, `mushroom_common.runtime`), decoded
and resized as the API does:
- `nordic-field/`, the field sources of `web-species/` (YaSeCA, Bartekp26, gcadet2016) and the
  `field-extra/` photos of species the model knows. The demo model was trained on a split of the
  first two, so their numbers are optimistic; `field-extra/` was never trained on and is reported
  apart.
- Pseudo-observations: 2 or 3 photos of one species from one source (random subsets, seeded).
  Single-photo top-1 is measured on the same photos (each observation's photos, scored alone).
- Location prior: the photos of species whose catalog regions include Europe, answered with and
  without a central European location (50 N, 10 E), for several prior strengths; every deadly
  label's probability is checked never to fall.
- Crop: an occlusion heat map (the /explain algorithm) of the photo's own top answer gives a
  box around the cells that matter; the photo is cropped to it (with a margin) and answered
  again. "Small" photos are those whose box covers under a third of the frame.

    cd /work/main && uv run python benchmarks/observations.py --help
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import random
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import numpy.typing as npt
import typer
from _common import DEMO_BUNDLE_DIR, PHOTO_CACHE_DIR, SHARED_DATA_DIR, format_table, write_report
from PIL import Image

from mushroom_common.bundle import read_metadata
from mushroom_common.catalog import Catalog, Edibility, load_catalog
from mushroom_common.dataset import ManifestRow, read_manifest
from mushroom_common.imaging import decode_for_model, resize_for_model
from mushroom_common.observation import (
    FUSION_METHODS,
    FusionMethod,
    PriorStrength,
    apply_prior,
    fuse,
    location_prior,
    used_photos,
)
from mushroom_common.runtime import BundleRuntime
from mushroom_common.storage import open_storage
from mushroom_common.verdict import Verdict, VerdictRules, judge
from mushroom_training import field

logger = logging.getLogger("observations")

OCCLUDER_VALUE = 127  # as mushroom_api.services.explain
EUROPE = (50.0, 10.0)
SMALL_BOX_FRACTION = 1 / 3

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class FieldPhoto:
    """One field photo of a species the model knows, and the part of the field split it is in."""

    path: Path
    species: str
    source: str
    # "field val" / "field test": the dataset version's val / test photos of the field sources
    # (never trained on); "field-extra": other photographers (never trained on); "trained":
    # field-source photos in the version's train split (seen in training, not measured).
    part: str


# The parts this benchmark reports, by the role `mushroom_training.field` gives a photo; its
# `field-extra/` photos of trained species are a part of their own here.
PART_OF_ROLE = {"field_val": "field val", "field_test": "field test", "field_train": "trained"}
# The order photos were always listed in (the cache key and the pseudo-observation draws
# depend on it): nordic-field, then web-species, then field-extra, by path within each.
FOLDER_ORDER = ("nordic-field", "web-species", field.FIELD_EXTRA)


def field_photos(data_dir: Path, labels: set[str], manifest: list[ManifestRow]) -> list[FieldPhoto]:
    """Every field photo of a labelled species, in a stable order, with its part (the field
    split of `mushroom_training.field`, without its open-set photos)."""
    photos = [
        FieldPhoto(
            p.path,
            p.species,
            p.source,
            "field-extra" if p.origin == field.FIELD_EXTRA else PART_OF_ROLE[p.role],
        )
        for p in field.field_photos(data_dir, manifest, sorted(labels))
        if p.role != "open_set" and p.species in labels
    ]
    return sorted(
        photos, key=lambda p: (FOLDER_ORDER.index(p.path.parent.parent.name), str(p.path))
    )


def model_pixels(data: bytes, height: int, width: int) -> npt.NDArray[np.uint8]:
    """The API's decode and resize."""
    return resize_for_model(decode_for_model(data, max(height, width)), height, width)


def predict_all(
    runtime: BundleRuntime, photos: list[FieldPhoto], cache: Path
) -> tuple[FloatArray, FloatArray]:
    """Probabilities and mushroom scores of every photo (cached by bundle and photo list)."""
    if cache.exists():
        stored = np.load(cache)
        return stored["probabilities"], stored["scores"]
    height, width = runtime.input_size
    rows: list[FloatArray] = []
    scores: list[float] = []
    started = time.perf_counter()
    for start in range(0, len(photos), 32):
        batch = [
            model_pixels(p.path.read_bytes(), height, width) for p in photos[start : start + 32]
        ]
        out = runtime.run_batch(batch)
        rows += list(out.probabilities)
        scores += (
            list(out.mushroom_scores) if out.mushroom_scores is not None else [1.0] * len(batch)
        )
    logger.info("%d photos in %.1f s", len(photos), time.perf_counter() - started)
    probabilities, score_array = np.stack(rows), np.array(scores)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, probabilities=probabilities, scores=score_array)
    return probabilities, score_array


def pseudo_observations(
    photos: list[FieldPhoto], size: int, per_group: int, seed: int
) -> dict[str, list[tuple[int, ...]]]:
    """Index tuples of `size` photos of one species and source, by part."""
    groups: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for index, photo in enumerate(photos):
        groups[(photo.part, photo.species, photo.source)].append(index)
    rng = random.Random(seed)
    found: dict[str, list[tuple[int, ...]]] = defaultdict(list)
    for (part, _, _), members in sorted(groups.items()):
        if len(members) < size:
            continue
        combos = list(itertools.combinations(members, size))
        rng.shuffle(combos)
        found[part] += combos[:per_group]
    return found


PARTS: dict[str, tuple[str, ...]] = {
    "field val": ("field val",),
    "field test": ("field test", "field-extra"),
    "of which field-extra": ("field-extra",),
}


def _observation_verdict(
    rows: FloatArray,
    scores: FloatArray,
    labels: list[str],
    catalog: Catalog,
    rules: VerdictRules,
    method: FusionMethod,
) -> tuple[FloatArray, Verdict]:
    """The served path: photos that look like a mushroom, fused, judged with them as views."""
    used = used_photos([float(x) for x in scores], rules.detector_threshold)
    fused = fuse(rows[used], method)
    verdict = judge(
        fused,
        labels,
        float(scores.max()),
        catalog,
        rules,
        3,
        view_probabilities=rows[used] if len(used) > 1 else None,
    ).verdict
    return fused, verdict


def fusion_table(
    photos: list[FieldPhoto],
    probabilities: FloatArray,
    scores: FloatArray,
    labels: list[str],
    catalog: Catalog,
    rules: VerdictRules,
    per_group: int,
    seed: int,
) -> list[dict[str, Any]]:
    """Top-1 of single photos and of fused 2- and 3-photo observations, per part and method."""
    truth = np.array([labels.index(p.species) for p in photos])
    view = catalog.label_view(labels)
    results: list[dict[str, Any]] = []
    for size in (2, 3):
        observations = pseudo_observations(photos, size, per_group, seed)
        for part, members in PARTS.items():
            chosen = [o for name in members for o in observations.get(name, [])]
            if not chosen:
                continue
            single = float(
                np.mean([np.argmax(probabilities[i]) == truth[i] for o in chosen for i in o])
            )
            single_edible = sum(
                int(
                    judge(probabilities[i], labels, float(scores[i]), catalog, rules, 3).verdict
                    is Verdict.EDIBLE
                )
                for o in chosen
                for i in o
                if view.dangerous[truth[i]]
            )
            row: dict[str, Any] = {
                "part": part,
                "photos": size,
                "observations": len(chosen),
                "dangerous_observations": sum(int(view.dangerous[truth[o[0]]]) for o in chosen),
                "single_top1": single,
                "single_dangerous_photos_answered_edible": single_edible,
            }
            edible_truth = [o for o in chosen if view.species[truth[o[0]]].edibility.is_edible]
            row["edible_observations"] = len(edible_truth)
            single_right_edible = [
                judge(probabilities[i], labels, float(scores[i]), catalog, rules, 3)
                for o in edible_truth
                for i in o
            ]
            dangerous_singles = [
                judge(probabilities[i], labels, float(scores[i]), catalog, rules, 3).verdict
                for o in chosen
                for i in o
                if view.dangerous[truth[i]]
            ]
            row["single_dangerous_answered_dangerous"] = (
                float(np.mean([v is Verdict.DANGEROUS for v in dangerous_singles]))
                if dangerous_singles
                else None
            )
            row["single_edible_answered_dangerous"] = float(
                np.mean([j.verdict is Verdict.DANGEROUS for j in single_right_edible])
            )
            row["single_edible_answered_edible_right_species"] = float(
                np.mean(
                    [
                        j.verdict is Verdict.EDIBLE and j.predictions[0].species == labels[truth[i]]
                        for j, i in zip(
                            single_right_edible, [i for o in edible_truth for i in o], strict=True
                        )
                    ]
                )
            )
            for method in FUSION_METHODS:
                correct = danger_edible = danger_dangerous = edible_right = edible_dangerous = 0
                for o in chosen:
                    fused, verdict = _observation_verdict(
                        probabilities[list(o)], scores[list(o)], labels, catalog, rules, method
                    )
                    right = int(np.argmax(fused) == truth[o[0]])
                    correct += right
                    if view.dangerous[truth[o[0]]]:
                        danger_edible += int(verdict is Verdict.EDIBLE)
                        danger_dangerous += int(verdict is Verdict.DANGEROUS)
                    elif view.species[truth[o[0]]].edibility.is_edible:
                        edible_right += int(verdict is Verdict.EDIBLE and bool(right))
                        edible_dangerous += int(verdict is Verdict.DANGEROUS)
                dangerous_count = max(row["dangerous_observations"], 1)
                edible_count = max(len(edible_truth), 1)
                row[f"{method}_top1"] = correct / len(chosen)
                row[f"{method}_dangerous_answered_edible"] = danger_edible
                row[f"{method}_dangerous_answered_dangerous"] = danger_dangerous / dangerous_count
                row[f"{method}_edible_answered_edible_right_species"] = edible_right / edible_count
                row[f"{method}_edible_answered_dangerous"] = edible_dangerous / edible_count
            results.append(row)
    return results


def prior_table(
    photos: list[FieldPhoto],
    probabilities: FloatArray,
    scores: FloatArray,
    labels: list[str],
    catalog: Catalog,
    rules: VerdictRules,
) -> list[dict[str, Any]]:
    """Top-1 of European species' field photos with and without a European place (and month)."""
    truth = np.array([labels.index(p.species) for p in photos])
    deadly = np.array([catalog.get(label).edibility is Edibility.DEADLY for label in labels])
    view = catalog.label_view(labels)
    results: list[dict[str, Any]] = []
    for part, members in PARTS.items():
        european = [
            i
            for i, p in enumerate(photos)
            if p.part in members and "europe" in [str(r) for r in catalog.get(p.species).regions]
        ]
        if not european:
            continue
        verdicts_before = [
            judge(probabilities[i], labels, float(scores[i]), catalog, rules, 3).verdict
            for i in european
        ]
        base_top1 = float(np.mean([np.argmax(probabilities[i]) == truth[i] for i in european]))
        rng = random.Random(0)
        # "season": the month a photo was taken, simulated as one of its species' catalog
        # fruiting months (a photo of a fruiting body is taken while it fruits); optimistic.
        season = {
            i: rng.choice(catalog.get(photos[i].species).fruiting_months or [9]) for i in european
        }
        months: tuple[int | str | None, ...] = (None, 9, "season")
        for factor, month in itertools.product((0.5, 0.2, 0.1, 0.05), months):
            strength = PriorStrength(out_of_range_factor=factor)
            shared = location_prior(
                labels,
                catalog,
                lat=EUROPE[0],
                lon=EUROPE[1],
                month=month if isinstance(month, int) else None,
                strength=strength,
            )
            correct = lowered = lost = edible_before = edible_after = 0
            for i, verdict_before in zip(european, verdicts_before, strict=True):
                prior = (
                    location_prior(
                        labels,
                        catalog,
                        lat=EUROPE[0],
                        lon=EUROPE[1],
                        month=season[i],
                        strength=strength,
                    )
                    if month == "season"
                    else shared
                )
                before = probabilities[i]
                after = apply_prior(before, prior)
                correct += int(np.argmax(after) == truth[i])
                lowered += int(np.any(after[deadly] < before[deadly] - 1e-12))
                verdict_after = judge(after, labels, float(scores[i]), catalog, rules, 3).verdict
                lost += int(
                    verdict_before is Verdict.DANGEROUS and verdict_after is not Verdict.DANGEROUS
                )
                if view.dangerous[truth[i]]:
                    edible_before += int(verdict_before is Verdict.EDIBLE)
                    edible_after += int(verdict_after is Verdict.EDIBLE)
            results.append(
                {
                    "part": part,
                    "out_of_range_factor": factor,
                    "month": month,
                    "photos": len(european),
                    "top1_without": base_top1,
                    "top1_with": correct / len(european),
                    "deadly_probability_lowered": lowered,
                    "dangerous_verdicts_lost": lost,
                    "dangerous_answered_edible_without": edible_before,
                    "dangerous_answered_edible_with": edible_after,
                }
            )
    return results


def occlusion_box(
    runtime: BundleRuntime, pixels: npt.NDArray[np.uint8], grid: int
) -> tuple[float, float, float, float]:
    """(top, left, bottom, right) fractions of the cells that matter most to the top answer."""
    height, width = pixels.shape[:2]
    rows = np.linspace(0, height, grid + 1).round().astype(int)
    cols = np.linspace(0, width, grid + 1).round().astype(int)
    copies = [pixels]
    for r in range(grid):
        for c in range(grid):
            copy = pixels.copy()
            copy[rows[r] : rows[r + 1], cols[c] : cols[c + 1]] = OCCLUDER_VALUE
            copies.append(copy)
    out = runtime.run_batch(copies).probabilities
    target = int(np.argmax(out[0]))
    heat = np.clip(out[0, target] - out[1:, target], 0.0, None).reshape(grid, grid)
    if float(heat.max()) <= 0:
        return 0.0, 0.0, 1.0, 1.0
    hot_rows, hot_cols = np.nonzero(heat >= 0.5 * heat.max())
    return (
        hot_rows.min() / grid,
        hot_cols.min() / grid,
        (hot_rows.max() + 1) / grid,
        (hot_cols.max() + 1) / grid,
    )


CROP_MARGINS = (0.1, 0.5, 1.0)  # the box grown on each side by this share of its own size
CENTRE_CROP = 0.6  # a content-blind reference: the central 60% of each side


def _crop(image: Image.Image, box: tuple[float, float, float, float], margin: float) -> Image.Image:
    top, left, bottom, right = box
    grow_y, grow_x = margin * (bottom - top), margin * (right - left)
    return image.crop(
        (
            round(max(0.0, left - grow_x) * image.width),
            round(max(0.0, top - grow_y) * image.height),
            round(min(1.0, right + grow_x) * image.width),
            round(min(1.0, bottom + grow_y) * image.height),
        )
    )


def crop_table(
    runtime: BundleRuntime,
    single: BundleRuntime,
    photos: list[FieldPhoto],
    probabilities: FloatArray,
    labels: list[str],
    limit: int,
    grid: int,
    seed: int,
    cache: Path,
) -> dict[str, Any]:
    """Top-1 before and after cropping to the occlusion box (several margins) and to the
    centre, on field test photos: all, and those whose box is small."""
    height, width = runtime.input_size
    rng = random.Random(seed)
    indexes = [i for i, p in enumerate(photos) if p.part in PARTS["field test"]]
    rng.shuffle(indexes)
    indexes = sorted(indexes[:limit])
    started = time.perf_counter()
    if cache.exists():
        boxes = {int(k): tuple(v) for k, v in json.loads(cache.read_text("utf-8")).items()}
    else:
        boxes = {
            i: occlusion_box(
                runtime, model_pixels(photos[i].path.read_bytes(), height, width), grid
            )
            for i in indexes
        }
        cache.write_text(json.dumps({str(k): list(v) for k, v in boxes.items()}), "utf-8")
    logger.info("occlusion boxes: %d photos in %.1f s", len(boxes), time.perf_counter() - started)
    variants = [f"box+{m:g}" for m in CROP_MARGINS] + ["centre"]
    records: list[dict[str, Any]] = []
    for i in indexes:
        photo = photos[i]
        box = boxes[i]
        image = decode_for_model(photo.path.read_bytes(), 4 * max(height, width))
        crops = [_crop(image, box, m) for m in CROP_MARGINS]
        lost = (1 - CENTRE_CROP) / 2
        crops.append(_crop(image, (lost, lost, 1 - lost, 1 - lost), 0.0))
        truth = labels.index(photo.species)
        record: dict[str, Any] = {
            "small": (box[2] - box[0]) * (box[3] - box[1]) < SMALL_BOX_FRACTION,
            "part": photo.part,
            "whole": int(np.argmax(probabilities[i])) == truth,
        }
        for name, cropped in zip(variants, crops, strict=True):
            after = single.run(resize_for_model(cropped, height, width)).probabilities
            record[name] = int(np.argmax(after)) == truth
        records.append(record)

    def summary(selected: list[dict[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {"photos": len(selected)}
        for name in ["whole", *variants]:
            result[f"top1_{name}"] = (
                float(np.mean([r[name] for r in selected])) if selected else None
            )
        return result

    return {
        "grid": grid,
        "small_box_fraction": SMALL_BOX_FRACTION,
        "all": summary(records),
        "small_subject": summary([r for r in records if r["small"]]),
        "large_subject": summary([r for r in records if not r["small"]]),
        "field_extra": summary([r for r in records if r["part"] == "field-extra"]),
    }


def main(
    bundle: Annotated[Path, typer.Option(help="bundle folder")] = DEMO_BUNDLE_DIR,
    data: Annotated[Path, typer.Option(help="the shared data folder")] = SHARED_DATA_DIR,
    per_group: Annotated[int, typer.Option(help="pseudo-observations per species and source")] = 20,
    crop_photos: Annotated[int, typer.Option(help="photos for the crop study (0: skip)")] = 300,
    grid: Annotated[int, typer.Option(help="occlusion grid of the crop study")] = 5,
    seed: int = 0,
    storage: Annotated[
        str, typer.Option(help="storage root holding the bundle's dataset version (its splits)")
    ] = "/work/store",
) -> None:
    """Measure fusion, the location prior and cropping on field photos; write a JSON report."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    metadata = read_metadata(bundle)
    catalog = load_catalog()
    labels = list(metadata.labels)
    runtime = BundleRuntime.for_variant(bundle, metadata, batch_size=32)
    manifest = read_manifest(open_storage(storage), metadata.dataset_version)
    photos = field_photos(data, set(labels), manifest)
    names = "\n".join(str(p.path) for p in photos).encode()
    key = f"{metadata.version}-{len(photos)}-{hashlib.sha256(names).hexdigest()[:8]}"
    probabilities, scores = predict_all(
        runtime, photos, PHOTO_CACHE_DIR / f"observations-{key}.npz"
    )
    rules = VerdictRules.from_bundle(metadata)
    counts = {
        part: sum(1 for p in photos if p.part == part)
        for part in ("field val", "field test", "field-extra", "trained")
    }
    fusion = fusion_table(photos, probabilities, scores, labels, catalog, rules, per_group, seed)
    prior = prior_table(photos, probabilities, scores, labels, catalog, rules)
    crop = (
        crop_table(
            BundleRuntime.for_variant(bundle, metadata, batch_size=grid * grid + 1),
            BundleRuntime.for_variant(bundle, metadata),
            photos,
            probabilities,
            labels,
            crop_photos,
            grid,
            seed,
            PHOTO_CACHE_DIR / f"observations-boxes-{key}-{grid}-{crop_photos}-{seed}.json",
        )
        if crop_photos
        else {}
    )
    logger.info("photos: %s", counts)
    headers = ["part", "photos", "observations", "single_top1"]
    headers += [f"{m}_top1" for m in FUSION_METHODS]
    logger.info("\n%s", format_table(headers, [[r[h] for h in headers] for r in fusion]))
    prior_headers = list(prior[0])
    logger.info("\n%s", format_table(prior_headers, [[r[h] for h in prior_headers] for r in prior]))
    logger.info("crop: %s", json.dumps(crop, indent=1))
    path = write_report(
        "observations",
        {
            "bundle": metadata.version,
            "photos": counts,
            "fusion": fusion,
            "prior": prior,
            "crop": crop,
            "seed": seed,
        },
    )
    logger.info("wrote %s", path)


if __name__ == "__main__":
    typer.run(main)
