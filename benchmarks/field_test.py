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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
import yaml
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
from mushroom_common.catalog import Catalog, load_catalog, parse_catalog
from mushroom_common.dataset import ManifestRow, read_manifest
from mushroom_common.imaging import decode_for_model, resize_for_model
from mushroom_common.runtime import BundleRuntime, calibrated_probabilities
from mushroom_common.storage import open_storage
from mushroom_common.verdict import OpenSetMethod, VerdictRules
from mushroom_training import field, safety
from mushroom_training.open_set import auroc

logger = logging.getLogger("benchmarks.field_test")
app = typer.Typer(add_completion=False, help=__doc__)
TAUS = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class FieldRows:
    """The photos this script runs, in its row order (the order of its cached outputs): the
    dataset version's in-source val/test photos, then the measured field photos."""

    photos: list[field.FieldPhoto]
    in_source: list[ManifestRow]
    measured: list[field.FieldPhoto]

    @property
    def truth(self) -> list[str]:
        """Each row's species (an untrained one for the open-set photos)."""
        return [r.species for r in self.in_source] + [p.species for p in self.measured]

    def rows_where(self, keep: Callable[[field.FieldPhoto], bool]) -> list[int]:
        """The rows of the measured field photos that `keep` selects."""
        offset = len(self.in_source)
        return [offset + i for i, p in enumerate(self.measured) if keep(p)]

    def top1_sets(self) -> dict[str, list[int]]:
        """The rows of the sets an accuracy comparison reports (field validation decides)."""
        return {
            "field_val": self.rows_where(lambda p: p.role == "field_val"),
            "field_test": self.rows_where(lambda p: p.role == "field_test"),
            "field_test_extra": self.rows_where(
                lambda p: p.role == "field_test" and p.origin == field.FIELD_EXTRA
            ),
            "in_source_test": [i for i, r in enumerate(self.in_source) if r.split == "test"],
        }


def outputs_cache(cache_dir: Path, bundle_version: str, dataset_version: str) -> Path:
    """Where this script keeps a bundle's outputs on a dataset version's rows."""
    return cache_dir / f"{bundle_version}-{dataset_version}-v2.npz"


def field_rows(data_root: Path, manifest: list[ManifestRow], labels: list[str]) -> FieldRows:
    """The field split of a dataset version and the rows this script runs."""
    photos = field.field_photos(data_root, manifest, labels)
    field_hashes = {field.sha256_of(p.path) for p in photos}
    in_source = [
        r for r in manifest if r.split in ("val", "test") and r.content_hash not in field_hashes
    ]
    return FieldRows(photos, in_source, [p for p in photos if p.role != "field_train"])


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
    first, second = runtime.run_batch(plain), runtime.run_batch(mirrored)
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


def answers_of(
    outputs: dict[str, np.ndarray],
    truth: list[str],
    temperature: float,
    lever: str,
    prior: np.ndarray,
    tau: float,
    open_set: OpenSetMethod | None,
) -> safety.FieldAnswers:
    """The answers a lever gives: probabilities, detector and open-set scores and, with the mirror
    view, both views' probabilities (the verdict's view agreement), as `runtime.run_views`."""
    shift = tau * np.log(prior) if "adjusted" in lever else 0.0
    mirror = (
        (outputs["mirror_logits"] - shift, outputs["mirror_score"]) if "mirror" in lever else None
    )
    return safety.view_answers(
        outputs["logits"] - shift, outputs["score"], truth, temperature, open_set, mirror
    )


def measure(
    answers: safety.FieldAnswers, labels: list[str], catalog: Catalog, rules: VerdictRules
) -> dict[str, Any]:
    """Accuracy, verdict numbers and class bias of photos of known species."""
    probs, truth = answers.probabilities, answers.true_species
    result: dict[str, Any] = {
        **field.accuracy_numbers(probs, truth, labels, catalog),
        **{
            f"verdict_{k}": v
            for k, v in safety.verdict_rates(answers, labels, catalog, rules).items()
        },
        **field.class_bias(probs, truth, labels),
    }
    if answers.mushroom_scores is not None and rules.detector_threshold is not None:
        result["detector_rejected"] = float(
            np.mean(answers.mushroom_scores < rules.detector_threshold)
        )
    return result


def open_set_result(
    known: safety.FieldAnswers,
    unknown: safety.FieldAnswers,
    labels: list[str],
    catalog: Catalog,
    rules: VerdictRules,
) -> dict[str, Any]:
    """Unknown species of field-extra against the known field-test photos: AUROC of the served
    open-set score, and the verdicts of the unknowns by their catalog edibility."""
    verdicts, edibility, dangerous = safety.unknown_verdicts(unknown, labels, catalog, rules)
    known_score = (
        known.unknown_scores if known.unknown_scores is not None else -known.probabilities.max(1)
    )
    unknown_score = (
        unknown.unknown_scores
        if unknown.unknown_scores is not None
        else -unknown.probabilities.max(1)
    )
    return {
        "unknown_photos": len(verdicts),
        "with_catalog_entry": sum(e is not None for e in edibility),
        "dangerous_unknown_photos": len(dangerous),
        "auroc": auroc(known_score, unknown_score),
        "dangerous_unknown_answered_edible": sum(verdicts[i] == "edible" for i in dangerous),
        "dangerous_unknown_answered_dangerous": _share(
            sum(verdicts[i] == "dangerous" for i in dangerous), len(dangerous)
        ),
        "unknown_answered_edible": sum(v == "edible" for v in verdicts),
        "unknown_answered_edible_no_catalog_entry": sum(
            verdicts[i] == "edible" for i, e in enumerate(edibility) if e is None
        ),
        "flagged_possibly_unknown": float(np.mean(unknown_score >= rules.open_set_threshold))
        if rules.open_set_threshold is not None
        else None,
        "verdicts": dict(Counter(verdicts)),
    }


def _share(hits: int, total: int) -> float | None:
    return hits / total if total else None


def rules_summary(rules: VerdictRules) -> dict[str, Any]:
    return {
        "deadly_threshold": rules.deadly_threshold,
        "poisonous_threshold": rules.poisonous_threshold,
        "caution_threshold": rules.caution_threshold,
        "lookalike_threshold": rules.lookalike_threshold,
        "edible_mushroom_score": rules.edible_mushroom_score,
        "edible_threshold": rules.edible_threshold,
        "genus_threshold": rules.genus_threshold,
        "open_set_threshold": rules.open_set_threshold,
        "detector_threshold": rules.detector_threshold,
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
    catalog_file: Annotated[
        Path | None, typer.Option(help="a species.yaml to judge with (default: the package's)")
    ] = None,
    cache_dir: Annotated[Path, typer.Option(help="model outputs cached per bundle version")] = Path(
        "mushroom-data/field-cache"
    ),
    label: Annotated[str, typer.Option(help="a name for this bundle in the report")] = "served",
    levers: Annotated[
        list[str] | None,
        typer.Option("--lever", help="served, mirror, adjusted (repeatable; default: all three)"),
    ] = None,
    results_dir: Annotated[Path, typer.Option(help="where the JSON report goes")] = RESULTS_DIR,
) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    started = time.perf_counter()
    metadata = read_metadata(bundle_dir)
    version = dataset_version or metadata.dataset_version
    if version is None:
        raise typer.BadParameter("the bundle names no dataset version: pass --dataset-version")
    if not (data_root / field.FIELD_EXTRA).is_dir():
        raise typer.BadParameter(f"{data_root} holds no {field.FIELD_EXTRA}/ folder")
    storage = open_storage(storage_uri)
    manifest = read_manifest(storage, version)
    labels = list(metadata.labels)
    catalog = (
        parse_catalog(yaml.safe_load(catalog_file.read_text("utf-8")))
        if catalog_file is not None
        else load_catalog()
    )
    rows = field_rows(data_root, manifest, labels)
    photos, in_source = rows.photos, rows.in_source
    logger.info("field split: %s", field.role_counts(photos))

    runtime = BundleRuntime.for_variant(bundle_dir, metadata, num_threads=2, batch_size=8)
    size = metadata.input.height
    cache = outputs_cache(cache_dir, metadata.version, version)
    if cache.exists():
        stored = dict(np.load(cache))
    else:
        t0 = time.perf_counter()
        blobs = [storage.read_bytes(r.image_key) for r in in_source] + [
            p.path.read_bytes() for p in rows.measured
        ]
        stored = run_photos(runtime, blobs, size)
        logger.info("ran %d photos x 2 views in %.0f s", len(blobs), time.perf_counter() - t0)
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(
            cache,
            logits=stored["logits"],
            mirror_logits=stored["mirror_logits"],
            score=stored["score"],
            mirror_score=stored["mirror_score"],
        )
    truth = rows.truth

    def rows_where(keep: Any) -> tuple[np.ndarray, list[str]]:
        idx = rows.rows_where(keep)
        return np.array(idx, np.intp), [truth[i] for i in idx]

    sets: dict[str, tuple[np.ndarray, list[str]]] = {}
    for split in ("val", "test"):
        idx = [i for i, r in enumerate(in_source) if r.split == split]
        sets[f"in_source_{split}"] = (np.array(idx, np.intp), [in_source[i].species for i in idx])
    for role in ("field_val", "field_test", "open_set"):
        sets[role] = rows_where(lambda p, role=role: p.role == role)
    sets["field_test_extra"] = rows_where(
        lambda p: p.role == "field_test" and p.origin == field.FIELD_EXTRA
    )
    sets["field_test_sources"] = rows_where(
        lambda p: p.role == "field_test" and p.origin != field.FIELD_EXTRA
    )

    train_counts = Counter(r.species for r in manifest if r.split == "train")
    prior = np.array([train_counts[label] for label in labels], np.float64) + 1.0
    prior /= prior.sum()
    served_rules = VerdictRules.from_bundle(metadata)
    temperature = runtime.temperature

    def answers(name: str, lever: str, tau: float = 0.0) -> safety.FieldAnswers:
        idx, truth = sets[name]
        out = {k: v[idx] for k, v in stored.items()}
        return answers_of(out, truth, temperature, lever, prior, tau, served_rules.open_set_method)

    # tau of the logit adjustment: the best field-validation top-1 (never the field test).
    val_y = np.array([labels.index(t) for t in sets["field_val"][1]])
    tau_val = {
        tau: float(np.mean(answers("field_val", "adjusted", tau).probabilities.argmax(1) == val_y))
        for tau in TAUS
    }
    best_tau = max(TAUS, key=lambda t: (tau_val[t], -t))
    logger.info("field-val top-1 by tau: %s -> tau %.2f", tau_val, best_tau)

    # Severity thresholds tuned on field validation (safety set: the in-source val photos).
    results: dict[str, Any] = {}
    tuned: dict[str, Any] = {}
    for lever in levers or ["served", "mirror", "adjusted"]:
        tau = best_tau if lever == "adjusted" else 0.0
        rules_by_name = {"bundle rules": served_rules}
        field_rules, grid = safety.tune_field_rules(
            answers("field_val", lever, tau),
            [answers("in_source_val", lever, tau)],
            labels,
            catalog,
            served_rules,
            safety.FieldTuningSettings(),
        )
        rules_by_name["field-val rules"] = field_rules
        tuned[lever] = {"rules": rules_summary(field_rules), "grid_points": len(grid)}
        for rules_name, rules in rules_by_name.items():
            key = f"{lever} / {rules_name}"
            results[key] = {"rules": rules_summary(rules)}
            for name in sets:
                if name in ("open_set",):
                    continue
                results[key][name] = measure(answers(name, lever, tau), labels, catalog, rules)
            results[key]["open_set"] = open_set_result(
                answers("field_test", lever, tau),
                answers("open_set", lever, tau),
                labels,
                catalog,
                rules,
            )
            results[key]["severity_curves"] = {
                name: safety.severity_curves(answers(name, lever, tau), labels, catalog, rules)
                for name in ("field_val", "field_test")
            }
    served_field = answers("field_test", "served").probabilities
    payload = {
        "machine": describe_machine(machine_info()),
        "label": label,
        "bundle": {"version": metadata.version, "dir": str(bundle_dir), "dataset_version": version},
        "catalog": str(catalog_file) if catalog_file else "package",
        "split": {
            "definition": field.__doc__,
            "counts": field.role_counts(photos),
            "in_source": {k: len(v[0]) for k, v in sets.items() if k.startswith("in_source")},
            "field_sources": list(field.FIELD_SOURCES),
        },
        "tau_field_val_top1": {str(k): v for k, v in tau_val.items()},
        "tau_chosen_on_field_val": best_tau,
        "tuned_rules": tuned,
        "results": results,
        "field_test_confusions": field.confusions(served_field, sets["field_test"][1], labels),
        "seconds": time.perf_counter() - started,
    }
    path = write_report("field_test", payload, results_dir)
    for key, by_set in results.items():
        for name in ("in_source_test", "field_val", "field_test", "field_test_extra"):
            r = by_set[name]
            logger.info(
                "%-28s %-18s n=%4d top1 %.3f top5 %.3f genus %.3f | tox->dang %s "
                "ed->dang %s ed->ed %s dang->ed %d | big %s rest %s",
                key,
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
        o = by_set["open_set"]
        logger.info(
            "%-28s open set: auroc %.3f, dangerous unknowns (%d) answered edible %d, dangerous %s",
            key,
            o["auroc"],
            o["dangerous_unknown_photos"],
            o["dangerous_unknown_answered_edible"],
            _pct(o["dangerous_unknown_answered_dangerous"]),
        )
    logger.info("rules tuned on field val: %s", tuned)
    logger.info("wrote %s", path)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


if __name__ == "__main__":
    app()
