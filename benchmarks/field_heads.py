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

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from _common import (
    DEMO_BUNDLE_DIR,
    RESULTS_DIR,
    SHARED_DATA_DIR,
    describe_machine,
    machine_info,
    write_report,
)
from PIL import ImageOps

from mushroom_common.bundle import read_metadata
from mushroom_common.catalog import Catalog, load_catalog
from mushroom_common.dataset import read_manifest
from mushroom_common.imaging import decode_for_model, resize_for_model
from mushroom_common.storage import open_storage
from mushroom_common.verdict import VerdictRules, judge
from mushroom_training import field, field_head
from mushroom_training.metrics import fit_temperature, softmax
from mushroom_training.open_set import auroc

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
    items: list[tuple[str, str, str, Path | None]] = [
        (r.content_hash, r.species, r.split, None) for r in rows
    ]
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


@dataclass
class Features:
    """The cached features of every photo, in the order of `plain.npz`."""

    species: np.ndarray
    split: np.ndarray
    role: np.ndarray
    origin: np.ndarray
    plain: np.ndarray
    mirror: np.ndarray
    logits: np.ndarray
    augmented: list[np.ndarray]  # per round: features of the train photos (train order)
    train_mask: np.ndarray


def load_features(cache_dir: Path, rounds: int) -> Features:
    plain = np.load(cache_dir / "plain.npz")
    split = plain["split"]
    train_mask = split == "train"
    augmented = []
    train_hashes = plain["hashes"][train_mask]
    for view in range(rounds):
        path = cache_dir / f"aug{view}.npz"
        if not path.exists():
            break
        aug = np.load(path)
        position = {h: i for i, h in enumerate(aug["hashes"])}
        augmented.append(aug["features"][[position[h] for h in train_hashes]])
    return Features(
        plain["species"],
        split,
        plain["role"],
        plain["origin"],
        plain["features"],
        plain["mirror_features"],
        plain["logits"],
        augmented,
        train_mask,
    )


def evaluation_sets(f: Features) -> dict[str, np.ndarray]:
    """Row indexes of each measured set (see `mushroom_training.field`)."""
    field_rows = np.isin(f.role, ["field_val", "field_test", "field_train", "open_set"])
    return {
        "val": np.flatnonzero(f.split == "val"),
        "in_source_test": np.flatnonzero((f.split == "test") & ~field_rows),
        "field_val": np.flatnonzero(f.role == "field_val"),
        "field_test": np.flatnonzero(f.role == "field_test"),
        "field_test_extra": np.flatnonzero(
            (f.role == "field_test") & (f.origin == field.FIELD_EXTRA)
        ),
        "field_test_sources": np.flatnonzero(
            (f.role == "field_test") & (f.origin != field.FIELD_EXTRA)
        ),
        "open_set": np.flatnonzero(f.role == "open_set"),
    }


def source_balanced_top1(probs: np.ndarray, y: np.ndarray, origin: np.ndarray) -> float:
    """Mean over field sources of each source's top-1 (no source outweighs the others)."""
    hits = probs.argmax(axis=1) == y
    return float(np.mean([hits[origin == o].mean() for o in np.unique(origin)]))


@dataclass(frozen=True)
class _Head:
    """A linear head on the cached features, optionally averaging in the mirror view."""

    f: Features
    weights: np.ndarray
    bias: np.ndarray
    mirror_view: bool

    def logits(self, rows: np.ndarray) -> np.ndarray:
        out: np.ndarray = self.f.plain[rows] @ self.weights + self.bias
        return out

    def probabilities(self, rows: np.ndarray, temperature: float) -> np.ndarray:
        p: np.ndarray = softmax(self.logits(rows), temperature)
        if self.mirror_view:
            mirrored = self.f.mirror[rows] @ self.weights + self.bias
            p = (p + softmax(mirrored, temperature)) / 2
        return p


@dataclass(frozen=True)
class Candidate:
    name: str
    config: field_head.HeadConfig | None  # None: the served head
    views: int  # augmented rounds used (0: photo + mirror only)
    tta: bool  # mirror view averaged in at test time
    posthoc_tau: float = 0.0
    # The mean of this head and the served one (still one linear head: the weights averaged).
    mean_with_served: bool = False


CANDIDATES = (
    Candidate("served head", None, 0, False),
    Candidate("served head + mirror view", None, 0, True),
    Candidate("retrained, plain loss", field_head.HeadConfig(), 0, False),
    Candidate(
        "retrained, logit-adjusted loss (tau 1)", field_head.HeadConfig(loss_tau=1.0), 0, False
    ),
    Candidate("retrained, balanced weights", field_head.HeadConfig(balanced_weights=1.0), 0, False),
    Candidate("retrained, plain loss, field-like views", field_head.HeadConfig(), 3, False),
    Candidate(
        "retrained, logit-adjusted (tau 0.5), field-like views",
        field_head.HeadConfig(loss_tau=0.5),
        3,
        False,
    ),
    Candidate(
        "retrained, balanced weights (power 0.5), field-like views",
        field_head.HeadConfig(balanced_weights=0.5),
        3,
        False,
    ),
    Candidate(
        "retrained, plain loss, field-like views + mirror view", field_head.HeadConfig(), 3, True
    ),
    Candidate(
        "mean of served and retrained (field-like views) heads",
        field_head.HeadConfig(),
        3,
        False,
        mean_with_served=True,
    ),
)


@app.command()
def study(
    bundle_dir: Annotated[Path, typer.Option(help="the served bundle")] = DEMO_BUNDLE_DIR,
    cache_dir: Annotated[Path, typer.Option(help="where `extract` wrote the features")] = CACHE,
    epochs: Annotated[int, typer.Option(help="epochs of every head")] = 8,
    results_dir: Annotated[Path, typer.Option(help="where the JSON report goes")] = RESULTS_DIR,
    save_best: Annotated[
        Path | None, typer.Option(help="write the best head (field val) here")
    ] = None,
    only: Annotated[
        str | None,
        typer.Option(help="only the candidates whose name holds this (and the served head)"),
    ] = None,
) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    started = time.perf_counter()
    metadata = read_metadata(bundle_dir)
    labels = list(metadata.labels)
    index = {label: i for i, label in enumerate(labels)}
    catalog = load_catalog()
    f = load_features(cache_dir, 3)
    sets = evaluation_sets(f)
    y = np.array([index.get(s, -1) for s in f.species])
    w0, b0 = field_head.read_head(bundle_dir / "model_int8.tflite", len(labels))
    check = np.abs(f.plain[:200] @ w0 + b0 - f.logits[:200]).max()
    logger.info("served head on cached features vs served logits: max difference %.3f", check)
    train_y = y[f.train_mask]
    counts = np.bincount(train_y, minlength=len(labels)).astype(np.float64) + 1.0
    prior = counts / counts.sum()
    rules = VerdictRules.from_bundle(metadata)
    rows: list[dict[str, Any]] = []
    heads: dict[str, tuple[np.ndarray, np.ndarray, float]] = {}
    trained: dict[tuple[Any, int], tuple[np.ndarray, np.ndarray]] = {}
    chosen = [c for c in CANDIDATES if only is None or only in c.name or c.config is None]
    for candidate in chosen:
        t0 = time.perf_counter()
        if candidate.config is None:
            w, b = w0, b0
        else:
            key = (candidate.config, candidate.views)
            if key not in trained:
                parts = [
                    f.plain[f.train_mask],
                    f.mirror[f.train_mask],
                    *f.augmented[: candidate.views],
                ]
                x = np.concatenate(parts)
                yy = np.concatenate([train_y] * len(parts))
                config = dataclasses.replace(candidate.config, epochs=epochs)
                trained[key] = field_head.train_head(x, yy, prior, w0, b0, config)
            w, b = trained[key]
            if candidate.mean_with_served:
                w = ((w + w0) / 2).astype(np.float32)
                b = ((b + b0) / 2).astype(np.float32)
        b_used = (b - candidate.posthoc_tau * np.log(prior)).astype(np.float32)

        head = _Head(f, w, b_used, candidate.tta)
        val = sets["val"]
        temperature = fit_temperature(head.logits(val), y[val])
        fv = sets["field_val"]
        row: dict[str, Any] = {
            "candidate": candidate.name,
            "views": candidate.views,
            "mirror_view": candidate.tta,
            "config": dataclasses.asdict(candidate.config) if candidate.config else None,
            "temperature": temperature,
            "field_val_source_balanced_top1": source_balanced_top1(
                head.probabilities(fv, temperature), y[fv], f.origin[fv]
            ),
            "seconds": time.perf_counter() - t0,
        }
        for name, rows_ in sets.items():
            if name in ("val", "open_set"):
                continue
            probs = head.probabilities(rows_, temperature)
            truth = [str(s) for s in f.species[rows_]]
            row[name] = {
                **field.accuracy_numbers(probs, truth, labels, catalog),
                **field.class_bias(probs, truth, labels),
            }
            if name.startswith("field_test") or name == "field_val":
                verdicts, top1 = _verdicts(probs, labels, catalog, rules)
                row[name].update(
                    {
                        f"verdict_{k}": v
                        for k, v in field.safety_numbers(truth, verdicts, top1, catalog).items()
                    }
                )
        known = head.probabilities(sets["field_test"], temperature).max(axis=1)
        unknown = head.probabilities(sets["open_set"], temperature).max(axis=1)
        row["open_set_auroc"] = auroc(-known, -unknown)
        rows.append(row)
        heads[candidate.name] = (w, b_used, temperature)
        logger.info(
            "%-58s fval(bal) %.3f | ftest %.3f genus %.3f extra %.3f | in-src %.3f | "
            "big %.3f rest %.3f | auroc %.3f (%.0f s)",
            candidate.name,
            row["field_val_source_balanced_top1"],
            row["field_test"]["top1"],
            row["field_test"]["genus_top1"],
            row["field_test_extra"]["top1"],
            row["in_source_test"]["top1"],
            row["field_test"]["big_recall"] or 0,
            row["field_test"]["rest_recall"] or 0,
            row["open_set_auroc"],
            row["seconds"],
        )
    best = max(rows, key=lambda r: r["field_val_source_balanced_top1"])
    logger.info("best on field validation: %s", best["candidate"])
    if save_best is not None:
        w, b, temperature = heads[best["candidate"]]
        # The int8 logits must cover what the head gives (a margin for unseen photos).
        every = np.concatenate([f.plain, f.mirror]) @ w + b
        spread = float(every.max() - every.min())
        np.savez(
            save_best,
            weights=w,
            bias=b,
            temperature=temperature,
            mirror_view=next(c.tta for c in chosen if c.name == best["candidate"]),
            candidate=best["candidate"],
            served_head=next(c.config is None for c in chosen if c.name == best["candidate"]),
            logit_range=np.array([every.min() - 0.1 * spread, every.max() + 0.1 * spread]),
        )
    path = write_report(
        "field_heads",
        {
            "machine": describe_machine(machine_info()),
            "bundle": metadata.version,
            "epochs": epochs,
            "chosen_on": "field validation, source-balanced top-1",
            "best": best["candidate"],
            "candidates": rows,
            "seconds": time.perf_counter() - started,
        },
        results_dir,
    )
    logger.info("wrote %s", path)


def _verdicts(
    probs: np.ndarray, labels: list[str], catalog: Catalog, rules: VerdictRules
) -> tuple[list[str], list[str]]:
    """The served rules on each photo (detector and open-set scores left out: the head study
    changes neither the detector nor, by itself, the open-set threshold)."""
    verdicts, top1 = [], []
    for p in probs:
        j = judge(p, labels, None, catalog, rules, top_k=1, unknown_score=-float(p.max()))
        verdicts.append(j.verdict.value)
        top1.append(j.predictions[0].species)
    return verdicts, top1


if __name__ == "__main__":
    app()
