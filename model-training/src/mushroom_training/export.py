"""Export a training run as a model bundle: TFLite variants, SavedModel, report, metadata."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import keras
import numpy as np

from mushroom_common.bundle import (
    BundleMetadata,
    DecisionRulesSpec,
    InputSpec,
    ModelVariant,
    MushroomDetectorSpec,
    OpenSetSpec,
    hash_bundle_files,
    write_metadata,
)
from mushroom_common.catalog import load_catalog
from mushroom_common.registry import ModelRegistry
from mushroom_common.rules_export import write_rules_file
from mushroom_common.runtime import BundleRuntime
from mushroom_common.storage import Storage, open_storage
from mushroom_common.verdict import VerdictRules
from mushroom_training import compress
from mushroom_training.analysis import (
    by_origin,
    genus_top1,
    per_genus,
    plot_coverage_curve,
    poison_table,
    worst_confusions,
)
from mushroom_training.compress import write_saved_model
from mushroom_training.config import Settings, TrainConfig, apply_overrides, get_settings
from mushroom_training.data import LoadedDataset, SplitData, load_dataset
from mushroom_training.distillation import assemble_student, build_student
from mushroom_training.evaluate import SCORE_OUTPUT, VariantOutputs, metrics_for, run_variant
from mushroom_training.gradcam import grad_cam
from mushroom_training.metrics import confusion_matrix, fit_temperature, per_class, softmax
from mushroom_training.model import (
    LOGITS,
    Network,
    assemble,
    compress_imagenet_head,
    load_network,
    pooled_features,
)
from mushroom_training.negatives import describe_sources, negative_set
from mushroom_training.report import (
    plot_confusion,
    plot_curves,
    plot_gradcam,
    plot_reliability,
    render_markdown,
)
from mushroom_training.safety import SplitOutputs, coverage_curve, judged_outcome, tune_rules
from mushroom_training.tracking import start_run
from mushroom_training.train import (
    HISTORY_FILE,
    STUDENT_WEIGHTS_FILE,
    WEIGHTS_FILE,
    RunInfo,
    read_run,
)

logger = logging.getLogger(__name__)

DETECTOR_METHOD = (
    "imagenet_fungus_head: summed EfficientNet-Lite0 ImageNet probabilities of the fungus classes"
)


@dataclass
class ExportResult:
    """What `export` returns."""

    name: str
    version: str
    bundle_dir: Path
    uri: str
    metadata: BundleMetadata


def tflite_file(variant: str) -> str:
    """File name of a TFLite variant inside a bundle."""
    return f"model_{variant}.tflite"


def new_version(run_id: str) -> str:
    """A sortable bundle version: UTC time and the run id's start."""
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{run_id[:8]}"


def choose_threshold(positives: np.ndarray, negatives: np.ndarray) -> float:
    """The score threshold minimising the mean of false-rejection and false-acceptance rates.

    Ties go to the lowest threshold (rejecting a real mushroom hides its warning).
    """
    candidates = np.unique(np.concatenate([positives, negatives, [0.0]]))
    best, best_error = 0.0, np.inf
    for t in candidates:
        error = (np.mean(positives < t) + np.mean(negatives >= t)) / 2
        if error < best_error - 1e-12:
            best, best_error = float(t), error
    return best


def latency_ms(
    path: Path, labels: list[str], size: int, threads: int, image: np.ndarray, runs: int = 20
) -> float:
    """Median wall time of one served (batch-1) call of a TFLite model, in milliseconds."""
    runtime = BundleRuntime(
        path, labels=labels, input_size=(size, size), temperature=1.0, num_threads=threads
    )
    for _ in range(3):
        runtime.run(image)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        runtime.run(image)
        times.append((time.perf_counter() - started) * 1000)
    return float(np.median(times))


def _keras_logits(model: keras.Model, images: np.ndarray) -> np.ndarray:
    outputs = model.predict(images, batch_size=32, verbose=0)
    return np.asarray(outputs[LOGITS], np.float32)


def _gradcam_items(
    network: Network,
    images: np.ndarray,
    labels: list[str],
    true: list[str],
    predicted: np.ndarray,
    count: int,
) -> list[dict[str, Any]]:
    wrong = [i for i, p in enumerate(predicted) if labels[p] != true[i]]
    right = [i for i, p in enumerate(predicted) if labels[p] == true[i]]
    chosen = wrong[: count // 2]
    step = max(1, len(right) // max(1, count - len(chosen)))
    chosen += right[::step][: count - len(chosen)]
    items = []
    for i in chosen:
        p = int(predicted[i])
        items.append(
            {
                "image": images[i],
                "cam": grad_cam(network, images[i], p),
                "title": f"true {true[i]}\npred {labels[p]}",
                "correct": labels[p] == true[i],
            }
        )
    return items


def export(
    run_dir: Path,
    *,
    storage: Storage | None = None,
    settings: Settings | None = None,
    version: str | None = None,
    command: str = "",
    overrides: list[str] | None = None,
) -> ExportResult:
    """Build a run's bundle, evaluate every variant, write the report and upload it to storage.

    Args:
        run_dir: a training run folder (from `train`).
        storage: the registry's storage (default: from settings).
        settings: service settings.
        version: bundle version (default: time and run id).
        command: the command line, recorded in the metadata.
        overrides: `export.key=value` changes to the run's export settings.

    Returns:
        The bundle's name, version, local folder, storage URI and metadata.
    """
    settings = settings or get_settings()
    storage = storage or open_storage(settings.storage_uri)
    info, config = read_run(run_dir)
    if overrides:
        if any(not item.startswith("export.") for item in overrides):
            raise ValueError("export overrides may only change the export section")
        document = apply_overrides(config.model_dump(mode="json"), overrides)
        config = TrainConfig.model_validate(document)
    keras.utils.set_random_seed(config.training.seed)
    name = config.export.name
    version = version or new_version(info.run_id)
    size = info.image_size
    network = load_network(
        config, len(info.labels), run_dir / WEIGHTS_FILE, settings.weights_cache_dir
    )
    data_config = config.data.model_copy(update={"dataset_version": info.dataset_version})
    dataset: LoadedDataset = load_dataset(storage, data_config, info.labels)
    test, val = dataset.splits["test"], dataset.splits["val"]
    if config.export.detector_rank:
        # The factorisation keeps the ImageNet logits that real photos produce: train photos.
        sample = np.random.default_rng(config.training.seed).permutation(
            len(dataset.splits["train"])
        )
        photos = dataset.splits["train"].images[np.sort(sample[:1024])]
        compress_imagenet_head(
            network, config.export.detector_rank, pooled_features(network, photos)
        )

    bundle_dir = run_dir / "bundle"
    shutil.rmtree(bundle_dir, ignore_errors=True)
    bundle_dir.mkdir(parents=True)

    flip_tta = config.export.flip_tta
    keras_model = assemble(network, "uint8", flip_tta=flip_tta)
    # The temperature of the exported graph (with its test-time augmentation, if any) on val.
    temperature = fit_temperature(_keras_logits(keras_model, val.images), val.labels)
    keras_test = _keras_logits(keras_model, test.images)
    keras_metrics = metrics_for(keras_test, info.labels, test.species, temperature)
    rng = np.random.default_rng(config.training.seed)
    train_images = dataset.splits["train"].images
    count = min(config.export.representative_photos, len(train_images))
    representative = train_images[np.sort(rng.choice(len(train_images), count, replace=False))]

    with tempfile.TemporaryDirectory(prefix="export-") as tmp:
        teacher_dir = (
            bundle_dir / "saved_model" if config.export.saved_model else Path(tmp) / "teacher"
        )
        float_model = assemble(network, "float32", flip_tta=flip_tta)
        write_saved_model(keras_model, float_model, size, teacher_dir)
        student_dir = Path(tmp) / "student"
        if any(v.startswith("student") for v in config.export.variants):
            trunk, head = build_student(config, len(info.labels), settings.weights_cache_dir)
            student_model = assemble_student(trunk, head, size)
            student_model.load_weights(run_dir / STUDENT_WEIGHTS_FILE)
            write_saved_model(
                student_model, assemble_student(trunk, head, size, "float32"), size, student_dir
            )
        variants: list[ModelVariant] = []
        outputs: dict[str, VariantOutputs] = {}
        for variant in config.export.variants:
            student = variant.startswith("student")
            path = tflite_file(variant)
            flatbuffer = compress.convert(
                student_dir if student else teacher_dir,
                variant.removeprefix("student_"),
                size,
                representative,
            )
            (bundle_dir / path).write_bytes(flatbuffer)
            # Each variant is calibrated with its own temperature: the student's was fitted on
            # its own val logits in training, the teacher's variants share the exported graph's.
            variant_t = (info.student_temperature or 1.0) if student else temperature
            result = run_variant(bundle_dir / path, info.labels, size, variant_t, test.images)
            metrics = metrics_for(result.logits, info.labels, test.species, variant_t)
            metrics["latency_ms_1_thread"] = latency_ms(
                bundle_dir / path, info.labels, size, 1, test.images[0]
            )
            metrics["latency_ms_2_threads"] = latency_ms(
                bundle_dir / path, info.labels, size, 2, test.images[0]
            )
            outputs[variant] = result
            variants.append(
                ModelVariant(
                    name=variant,
                    path=path,
                    format="tflite",
                    size_bytes=(bundle_dir / path).stat().st_size,
                    temperature=variant_t,
                    metrics=metrics,
                )
            )
            logger.info(
                "%s: top-1 %.4f, poison cost %.3f", variant, metrics["top1"], metrics["poison_cost"]
            )
    if config.export.saved_model:
        saved_size = sum(
            p.stat().st_size for p in (bundle_dir / "saved_model").rglob("*") if p.is_file()
        )
        variants.append(
            ModelVariant(
                name="saved_model",
                path="saved_model",
                format="saved_model",
                size_bytes=saved_size,
                temperature=temperature,
                metrics=keras_metrics,
            )
        )

    serving = config.export.serving_variant
    by_name = {v.name: v for v in variants}
    agreement = None
    if "int8" in outputs:
        int8_val = run_variant(
            bundle_dir / tflite_file("int8"), info.labels, size, temperature, val.images
        ).logits.argmax(1)
        if "float32" in outputs:
            float_val = run_variant(
                bundle_dir / tflite_file("float32"), info.labels, size, temperature, val.images
            ).logits.argmax(1)
        else:
            float_val = _keras_logits(keras_model, val.images).argmax(1)
        agreement = float(np.mean(int8_val == float_val))

    detector_spec, detector_report = _detector(
        bundle_dir, by_name, serving, outputs, val.images, size, info.labels
    )

    served = outputs[serving]
    rules_spec, broad = _decision_rules_and_analysis(
        bundle_dir,
        by_name[serving],
        served,
        val,
        test,
        info,
        config,
        served.temperature,
        detector_spec,
    )

    # Report: plots of the served variant.
    predicted = served.logits.argmax(1)
    plots = {}
    matrix = confusion_matrix(test.labels, predicted, len(info.labels))
    plot_confusion(
        matrix, info.labels, bundle_dir / "confusion_matrix.png", f"{serving}, test split"
    )
    plots["confusion matrix"] = "confusion_matrix.png"
    history = json.loads((run_dir / HISTORY_FILE).read_text("utf-8"))
    plot_curves(history, bundle_dir / "training_curves.png")
    plots["training curves"] = "training_curves.png"
    plot_reliability(served.logits, test.labels, served.temperature, bundle_dir / "reliability.png")
    plots["reliability before and after temperature scaling"] = "reliability.png"
    if config.export.gradcam_examples:
        items = _gradcam_items(
            network,
            test.images,
            info.labels,
            test.species,
            predicted,
            config.export.gradcam_examples,
        )
        plot_gradcam(items, bundle_dir / "gradcam.png")
        plots["Grad-CAM (red titles: wrong predictions)"] = "gradcam.png"

    precision, recall, _ = per_class(matrix)
    catalog = load_catalog()
    support = matrix.sum(axis=1)
    report: dict[str, Any] = {
        "name": name,
        "version": version,
        "run_id": info.run_id,
        "dataset_version": info.dataset_version,
        "test_photos": len(test),
        "backbone": info.backbone,
        "weights_loaded": info.weights_loaded,
        "git_revision": info.git_revision,
        "command": command or info.command,
        "temperature": temperature,
        "flip_tta": flip_tta,
        "student_temperature": info.student_temperature,
        "serving_variant": serving,
        "keras_metrics": keras_metrics,
        "variants": {
            v.name: {
                "size_bytes": v.size_bytes,
                "metrics": v.metrics,
                **{
                    k: v.metrics[k]
                    for k in ("latency_ms_1_thread", "latency_ms_2_threads")
                    if k in v.metrics
                },
            }
            for v in variants
        },
        "int8_float_agreement_val": agreement,
        "per_species": [
            {
                "species": label,
                "edibility": catalog.get(label).edibility.value,
                "support": int(support[i]),
                "precision": float(precision[i]),
                "recall": float(recall[i]),
            }
            for i, label in enumerate(info.labels)
        ],
        "confusion_matrix": matrix.tolist(),
        "labels": info.labels,
        "mushroom_detector": detector_report,
        "plots": plots | broad.pop("plots"),
        "counts": info.counts,
        "broad": broad,
    }
    (bundle_dir / "report.json").write_text(json.dumps(report, indent=2, default=str), "utf-8")
    (bundle_dir / "report.md").write_text(render_markdown(report), "utf-8")

    metadata = BundleMetadata(
        name=name,
        version=version,
        labels=info.labels,
        input=InputSpec(height=size, width=size),
        temperature=by_name[serving].temperature or temperature,
        serving_variant=serving,
        variants=variants,
        mushroom_detector=detector_spec,
        decision_rules=rules_spec,
        backbone=info.backbone,
        dataset_version=info.dataset_version,
        git_revision=info.git_revision,
        tracking_run_id=info.run_id,
        command=command or info.command,
        data_status=config.export.data_status,
        metrics=by_name[serving].metrics | broad["served_metrics"],
        files=hash_bundle_files(bundle_dir),
    )
    write_metadata(bundle_dir, metadata)
    # The phone's copy of the rules and catalog facts (frontend on-device identification).
    write_rules_file(bundle_dir, metadata, catalog)
    uri = ModelRegistry(storage).publish(bundle_dir)
    with start_run(storage, settings, config.run_name, run_id=info.run_id) as tracker:
        for v in variants:
            tracker.log_metrics({f"bundle/{v.name}/{k}": val for k, val in v.metrics.items()})
        tracker.set_tags({"bundle": f"{name}/{version}"})
        tracker.log_artifacts(bundle_dir, "bundle")
    logger.info("bundle %s/%s written to %s", name, version, uri)
    return ExportResult(name, version, bundle_dir, uri, metadata)


def _decision_rules_and_analysis(
    bundle_dir: Path,
    served_variant: ModelVariant,
    served: VariantOutputs,
    val: SplitData,
    test: SplitData,
    info: RunInfo,
    config: TrainConfig,
    temperature: float,
    detector_spec: MushroomDetectorSpec | None,
) -> tuple[DecisionRulesSpec, dict[str, Any]]:
    """Tune the verdict thresholds on val, then measure verdicts and the broad-model report."""
    catalog = load_catalog()
    labels = info.labels
    studies = info.studies
    open_set = studies.get("open_set")
    open_set_spec = (
        OpenSetSpec(
            method=open_set["method"],
            threshold=open_set["threshold"],
            auroc=open_set["auroc"][open_set["method"]],
        )
        if open_set
        else None
    )
    detector_threshold = detector_spec.threshold if detector_spec is not None else None
    val_run = run_variant(
        bundle_dir / served_variant.path, labels, info.image_size, temperature, val.images
    )
    val_outputs = SplitOutputs(val_run.logits, val_run.scores, val.species)
    test_outputs = SplitOutputs(served.logits, served.scores, test.species)
    spec, grid = tune_rules(
        val_outputs, labels, catalog, temperature, detector_threshold, open_set_spec, config.safety
    )
    rules = VerdictRules.from_spec(spec, detector_threshold)
    judged = {
        "val": judged_outcome(val_outputs, labels, catalog, temperature, rules),
        "test": judged_outcome(test_outputs, labels, catalog, temperature, rules),
    }
    thresholds = sorted({*config.safety.edible_thresholds, spec.edible_threshold})
    curves = {
        split: coverage_curve(
            out, labels, catalog, temperature, detector_threshold, spec, thresholds
        )
        for split, out in (("val", val_outputs), ("test", test_outputs))
    }
    plot_coverage_curve(curves, spec.edible_threshold, bundle_dir / "coverage_curve.png")
    probabilities = softmax(served.logits, temperature)
    predicted = probabilities.argmax(axis=1)
    predictions = {"served": predicted}
    same_order = studies.get("test_labels") == test.labels.tolist()
    for name in ("no_degradation", "no_genus"):
        logits = studies.get(f"test_logits_{name}")
        if logits is not None and same_order:
            predictions[name] = np.asarray(logits).argmax(axis=1)
    genus_accuracy = genus_top1(labels, test.labels, probabilities, catalog)
    served_metrics = {
        "genus_top1": genus_accuracy,
        "verdict_dangerous_as_edible": float(judged["test"]["dangerous_as_edible"]),
        "verdict_edible_coverage": float(judged["test"]["edible_coverage"]),
        "poison_cost_reranked": float(judged["test"]["poison_cost_reranked"]),
    }
    if open_set_spec is not None and open_set_spec.auroc is not None:
        served_metrics["open_set_auroc"] = open_set_spec.auroc
    broad: dict[str, Any] = {
        "decision_rules": spec.model_dump(mode="json"),
        "verdicts": judged,
        "tuning_grid_val": grid,
        "coverage_curve": curves,
        "genus_top1": genus_accuracy,
        "per_genus": per_genus(labels, test.labels, probabilities, catalog),
        "worst_confusions": worst_confusions(labels, test.labels, predicted, catalog),
        "poison_table": poison_table(labels, test.labels, predicted, catalog),
        "by_origin": by_origin(test.rows, test.labels, predictions),
        "open_set": open_set,
        "genus_loss": studies.get("genus_loss"),
        "train_seconds": info.train_seconds,
        "served_metrics": served_metrics,
        "plots": {"edible coverage against dangerous-as-edible": "coverage_curve.png"},
    }
    return spec, broad


def _detector(
    bundle_dir: Path,
    variants: dict[str, ModelVariant],
    serving: str,
    outputs: dict[str, VariantOutputs],
    val_images: np.ndarray,
    size: int,
    labels: list[str],
) -> tuple[MushroomDetectorSpec | None, dict[str, Any] | None]:
    """Threshold the served variant's mushroom score on val photos and non-mushroom images."""
    if outputs[serving].scores is None:
        return None, None
    served_path = bundle_dir / variants[serving].path
    temperature = outputs[serving].temperature
    val_scores = run_variant(served_path, labels, size, temperature, val_images).scores
    negatives, names = negative_set(size)
    negative_scores = run_variant(served_path, labels, size, temperature, negatives).scores
    assert val_scores is not None
    assert negative_scores is not None
    threshold = choose_threshold(val_scores, negative_scores)
    test_scores = outputs[serving].scores
    assert test_scores is not None
    frr = float(np.mean(test_scores < threshold))
    far = float(np.mean(negative_scores >= threshold))
    accepted = [n for n, s in zip(names, negative_scores, strict=True) if s >= threshold]
    spec = MushroomDetectorSpec(
        method=DETECTOR_METHOD,
        output_index=SCORE_OUTPUT,
        threshold=threshold,
        false_rejection_rate=frr,
        false_acceptance_rate=far,
    )
    report = {
        "method": DETECTOR_METHOD,
        "threshold": threshold,
        "false_rejection_rate": frr,
        "false_acceptance_rate": far,
        "test_photos": len(test_scores),
        "negative_images": len(names),
        "negative_sources": describe_sources(names),
        "falsely_accepted": accepted,
        "threshold_chosen_on": "val photos and the non-mushroom images (balanced error)",
        "test_score_quantiles": {q: float(np.quantile(test_scores, q)) for q in (0.01, 0.05, 0.5)},
        "negative_score_quantiles": {
            q: float(np.quantile(negative_scores, q)) for q in (0.5, 0.95, 0.99)
        },
    }
    return spec, report
