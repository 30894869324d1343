"""A bundle on the field test (issue 23): in-source test photos against other photographers' photos.

Runs a bundle through `mushroom_common.runtime` (the served path: `photo_to_input`, the bundle's
temperature, `mushroom_common.verdict.judge` with the bundle's rules) on

- the dataset version's test photos from the thumbnail and in-collection sources ("in-source"),
- the field split of `mushroom_training.field` (field validation, field test, open-set unknowns),

as served and with post-hoc levers that need no retraining: the mirror view averaged in
(test-time views) and logit adjustment by the training prior (tau chosen on field validation,
never on the field test). Writes `benchmarks/results/field_test-<time>.json`.

    MUSHROOM_STORAGE_URI=/work/store uv run python benchmarks/field_test.py --help
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
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
from mushroom_common.runtime import BundleRuntime, calibrated_probabilities
from mushroom_common.storage import open_storage
from mushroom_common.verdict import VerdictRules, judge, open_set_score
from mushroom_training import field
from mushroom_training.open_set import auroc

logger = logging.getLogger("benchmarks.field_test")
app = typer.Typer(add_completion=False, help=__doc__)
TAUS = (0.0, 0.25, 0.5, 0.75, 1.0)


def _inputs(data: bytes, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The served input of a photo and of its mirror image."""
    image = decode_for_model(data, size)
    return resize_for_model(image, size, size), resize_for_model(ImageOps.mirror(image), size, size)


def run_photos(runtime: BundleRuntime, photos: Sequence[bytes], size: int) -> dict[str, np.ndarray]:
    """Logits and mushroom scores of each photo and of its mirror image."""
    plain, mirrored = [], []
    for data in photos:
        a, b = _inputs(data, size)
        plain.append(a)
        mirrored.append(b)
    first, second = runtime.run_batch(np.stack(plain)), runtime.run_batch(np.stack(mirrored))
    if first.mushroom_scores is None or second.mushroom_scores is None:
        raise RuntimeError("the bundle has no mushroom detector")
    return {
        "logits": first.logits,
        "mirror_logits": second.logits,
        "score": first.mushroom_scores,
        "mirror_score": second.mushroom_scores,
    }


def probabilities(
    outputs: dict[str, np.ndarray], temperature: float, lever: str, prior: np.ndarray, tau: float
) -> np.ndarray:
    """Calibrated probabilities under a lever: `served`, `mirror` (mean with the mirror view),
    `adjusted` (logits minus tau * log prior) or `mirror+adjusted`."""
    shift = tau * np.log(prior) if "adjusted" in lever else 0.0
    probs = calibrated_probabilities(outputs["logits"] - shift, temperature)
    if "mirror" in lever:
        probs = (
            probs + calibrated_probabilities(outputs["mirror_logits"] - shift, temperature)
        ) / 2
    return np.asarray(probs, np.float64)


def verdicts_of(
    probs: np.ndarray, scores: np.ndarray, labels: list[str], catalog: Catalog, rules: VerdictRules
) -> tuple[list[str], list[str], np.ndarray]:
    """Verdict, top species and open-set score of each photo (the served rules)."""
    verdicts, top1, unknown = [], [], []
    method = rules.open_set_method
    for p, s in zip(probs, scores, strict=True):
        # The served open-set score of max_probability reads calibrated probabilities.
        u = -float(p.max()) if method == "max_probability" else None
        if method is not None and method != "max_probability":
            u = open_set_score(np.log(np.clip(p, 1e-12, 1)), method)
        j = judge(p, labels, float(s), catalog, rules, top_k=5, unknown_score=u)
        verdicts.append(j.verdict.value)
        top1.append(j.predictions[0].species)
        unknown.append(-float(p.max()))
    return verdicts, top1, np.array(unknown)


def measure(
    probs: np.ndarray,
    scores: np.ndarray,
    truth: list[str],
    labels: list[str],
    catalog: Catalog,
    rules: VerdictRules,
) -> dict[str, Any]:
    verdicts, top1, _ = verdicts_of(probs, scores, labels, catalog, rules)
    return {
        **field.accuracy_numbers(probs, truth, labels, catalog),
        **{
            f"verdict_{k}": v
            for k, v in field.safety_numbers(truth, verdicts, top1, catalog).items()
        },
        **field.class_bias(probs, truth, labels),
        "detector_rejected": float(np.mean(scores < (rules.detector_threshold or 0.0))),
    }


@app.command()
def main(
    bundle_dir: Annotated[Path, typer.Option(help="the bundle to measure")] = DEMO_BUNDLE_DIR,
    storage_uri: Annotated[
        str | None, typer.Option(help="storage with the dataset version")
    ] = None,
    dataset_version: Annotated[
        str | None, typer.Option(help="default: the version the bundle was trained on")
    ] = None,
    data_root: Annotated[Path, typer.Option(help="the shared data folder")] = SHARED_DATA_DIR,
    cache_dir: Annotated[Path, typer.Option(help="model outputs cached per bundle version")] = Path(
        "mushroom-data/field-cache"
    ),
    results_dir: Annotated[Path, typer.Option(help="where the JSON report goes")] = RESULTS_DIR,
) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    started = time.perf_counter()
    metadata = read_metadata(bundle_dir)
    version = dataset_version or metadata.dataset_version
    if version is None:
        raise typer.BadParameter("the bundle names no dataset version: pass --dataset-version")
    storage = open_storage(storage_uri)
    manifest = read_manifest(storage, version)
    labels = list(metadata.labels)
    catalog = load_catalog()
    photos = field.field_photos(data_root, manifest, labels)
    field_hashes = {field.sha256_of(p.path) for p in photos}
    in_source = [r for r in manifest if r.split == "test" and r.content_hash not in field_hashes]
    logger.info("field split: %s", field.role_counts(photos))

    runtime = BundleRuntime.for_variant(bundle_dir, metadata, num_threads=2, batch_size=8)
    size = metadata.input.height
    cache = cache_dir / f"{metadata.version}-{version}.npz"
    if cache.exists():
        stored = dict(np.load(cache))
    else:
        t0 = time.perf_counter()
        blobs = [storage.read_bytes(r.image_key) for r in in_source] + [
            p.path.read_bytes() for p in photos
        ]
        stored = run_photos(runtime, blobs, size)
        logger.info("ran %d photos x 2 views in %.0f s", len(blobs), time.perf_counter() - t0)
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, **stored)
    n_in = len(in_source)
    sets: dict[str, tuple[np.ndarray, list[str]]] = {
        "in_source_test": (np.arange(n_in), [r.species for r in in_source]),
    }
    for role in ("field_val", "field_test", "open_set"):
        idx = [n_in + i for i, p in enumerate(photos) if p.role == role]
        sets[role] = (np.array(idx, np.intp), [photos[i - n_in].species for i in idx])
    extra = [
        n_in + i
        for i, p in enumerate(photos)
        if p.role == "field_test" and p.origin == field.FIELD_EXTRA
    ]
    sets["field_test_extra"] = (np.array(extra, np.intp), [photos[i - n_in].species for i in extra])
    inset = [
        n_in + i
        for i, p in enumerate(photos)
        if p.role == "field_test" and p.origin != field.FIELD_EXTRA
    ]
    sets["field_test_sources"] = (
        np.array(inset, np.intp),
        [photos[i - n_in].species for i in inset],
    )

    train_counts = Counter(r.species for r in manifest if r.split == "train")
    prior = np.array([train_counts[label] for label in labels], np.float64) + 1.0
    prior /= prior.sum()
    rules = VerdictRules.from_bundle(metadata)
    temperature = runtime.temperature

    def outputs_of(idx: np.ndarray) -> dict[str, np.ndarray]:
        return {k: v[idx] for k, v in stored.items()}

    # tau of the logit adjustment: the best field-validation top-1 (never the field test).
    val_idx, val_truth = sets["field_val"]
    val_y = np.array([labels.index(t) for t in val_truth])
    tau_val = {
        tau: float(
            np.mean(
                probabilities(outputs_of(val_idx), temperature, "adjusted", prior, tau).argmax(1)
                == val_y
            )
        )
        for tau in TAUS
    }
    best_tau = max(TAUS, key=lambda t: (tau_val[t], -t))
    logger.info("field-val top-1 by tau: %s -> tau %.2f", tau_val, best_tau)

    results: dict[str, Any] = {}
    for lever in ("served", "mirror", "adjusted", "mirror+adjusted"):
        results[lever] = {}
        for name, (idx, truth) in sets.items():
            if name == "open_set":
                continue
            out = outputs_of(idx)
            probs = probabilities(out, temperature, lever, prior, best_tau)
            scores = (out["score"] + out["mirror_score"]) / 2 if "mirror" in lever else out["score"]
            results[lever][name] = measure(probs, scores, truth, labels, catalog, rules)
        # Open set: unknown species of field-extra against the known field-test photos.
        known_idx, _ = sets["field_test"]
        unk_idx, unk_truth = sets["open_set"]
        known_p = probabilities(outputs_of(known_idx), temperature, lever, prior, best_tau)
        out = outputs_of(unk_idx)
        unk_p = probabilities(out, temperature, lever, prior, best_tau)
        scores = (out["score"] + out["mirror_score"]) / 2 if "mirror" in lever else out["score"]
        verdicts, top1, unk_score = verdicts_of(unk_p, scores, labels, catalog, rules)
        edibility = [catalog.get(t).edibility if t in catalog else None for t in unk_truth]
        dangerous = [i for i, e in enumerate(edibility) if e is not None and e.is_dangerous]
        results[lever]["open_set"] = {
            "unknown_photos": len(unk_idx),
            "with_catalog_entry": sum(e is not None for e in edibility),
            "dangerous_unknown_photos": len(dangerous),
            "auroc_max_probability": auroc(-known_p.max(1), unk_score),
            "dangerous_unknown_answered_edible": sum(verdicts[i] == "edible" for i in dangerous),
            "unknown_answered_edible": sum(v == "edible" for v in verdicts),
            "unknown_answered_edible_no_entry": sum(
                verdicts[i] == "edible" for i, e in enumerate(edibility) if e is None
            ),
            "verdicts": dict(Counter(verdicts)),
        }
        _ = top1
    served_field = probabilities(
        outputs_of(sets["field_test"][0]), temperature, "served", prior, 0.0
    )
    payload = {
        "machine": describe_machine(machine_info()),
        "bundle": {"version": metadata.version, "dir": str(bundle_dir), "dataset_version": version},
        "split": {
            "definition": field.__doc__,
            "counts": field.role_counts(photos),
            "in_source_test": n_in,
            "field_sources": list(field.FIELD_SOURCES),
        },
        "rules": {
            "danger_threshold": rules.danger_threshold,
            "edible_threshold": rules.edible_threshold,
            "open_set_threshold": rules.open_set_threshold,
            "detector_threshold": rules.detector_threshold,
        },
        "tau_field_val_top1": {str(k): v for k, v in tau_val.items()},
        "tau_chosen_on_field_val": best_tau,
        "results": results,
        "field_test_confusions": field.confusions(served_field, sets["field_test"][1], labels),
        "seconds": time.perf_counter() - started,
    }
    path = write_report("field_test", payload, results_dir)
    for lever, by_set in results.items():
        for name, r in by_set.items():
            if name == "open_set":
                logger.info(
                    "%-16s %-20s auroc %.3f dangerous->edible %d",
                    lever,
                    name,
                    r["auroc_max_probability"],
                    r["dangerous_unknown_answered_edible"],
                )
            else:
                logger.info(
                    "%-16s %-20s n=%4d top1 %.3f top5 %.3f genus %.3f | tox->dang %s "
                    "ed->dang %s ed->ed %s dang->ed %d | big %s rest %s",
                    lever,
                    name,
                    r["photos"],
                    r["top1"],
                    r["top5"],
                    r["genus_top1"],
                    _pct(r["verdict_toxic_answered_dangerous"]),
                    _pct(r["verdict_edible_answered_dangerous"]),
                    _pct(r["verdict_edible_answered_edible_right"]),
                    r["verdict_dangerous_answered_edible"],
                    _pct(r["big_recall"]),
                    _pct(r["rest_recall"]),
                )
    logger.info("wrote %s", path)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


if __name__ == "__main__":
    app()
