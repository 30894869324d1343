"""Report sections for a model of many species: genera, confusions, poison table, sources,
the open-set run, the ablations and the verdict trade-off.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from mushroom_common.catalog import Catalog, Edibility
from mushroom_common.dataset import ManifestRow

_FOLDER = re.compile(r"local folder ([^)]+)\)")


def photo_origin(row: ManifestRow) -> str:
    """Where a photo came from: the source, the folder tree and the file's source prefix.

    Folder imports record the path as `<tree>/<species>/<file>`; files named
    `<source>-<id>.<ext>` carry the source they were collected from.
    """
    if row.source != "folder":
        return row.source
    match = _FOLDER.search(row.attribution)
    if not match:
        return "folder"
    parts = match.group(1).split("/")
    tree, name = parts[0], parts[-1]
    prefix = name.split("-", 1)[0] if "-" in name else ""
    return f"{tree}/{prefix}" if prefix else tree


def is_thumbnail(row: ManifestRow, max_side: int = 260) -> bool:
    """A web thumbnail: at most `max_side` pixels on the long side."""
    return max(row.width, row.height) <= max_side


def _top1(predicted: np.ndarray, labels: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    count = int(mask.sum())
    top1 = float(np.mean(predicted[mask] == labels[mask])) if count else float("nan")
    return {"photos": count, "top1": top1}


def by_origin(
    rows: list[ManifestRow], labels: np.ndarray, predictions: dict[str, np.ndarray]
) -> dict[str, Any]:
    """Top-1 of each model (name -> predicted indices) per photo origin and for thumbnails."""
    origins = np.array([photo_origin(r) for r in rows])
    thumbnails = np.array([is_thumbnail(r) for r in rows])
    groups: dict[str, np.ndarray] = {
        "web thumbnails (long side <= 260 px)": thumbnails,
        "larger photos (field-photo folders and sources)": ~thumbnails,
    }
    for origin in sorted(set(origins)):
        groups[f"origin {origin}"] = origins == origin
    return {
        group: {name: _top1(predicted, labels, mask) for name, predicted in predictions.items()}
        for group, mask in groups.items()
    }


def per_genus(
    labels: list[str], true: np.ndarray, probabilities: np.ndarray, catalog: Catalog
) -> list[dict[str, Any]]:
    """Genus-level results: the summed species probability ranks the genera."""
    genus_of = np.array([catalog.get(label).genus for label in labels])
    genera = sorted(set(genus_of))
    index = {g: i for i, g in enumerate(genera)}
    genus_index = np.array([index[g] for g in genus_of])
    genus_probabilities = np.zeros((len(true), len(genera)))
    for j, g in enumerate(genus_index):
        genus_probabilities[:, g] += probabilities[:, j]
    predicted = genus_probabilities.argmax(axis=1)
    true_genus = genus_index[true]
    rows = []
    for g, name in enumerate(genera):
        mask = true_genus == g
        if not mask.any():
            continue
        rows.append(
            {
                "genus": name,
                "family": catalog.get(labels[int(np.flatnonzero(genus_index == g)[0])]).family,
                "species": int((genus_index == g).sum()),
                "photos": int(mask.sum()),
                "genus_top1": float(np.mean(predicted[mask] == g)),
                "species_top1": float(np.mean(probabilities[mask].argmax(axis=1) == true[mask])),
            }
        )
    return rows


def genus_top1(
    labels: list[str], true: np.ndarray, probabilities: np.ndarray, catalog: Catalog
) -> float:
    """Share of photos whose most likely genus (summed probabilities) is the true genus."""
    rows = per_genus(labels, true, probabilities, catalog)
    photos = sum(int(r["photos"]) for r in rows)
    return float(sum(float(r["genus_top1"]) * int(r["photos"]) for r in rows) / max(photos, 1))


def worst_confusions(
    labels: list[str], true: np.ndarray, predicted: np.ndarray, catalog: Catalog, count: int = 20
) -> list[dict[str, Any]]:
    """The most frequent (true, predicted) mistakes, with both species' edibility."""
    pairs = Counter(
        (int(t), int(p)) for t, p in zip(true, predicted, strict=True) if int(t) != int(p)
    )
    return [
        {
            "true": labels[t],
            "true_edibility": catalog.get(labels[t]).edibility.value,
            "predicted": labels[p],
            "predicted_edibility": catalog.get(labels[p]).edibility.value,
            "photos": n,
        }
        for (t, p), n in pairs.most_common(count)
    ]


def poison_table(
    labels: list[str], true: np.ndarray, predicted: np.ndarray, catalog: Catalog
) -> dict[str, dict[str, int]]:
    """Counts of true edibility class (rows) against the top-1 species' class (columns)."""
    classes = [e.value for e in Edibility]
    table = {t: dict.fromkeys(classes, 0) for t in classes}
    for t, p in zip(true, predicted, strict=True):
        table[catalog.get(labels[int(t)]).edibility.value][
            catalog.get(labels[int(p)]).edibility.value
        ] += 1
    return {row: counts for row, counts in table.items() if sum(counts.values())}


def plot_coverage_curve(
    curves: dict[str, list[dict[str, float]]], chosen: float, path: Path
) -> None:
    """Edible coverage and dangerous photos answered `edible` against the edible threshold."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for split, rows in curves.items():
        thresholds = [r["edible_threshold"] for r in rows]
        left.plot(thresholds, [r["edible_coverage"] for r in rows], marker="o", label=split)
        right.plot(
            [r["dangerous_as_edible"] for r in rows],
            [r["edible_coverage"] for r in rows],
            marker="o",
            label=split,
        )
    left.axvline(chosen, color="grey", linestyle="--", label="chosen")
    left.set_xlabel("edible threshold (top species' probability)")
    left.set_ylabel("edible photos answered 'edible', right species")
    left.legend()
    right.set_xlabel("deadly/poisonous photos answered 'edible'")
    right.set_ylabel("edible coverage")
    right.legend()
    fig.suptitle("Edible coverage against safety (danger threshold fixed at the tuned value)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
