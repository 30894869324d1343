"""The field test: other photographers' photos, never trained on, for every model decision.

The thumbnail-dominated test split of a dataset version cannot see how a model does on field
photos (issue 23). This module fixes, for one dataset version, which photos form

- `field_val`: photos of the field sources (`FIELD_SOURCES`) that the version put in `val`: model
  selection, threshold tuning and the promotion gate read these;
- `field_test`: photos of the field sources that the version put in `test`, plus every
  `field-extra/` photo of a species the model knows (other photographers, whose sources no
  training set holds: leave-source-out). Measured, never tuned on;
- `open_set`: the `field-extra/` photos of species no training set holds (unknown-species test,
  with the catalog's edibility where it has an entry).

Which photo goes where follows the version's own split (the content hash of each file), so the
split is fixed, the same for every model trained on that version, and disjoint from training.
The field sources' `train` photos (`field_train`) stay in training; `leave_source_out` lists the
field sources whose photos a study can drop from training to measure the source shortcut.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from mushroom_common.catalog import Catalog, Edibility
from mushroom_common.dataset import ManifestRow

# Field photos inside the dataset folders: (folder, source prefix of the file name or None for
# the whole folder). web-species files are named `<source>-<blob>.jpg`.
FIELD_SOURCES: tuple[str, ...] = ("YaSeCA", "Bartekp26", "gcadet2016", "nordic-field")
FIELD_EXTRA = "field-extra"
# The dataset folders of the shared data folder that hold field-source photos.
DATASET_FIELD_FOLDERS: tuple[str, ...] = ("web-species", "nordic-field")
BIG_CLASSES: tuple[str, ...] = (
    "amanita_muscaria",
    "amanita_vaginata",
    "boletus_edulis",
    "boletus_erythropus",
)
# Death caps and destroying angels, and the grisette the model pulls them to.
DEATH_CAP_GROUP: tuple[str, ...] = (
    "amanita_phalloides",
    "amanita_virosa",
    "amanita_bisporigera",
    "amanita_ocreata",
    "amanita_verna",
    "amanita_exitialis",
)
GRISETTE = "amanita_vaginata"

Role = Literal["field_train", "field_val", "field_test", "open_set"]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class FieldPhoto:
    """One field photo: its file, species folder, source and role in the field split."""

    path: Path
    species: str
    source: str
    role: Role

    @property
    def origin(self) -> str:
        """`field-extra` or the dataset folder's field source."""
        return FIELD_EXTRA if self.source.startswith(FIELD_EXTRA) else self.source


def source_of(folder: str, path: Path) -> str:
    """The source of a photo file: the folder for nordic-field, the file-name prefix otherwise."""
    if folder == "nordic-field":
        return folder
    prefix = path.name.split("-", 1)[0]
    return f"{FIELD_EXTRA}/{prefix}" if folder == FIELD_EXTRA else prefix


def sha256_of(path: Path) -> str:
    """The sha256 of a file (the dataset manifest's content hash)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def field_photos(
    data_root: Path, manifest: Iterable[ManifestRow], labels: Sequence[str]
) -> list[FieldPhoto]:
    """Every field photo with its role, sorted by path (see the module docstring).

    Args:
        data_root: the shared data folder (`../shared/data`) holding `web-species/`,
            `nordic-field/` and `field-extra/`.
        manifest: the dataset version's rows (their split decides val/test/train).
        labels: the species the model knows.
    """
    split_of = {row.content_hash: row.split for row in manifest}
    known = set(labels)
    photos: list[FieldPhoto] = []
    for folder in DATASET_FIELD_FOLDERS:
        for path in sorted((data_root / folder).glob("*/*.jpg")):
            source = source_of(folder, path)
            if source not in FIELD_SOURCES:
                continue
            split = split_of.get(sha256_of(path))
            if split is None:  # dropped by the build (duplicate or invalid)
                continue
            role: Role = "field_test" if split == "test" else f"field_{split}"  # type: ignore[assignment]
            photos.append(FieldPhoto(path, path.parent.name, source, role))
    for path in sorted((data_root / FIELD_EXTRA).glob("*/*.jpg")):
        species = path.parent.name
        role = "field_test" if species in known else "open_set"
        photos.append(FieldPhoto(path, species, source_of(FIELD_EXTRA, path), role))
    return sorted(photos, key=lambda p: str(p.path))


def role_counts(photos: Sequence[FieldPhoto]) -> dict[str, dict[str, int]]:
    """Photos per role and origin."""
    counts: dict[str, Counter[str]] = {}
    for photo in photos:
        counts.setdefault(photo.role, Counter())[photo.origin] += 1
    return {role: dict(sorted(c.items())) for role, c in sorted(counts.items())}


@dataclass(frozen=True)
class VerdictOutcome:
    """Verdicts of one set of photos of known truth (see `safety_numbers`)."""

    verdicts: list[str]
    top1: list[str]


def _rate(hits: int, total: int) -> float | None:
    return hits / total if total else None


def accuracy_numbers(
    probabilities: FloatArray, truth: Sequence[str], labels: Sequence[str], catalog: Catalog
) -> dict[str, float | int | None]:
    """Top-1, top-5 and genus top-1 (summed genus probability) of photos of known species."""
    index = {label: i for i, label in enumerate(labels)}
    y = np.array([index[t] for t in truth], dtype=np.intp)
    n = len(y)
    if n == 0:
        return {"photos": 0, "top1": None, "top5": None, "genus_top1": None}
    order = np.argsort(-probabilities, axis=1, kind="stable")
    view = catalog.label_view(list(labels))
    genus_probs = np.zeros((n, len(view.genera)))
    np.add.at(genus_probs.T, view.genus_index, probabilities.T)
    return {
        "photos": n,
        "top1": float(np.mean(order[:, 0] == y)),
        "top5": float(np.mean((order[:, :5] == y[:, None]).any(axis=1))),
        "genus_top1": float(np.mean(genus_probs.argmax(axis=1) == view.genus_index[y])),
    }


def target_rates(
    verdicts: Sequence[str],
    truth: Sequence[str],
    top1: Sequence[str],
    toxic: Sequence[int],
    edible: Sequence[int],
) -> dict[str, float | int | None]:
    """Issue 23's target numbers (see `safety_numbers`) of the photos at `toxic` (deadly or
    poisonous species) and `edible` (edible species)."""
    return {
        "toxic_answered_dangerous": _rate(
            sum(verdicts[i] == "dangerous" for i in toxic), len(toxic)
        ),
        "edible_answered_dangerous": _rate(
            sum(verdicts[i] == "dangerous" for i in edible), len(edible)
        ),
        "edible_answered_edible_right": _rate(
            sum(verdicts[i] == "edible" and top1[i] == truth[i] for i in edible), len(edible)
        ),
        "dangerous_answered_edible": sum(verdicts[i] == "edible" for i in toxic),
    }


def safety_numbers(
    truth: Sequence[str], verdicts: Sequence[str], top1: Sequence[str], catalog: Catalog
) -> dict[str, float | int | None]:
    """The issue-23 verdict numbers of photos whose species the catalog knows.

    - `toxic_answered_dangerous`: deadly/poisonous photos answered `dangerous` (target >= 90%);
    - `edible_answered_dangerous`: edible-species photos answered `dangerous` (target <= 20%);
    - `edible_answered_edible_right`: edible-species photos answered `edible` naming the right
      species (target >= 30%);
    - `dangerous_answered_edible`: deadly/poisonous photos answered `edible` (count; target 0);
    - the share of each verdict.
    """
    edibility = [catalog.get(t).edibility if t in catalog else None for t in truth]
    toxic = [i for i, e in enumerate(edibility) if e is not None and e.is_dangerous]
    edible = [i for i, e in enumerate(edibility) if e is not None and e.is_edible]
    verdict_counts = Counter(verdicts)
    n = len(verdicts)
    return {
        "photos": n,
        "toxic_photos": len(toxic),
        "edible_photos": len(edible),
        "no_catalog_entry": sum(e is None for e in edibility),
        **target_rates(verdicts, truth, top1, toxic, edible),
        "deadly_answered_edible": sum(
            verdicts[i] == "edible" and edibility[i] == Edibility.DEADLY for i in toxic
        ),
        **{
            f"share_{v}": verdict_counts[v] / n if n else 0.0
            for v in ("dangerous", "edible", "uncertain", "not_a_mushroom")
        },
    }


def class_bias(
    probabilities: FloatArray, truth: Sequence[str], labels: Sequence[str]
) -> dict[str, float | int | None]:
    """Recall of the 4 big (about 250-photo) classes against the rest, the share of answers
    going to the big classes, and death cap / destroying angel photos answered as the grisette."""
    predicted = [labels[i] for i in np.argmax(probabilities, axis=1)]
    big = [i for i, t in enumerate(truth) if t in BIG_CLASSES]
    rest = [i for i, t in enumerate(truth) if t not in BIG_CLASSES]
    deadly = [i for i, t in enumerate(truth) if t in DEATH_CAP_GROUP]
    return {
        "big_photos": len(big),
        "big_recall": _rate(sum(predicted[i] == truth[i] for i in big), len(big)),
        "rest_photos": len(rest),
        "rest_recall": _rate(sum(predicted[i] == truth[i] for i in rest), len(rest)),
        "answers_to_big": _rate(sum(p in BIG_CLASSES for p in predicted), len(predicted)),
        "rest_answered_big": _rate(sum(predicted[i] in BIG_CLASSES for i in rest), len(rest)),
        "death_cap_photos": len(deadly),
        "death_cap_as_grisette": sum(predicted[i] == GRISETTE for i in deadly),
    }


def confusions(
    probabilities: FloatArray, truth: Sequence[str], labels: Sequence[str], limit: int = 15
) -> list[dict[str, str | int]]:
    """The most frequent (true, predicted) pairs among wrong answers."""
    predicted = [labels[i] for i in np.argmax(probabilities, axis=1)]
    pairs = Counter((t, p) for t, p in zip(truth, predicted, strict=True) if t != p)
    return [{"true": t, "predicted": p, "photos": c} for (t, p), c in pairs.most_common(limit)]
