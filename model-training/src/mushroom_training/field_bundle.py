"""A bundle whose species head was retrained for field photos (issue 23), from a served bundle.

`mushroom-train field-head` writes it: the served int8 model with a new head
(`field_head.replace_head`), its temperature fitted on the dataset version's val split, its
verdict thresholds tuned by severity on field validation photos (`safety.tune_field_rules`,
never the field test), the test-time views the head was chosen with, and metrics on the
version's test split and on the field test (`field`). Trunk, detector and input contract are the
served bundle's; so are the plots of the parent run, which the report says.
`mushroom-train field-tune` (and the pipeline's `field` step) keeps the source's own head and
writes the same bundle around it: thresholds tuned on field validation, every number measured.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from mushroom_common.bundle import (
    BundleMetadata,
    InferenceView,
    MushroomDetectorSpec,
    hash_bundle_files,
    read_metadata,
    write_metadata,
)
from mushroom_common.catalog import Catalog
from mushroom_common.dataset import ManifestRow
from mushroom_common.imaging import decode_for_model, resize_for_model
from mushroom_common.runtime import BundleRuntime, variant_temperature
from mushroom_common.storage import Storage
from mushroom_common.verdict import OpenSetMethod, VerdictRules
from mushroom_training import field, field_head, safety
from mushroom_training.metrics import fit_temperature
from mushroom_training.open_set import auroc
from mushroom_training.report import render_markdown

logger = logging.getLogger(__name__)

# The numbers every evaluation column carries (metadata keys: plain for the test split,
# `field_` for the field test, `field_val_` for field validation).
EVALUATION_KEYS = (
    "top1",
    "top5",
    "genus_top1",
    "toxic_answered_dangerous",
    "edible_answered_dangerous",
    "edible_answered_edible_right",
    "dangerous_answered_edible",
    "photos",
)


@dataclass(frozen=True)
class ViewOutputs:
    """A model's outputs on photos and on their mirror images."""

    logits: np.ndarray
    mirror_logits: np.ndarray
    scores: np.ndarray
    mirror_scores: np.ndarray

    def take(self, rows: np.ndarray) -> ViewOutputs:
        return ViewOutputs(
            self.logits[rows], self.mirror_logits[rows], self.scores[rows], self.mirror_scores[rows]
        )


def run_views(runtime: BundleRuntime, photos: list[bytes]) -> ViewOutputs:
    """Each photo as served (`decode_for_model` + `resize_for_model`) and mirrored."""
    height, width = runtime.input_size
    plain, mirrored = [], []
    for data in photos:
        pixels = resize_for_model(decode_for_model(data, max(height, width)), height, width)
        plain.append(pixels)
        mirrored.append(np.ascontiguousarray(pixels[:, ::-1, :]))
    first, second = runtime.run_batch(plain), runtime.run_batch(mirrored)
    # A model without a detector accepts every photo (its rules have no detector threshold).
    accept = np.ones(len(photos), np.float32)
    return ViewOutputs(
        first.logits,
        second.logits,
        first.mushroom_scores if first.mushroom_scores is not None else accept,
        second.mushroom_scores if second.mushroom_scores is not None else accept,
    )


def answers(
    outputs: ViewOutputs,
    truth: list[str],
    temperature: float,
    views: list[InferenceView],
    open_set: OpenSetMethod | None,
) -> safety.FieldAnswers:
    """The served answers (`safety.view_answers`)."""
    mirror = (
        (outputs.mirror_logits, outputs.mirror_scores) if InferenceView.MIRROR in views else None
    )
    return safety.view_answers(outputs.logits, outputs.scores, truth, temperature, open_set, mirror)


def _git_revision() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip()


def export_field_bundle(
    source_dir: Path,
    target_dir: Path,
    head_file: Path | None,
    storage: Storage,
    manifest: list[ManifestRow],
    data_root: Path,
    catalog: Catalog,
    command: str,
    *,
    keep_rules: bool = False,
    keep_calibration: bool = False,
    measure_catalog: Catalog | None = None,
    detector_false_rejection: float | None = None,
) -> BundleMetadata:
    """Write the bundle (see the module docstring) and return its metadata.

    Args:
        source_dir: the served bundle whose trunk and detector are kept.
        target_dir: the new bundle folder (replaced).
        head_file: .npz with `weights` [features, labels], `bias` [labels], `mirror_view`
            (bool) and `logit_range` (min, max of the head's logits on its training features);
            one with `served_head=True` keeps the source's head. None keeps the source's head
            and serves no mirror view (`mushroom-train field-tune`, the pipeline's field step).
        storage: where the dataset version's photos are.
        manifest: the dataset version's rows (the source bundle's version).
        data_root: the shared data folder (field photos).
        catalog: the species catalog the rules are tuned with.
        command: the command line, recorded in the metadata.
        keep_rules: keep the source's temperature and decision rules (measure only: for a
            served head whose field-tuned rules are not safe enough to ship).
        keep_calibration: keep the source's temperature and open-set threshold, but tune and
            ship the decision thresholds (the same model with new rules).
        measure_catalog: a catalog to measure with (e.g. one with entries for every
            `field-extra/` species); `catalog` still writes rules.json.
        detector_false_rejection: re-tune the not-a-mushroom threshold to turn away at most
            this share of field-validation and of in-source val mushroom photos (None: keep
            the source's threshold).
    """
    parent = read_metadata(source_dir)
    labels = list(parent.labels)
    shipped_catalog = catalog
    catalog = measure_catalog if measure_catalog is not None else catalog
    head = np.load(head_file) if head_file is not None else None
    mirror_view = head is not None and bool(head["mirror_view"])
    views = [InferenceView.ORIGINAL] + ([InferenceView.MIRROR] if mirror_view else [])
    if target_dir.exists():
        shutil.rmtree(target_dir)
    shutil.copytree(source_dir, target_dir)
    (target_dir / "metadata.json").unlink()
    model = target_dir / parent.variant().path
    retrained = head is not None and not ("served_head" in head.files and bool(head["served_head"]))
    if head is not None and retrained:
        low, high = (float(v) for v in head["logit_range"])
        field_head.replace_head(
            source_dir / parent.variant().path, model, head["weights"], head["bias"], (low, high)
        )
    runtime = BundleRuntime(
        model,
        labels=labels,
        input_size=(parent.input.height, parent.input.width),
        temperature=1.0,
        score_output=parent.mushroom_detector.output_index if parent.mushroom_detector else None,
        num_threads=2,
        batch_size=8,
    )
    photos = field.field_photos(data_root, manifest, labels)
    field_hashes = {field.sha256_of(p.path) for p in photos}
    rows = {s: [r for r in manifest if r.split == s] for s in ("val", "test")}
    measured = [p for p in photos if p.role in ("field_val", "field_test", "open_set")]
    outputs = run_views(
        runtime,
        [storage.read_bytes(r.image_key) for s in ("val", "test") for r in rows[s]]
        + [p.path.read_bytes() for p in measured],
    )
    n_val, n_test = len(rows["val"]), len(rows["test"])
    val_out = outputs.take(np.arange(n_val))
    val_truth = [r.species for r in rows["val"]]
    index = {label: i for i, label in enumerate(labels)}
    temperature = (
        variant_temperature(parent, parent.variant())
        if keep_rules or keep_calibration
        else fit_temperature(val_out.logits, np.array([index[t] for t in val_truth]))
    )
    open_set = parent.decision_rules.open_set
    method = open_set.method if open_set is not None else None

    def subset(keep: Any) -> tuple[ViewOutputs, list[str]]:
        idx = [n_val + n_test + i for i, p in enumerate(measured) if keep(p)]
        return outputs.take(np.array(idx, np.intp)), [
            measured[i - n_val - n_test].species for i in idx
        ]

    def answer(out: ViewOutputs, truth: list[str]) -> safety.FieldAnswers:
        return answers(out, truth, temperature, views, method)

    # The open-set threshold keeps its meaning: 95% of the in-source val photos pass it.
    val_answers = answer(val_out, val_truth)
    if (
        not (keep_rules or keep_calibration)
        and open_set is not None
        and val_answers.unknown_scores is not None
    ):
        open_set = open_set.model_copy(
            update={"threshold": float(np.quantile(val_answers.unknown_scores, 0.95))}
        )
    spec = parent.decision_rules.model_copy(update={"open_set": open_set, "test_time_views": views})

    field_val_outputs = subset(lambda p: p.role == "field_val")
    field_test_outputs = subset(lambda p: p.role == "field_test")
    detector = _tuned_detector(
        parent,
        detector_false_rejection,
        [field_val_outputs[0].scores, val_out.scores],
        field_test_outputs[0].scores,
    )
    detector_threshold = detector.threshold if detector is not None else None
    base = VerdictRules.from_spec(spec, detector_threshold)
    report: dict[str, Any] = {}
    field_val = answer(*field_val_outputs)
    field_test = answer(*field_test_outputs)
    in_source_val = answer(
        val_out.take(
            np.array(
                [i for i, r in enumerate(rows["val"]) if r.content_hash not in field_hashes],
                np.intp,
            )
        ),
        [r.species for r in rows["val"] if r.content_hash not in field_hashes],
    )
    settings = safety.FieldTuningSettings()
    # The grid runs with the mushroom-score rule off: its value is chosen from the tuned rules'
    # own `edible` answers below, and a re-tune that kept the source's value would raise it a
    # little more each time. Turning it on afterwards only turns `edible` into `uncertain`.
    rules, grid = safety.tune_field_rules(
        field_val,
        [in_source_val],
        labels,
        catalog,
        safety.with_edible_mushroom_score(base, None),
        settings,
    )
    # Decision sets only (field val, in-source val), never the field test; no detector: off.
    edible_score = (
        safety.edible_mushroom_score(
            [field_val, in_source_val], labels, catalog, rules, settings.edible_score_quantile
        )
        if detector is not None
        else None
    )
    rules = safety.with_edible_mushroom_score(rules, edible_score)
    report["field_tuned_rules"] = {
        "deadly_threshold": rules.deadly_threshold,
        "poisonous_threshold": rules.poisonous_threshold,
        "caution_threshold": rules.caution_threshold,
        "lookalike_threshold": rules.lookalike_threshold,
        "edible_threshold": rules.edible_threshold,
        "edible_mushroom_score": rules.edible_mushroom_score,
        "shipped": not keep_rules,
    }
    # The tuned rules measured on the field test too, also when they are not shipped.
    report["field_tuned_rules_outcome"] = {
        name: safety.verdict_rates(a, labels, catalog, rules)
        for name, a in (
            ("field_val", field_val),
            ("in_source_val", in_source_val),
            ("field_test", field_test),
        )
    }
    if keep_rules:
        rules = base
    spec = (
        spec
        if keep_rules
        else spec.model_copy(
            update={
                "danger_threshold": rules.poisonous_threshold,
                "deadly_threshold": rules.deadly_threshold,
                "poisonous_threshold": rules.poisonous_threshold,
                "caution_threshold": rules.caution_threshold,
                "lookalike_threshold": rules.lookalike_threshold,
                "edible_mushroom_score": rules.edible_mushroom_score,
                "edible_threshold": min(rules.edible_threshold, 1.01),
            }
        )
    )
    rules = VerdictRules.from_spec(spec, detector_threshold)
    test_out = outputs.take(np.arange(n_val, n_val + n_test))
    test_truth = [r.species for r in rows["test"]]
    test_answers = answer(test_out, test_truth)
    unknown = answer(*subset(lambda p: p.role == "open_set"))
    columns = {
        "test": test_answers,
        "field_val": field_val,
        "field_test": field_test,
    }
    for name, a in columns.items():
        report[name] = {
            **field.accuracy_numbers(a.probabilities, a.true_species, labels, catalog),
            **safety.verdict_rates(a, labels, catalog, rules),
            **field.class_bias(a.probabilities, a.true_species, labels),
        }
    known_scores = field_test.unknown_scores
    unknown_scores = unknown.unknown_scores
    open_auroc = (
        auroc(known_scores, unknown_scores)
        if known_scores is not None and unknown_scores is not None
        else None
    )
    report["open_set_field_extra"] = _open_set(unknown, labels, catalog, rules, open_auroc)
    report["field_test_confusions"] = field.confusions(
        field_test.probabilities, field_test.true_species, labels
    )
    report["severity_curves_field_val"] = safety.severity_curves(field_val, labels, catalog, rules)
    report["rules_grid_points"] = len(grid)
    metrics: dict[str, float] = {}
    for column, prefix in (("test", ""), ("field_test", "field_"), ("field_val", "field_val_")):
        numbers = report[column]
        for key in EVALUATION_KEYS:
            value = numbers.get(key)
            if value is not None:
                metrics[f"{prefix}{key}"] = float(value)
    # The names the demo tests and the promotion gate read since before the field test.
    metrics["verdict_dangerous_as_edible"] = metrics["dangerous_answered_edible"]
    metrics["verdict_edible_coverage"] = metrics.get("edible_answered_edible_right", 0.0)
    if open_auroc is not None:
        metrics["open_set_auroc"] = float(open_auroc)
        metrics["field_open_set_auroc"] = float(open_auroc)
    metrics["field_unknown_dangerous_answered_edible"] = float(
        report["open_set_field_extra"]["dangerous_answered_edible"]
    )
    variant = parent.variant().model_copy(
        update={
            "temperature": temperature,
            "size_bytes": model.stat().st_size,
            "metrics": {**(parent.variant().metrics if not retrained else {}), **metrics},
        }
    )
    now = datetime.now(UTC)
    if retrained:
        head_note = (
            f"Species head retrained for field photos on the pooled features of "
            f"`{parent.version}` (trunk, detector and the plots below are that run's)."
        )
    elif head_file is None:
        head_note = (
            f"The model of `{parent.version}`, unchanged (its own species head); the plots "
            "below are that run's."
        )
    else:
        head_note = (
            f"The model of `{parent.version}`, unchanged (no retrained head beat it on field "
            "validation: benchmarks/RESULTS.md); the plots below are that run's."
        )
    rules_note = (
        "Its decision rules are kept: the thresholds tuned by severity on field validation "
        f"({report['field_tuned_rules']}) answered a dangerous field-test photo `edible`."
        if keep_rules
        else "Thresholds tuned by severity on field validation "
        f"({report['field_tuned_rules']}; `safety.tune_field_rules`)"
        + (
            ": the temperature and open-set threshold are the source's."
            if keep_calibration
            else "."
        )
    )
    _write_report(
        target_dir, parent, report, metrics, temperature, views, f"{head_note} {rules_note}"
    )
    from mushroom_common import rules_export

    metadata = parent.model_copy(
        update={
            "version": f"{now:%Y%m%d-%H%M%S}-field",
            "temperature": temperature,
            "variants": [variant],
            "decision_rules": spec,
            "mushroom_detector": detector,
            "git_revision": _git_revision(),
            "created_at": now,
            "parent_run_id": parent.tracking_run_id,
            "command": command,
            # An unchanged model keeps the parent's measurements (same model, same test split).
            "metrics": {**(parent.metrics if not retrained else {}), **metrics},
            "files": [],
        }
    )
    write_metadata(target_dir, metadata)
    rules_export.write_rules_file(target_dir, metadata, shipped_catalog)
    metadata = metadata.model_copy(update={"files": hash_bundle_files(target_dir)})
    write_metadata(target_dir, metadata)
    logger.info("wrote %s: %s", target_dir, metrics)
    return metadata


def _tuned_detector(
    parent: BundleMetadata,
    false_rejection: float | None,
    tuning_scores: list[np.ndarray],
    field_test_scores: np.ndarray,
) -> MushroomDetectorSpec | None:
    """The source's detector, or one whose threshold turns away at most `false_rejection` of
    each tuning set's mushroom photos (the lowest of their quantiles), with the false rejection
    it then has on the field test. The recorded false acceptance is the source's: a higher
    threshold accepts no more, so it stays a bound."""
    detector = parent.mushroom_detector
    if detector is None or false_rejection is None:
        return detector
    threshold = min(
        float(np.quantile(np.ravel(s), false_rejection, method="lower")) for s in tuning_scores
    )
    rejected = float(np.mean(np.ravel(field_test_scores) < threshold))
    logger.info(
        "detector threshold %.4f -> %.4f (false rejection on the field test %.3f)",
        detector.threshold,
        threshold,
        rejected,
    )
    return detector.model_copy(
        update={
            "threshold": threshold,
            "false_rejection_rate": rejected,
            "false_acceptance_rate": (
                detector.false_acceptance_rate if threshold >= detector.threshold else None
            ),
        }
    )


def _open_set(
    unknown: safety.FieldAnswers,
    labels: list[str],
    catalog: Catalog,
    rules: VerdictRules,
    open_auroc: float | None,
) -> dict[str, Any]:
    verdicts, edibility, dangerous = safety.unknown_verdicts(unknown, labels, catalog, rules)
    return {
        "photos": len(verdicts),
        "with_catalog_entry": sum(e is not None for e in edibility),
        "dangerous_photos": len(dangerous),
        "auroc": open_auroc,
        "dangerous_answered_edible": sum(verdicts[i] == "edible" for i in dangerous),
        "answered_edible": sum(v == "edible" for v in verdicts),
        "verdicts": dict(Counter(verdicts)),
    }


def _write_report(
    target_dir: Path,
    parent: BundleMetadata,
    report: dict[str, Any],
    metrics: dict[str, Any],
    temperature: float,
    views: list[InferenceView],
    note: str,
) -> None:
    """report.json gains a `field` section (test split, field validation and field test
    columns); report.md is rendered again from it (`report.render_markdown`)."""
    path = target_dir / "report.json"
    document = json.loads(path.read_text("utf-8"))
    document["field"] = {
        "parent_version": parent.version,
        "note": note,
        "temperature": temperature,
        "test_time_views": [v.value for v in views],
        "metrics": metrics,
        **report,
    }
    path.write_text(json.dumps(document, indent=2) + "\n", "utf-8")
    (target_dir / "report.md").write_text(render_markdown(document), "utf-8")
