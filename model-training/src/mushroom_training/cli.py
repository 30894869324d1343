"""`mushroom-train`: train, evaluate, export, promote and list mushroom classifiers.

Standard output carries results only (run ids, bundle versions, tables); logs go to standard error.
"""

from __future__ import annotations

import json
import logging
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from mushroom_common.commands import StorageOption, command_app, open_storage_or_exit
from mushroom_training.config import get_settings, load_config

app = command_app(
    "mushroom-train",
    "Train, evaluate, export, promote and list mushroom classifiers.",
)
logger = logging.getLogger("mushroom_training")
STDOUT = Console(width=200)
STDERR = Console(stderr=True)


def _setup_logging() -> None:
    root = logging.getLogger()
    if not any(isinstance(h, RichHandler) for h in root.handlers):
        root.addHandler(RichHandler(console=STDERR, show_path=False))
    root.setLevel(logging.INFO)
    for noisy in ("absl", "tensorflow", "h5py", "matplotlib", "alembic", "mlflow"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _command_line() -> str:
    return shlex.join(["mushroom-train", *sys.argv[1:]])


@app.command()
def train(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", exists=True, dir_okay=False, help="YAML run config"),
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", "-s", help="override: section.key=value (repeatable)"),
    ] = None,
    storage_uri: StorageOption = None,
    then_export: Annotated[
        bool, typer.Option("--export/--no-export", help="export the bundle after training")
    ] = False,
) -> None:
    """Train a classifier on a dataset version; prints the run id and run folder."""
    _setup_logging()
    from mushroom_training.export import export as export_run
    from mushroom_training.train import train as train_run

    run_config = load_config(config, overrides or [])
    storage = open_storage_or_exit(storage_uri)
    result = train_run(run_config, storage=storage, command=_command_line())
    STDOUT.print(f"run {result.run_id} {result.run_dir}")
    if then_export:
        bundle = export_run(result.run_dir, storage=storage, command=_command_line())
        STDOUT.print(f"bundle {bundle.name} {bundle.version} {bundle.uri}")


@app.command()
def export(
    run_dir: Annotated[
        Path, typer.Argument(exists=True, file_okay=False, help="training run folder")
    ],
    version: Annotated[
        str | None, typer.Option(help="bundle version (default: time and run id)")
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", "-s", help="override: export.key=value (repeatable)"),
    ] = None,
    storage_uri: StorageOption = None,
) -> None:
    """Export a run as a bundle (TFLite variants, SavedModel, report) into the registry."""
    _setup_logging()
    from mushroom_training.export import export as export_run

    bundle = export_run(
        run_dir,
        storage=open_storage_or_exit(storage_uri),
        version=version,
        command=_command_line(),
        overrides=overrides or [],
    )
    STDOUT.print(f"bundle {bundle.name} {bundle.version} {bundle.uri}")


# The options field-head and field-tune share (one definition, so the two cannot drift apart).
FieldSourceArgument = Annotated[
    Path, typer.Argument(exists=True, file_okay=False, help="the served bundle folder")
]
FieldTargetArgument = Annotated[Path, typer.Argument(help="the new bundle folder (replaced)")]
FieldDataRootOption = Annotated[
    Path, typer.Option(exists=True, file_okay=False, help="the shared data folder")
]
KeepRulesOption = Annotated[
    bool,
    typer.Option(help="keep the source's temperature and rules: measure and record only"),
]
KeepCalibrationOption = Annotated[
    bool,
    typer.Option(
        help="keep the source's temperature and open-set threshold; tune and ship the rules"
    ),
]
MeasureCatalogOption = Annotated[
    Path | None,
    typer.Option(
        exists=True,
        dir_okay=False,
        help="a species.yaml to measure with (e.g. with every field-extra species)",
    ),
]
DetectorFalseRejectionOption = Annotated[
    float | None,
    typer.Option(
        min=0.0,
        max=0.2,
        help="re-tune the not-a-mushroom threshold to this false rejection of field "
        "validation and in-source val photos (default: keep the source's)",
    ),
]
DEFAULT_DATA_ROOT = Path("../shared/data")


def _write_field_bundle(
    source: Path,
    head: Path | None,
    target: Path,
    data_root: Path,
    keep_rules: bool,
    keep_calibration: bool,
    measure_catalog: Path | None,
    detector_false_rejection: float | None,
    storage_uri: str | None,
) -> None:
    """`export_field_bundle` with the command line's options; prints the new bundle."""
    _setup_logging()
    import yaml

    from mushroom_common.bundle import read_metadata
    from mushroom_common.catalog import load_catalog, parse_catalog
    from mushroom_common.dataset import read_manifest
    from mushroom_training.field_bundle import export_field_bundle

    storage = open_storage_or_exit(storage_uri)
    parent = read_metadata(source)
    metadata = export_field_bundle(
        source,
        target,
        head,
        storage,
        read_manifest(storage, parent.dataset_version),
        data_root,
        load_catalog(),
        _command_line(),
        keep_rules=keep_rules,
        keep_calibration=keep_calibration,
        measure_catalog=(
            parse_catalog(yaml.safe_load(measure_catalog.read_text("utf-8")))
            if measure_catalog is not None
            else None
        ),
        detector_false_rejection=detector_false_rejection,
    )
    STDOUT.print(f"bundle {metadata.name} {metadata.version} {target}")


@app.command("field-head")
def field_head_command(
    source: FieldSourceArgument,
    head: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="head .npz (field_heads study)")
    ],
    target: FieldTargetArgument,
    data_root: FieldDataRootOption = DEFAULT_DATA_ROOT,
    keep_rules: KeepRulesOption = False,
    keep_calibration: KeepCalibrationOption = False,
    measure_catalog: MeasureCatalogOption = None,
    detector_false_rejection: DetectorFalseRejectionOption = None,
    storage_uri: StorageOption = None,
) -> None:
    """Write a bundle with a species head retrained for field photos (issue 23): the source's
    trunk and detector, thresholds tuned by severity on field validation photos."""
    _write_field_bundle(
        source,
        head,
        target,
        data_root,
        keep_rules,
        keep_calibration,
        measure_catalog,
        detector_false_rejection,
        storage_uri,
    )


@app.command("field-tune")
def field_tune_command(
    source: FieldSourceArgument,
    target: FieldTargetArgument,
    data_root: FieldDataRootOption = DEFAULT_DATA_ROOT,
    keep_rules: KeepRulesOption = False,
    keep_calibration: KeepCalibrationOption = False,
    measure_catalog: MeasureCatalogOption = None,
    detector_false_rejection: DetectorFalseRejectionOption = None,
    storage_uri: StorageOption = None,
) -> None:
    """Write the source's model, own head unchanged, with thresholds tuned by severity on field
    validation photos and its in-source and field numbers recorded (issue 23)."""
    _write_field_bundle(
        source,
        None,
        target,
        data_root,
        keep_rules,
        keep_calibration,
        measure_catalog,
        detector_false_rejection,
        storage_uri,
    )


@app.command()
def evaluate(
    name: Annotated[str, typer.Argument(help="model name in the registry")],
    version: Annotated[str, typer.Argument(help="bundle version")],
    dataset_version: Annotated[
        str | None, typer.Option(help="dataset version (default: the bundle's)")
    ] = None,
    split: Annotated[str, typer.Option(help="train, val or test")] = "test",
    storage_uri: StorageOption = None,
) -> None:
    """Evaluate a stored bundle's TFLite variants on a dataset version; prints JSON."""
    _setup_logging()
    from mushroom_common.registry import ModelRegistry
    from mushroom_training.evaluate import evaluate_bundle

    storage = open_storage_or_exit(storage_uri)
    with tempfile.TemporaryDirectory(prefix="bundle-") as tmp:
        ModelRegistry(storage).download(name, version, Path(tmp))
        results = evaluate_bundle(Path(tmp), storage, dataset_version, split)
    STDOUT.print_json(json.dumps(results))


@app.command()
def promote(
    name: Annotated[str, typer.Argument(help="model name in the registry")],
    version: Annotated[str, typer.Argument(help="bundle version to make the champion")],
    force: Annotated[bool, typer.Option("--force", help="promote even if worse (logged)")] = False,
    reason: Annotated[str, typer.Option(help="note kept in the promotion history")] = "",
    storage_uri: StorageOption = None,
    run_tests: Annotated[
        bool,
        typer.Option(
            "--model-tests/--no-model-tests",
            help="run model-training/tests/model on the candidate first (source checkouts)",
        ),
    ] = True,
) -> None:
    """Make a version the champion if not worse on poison cost and macro-F1 (same test split)
    and its model tests pass."""
    _setup_logging()
    from mushroom_training.promotion import PromotionRefusedError, model_tests, run_model_tests
    from mushroom_training.promotion import promote as promote_version

    checks = run_model_tests if run_tests and model_tests() is not None else None
    if run_tests and checks is None:
        logger.warning("no model tests in this installation: the metrics rule decides alone")
    try:
        event = promote_version(
            open_storage_or_exit(storage_uri),
            name,
            version,
            force=force,
            reason=reason,
            checks=checks,
        )
    except PromotionRefusedError as exc:
        logger.error("%s", exc)
        raise typer.Exit(1) from exc
    STDOUT.print(f"champion {event.name} {event.version}: {event.reason}")


@app.command("list")
def list_command(
    name: Annotated[str | None, typer.Option(help="only this model name")] = None,
    runs: Annotated[int, typer.Option(help="how many tracked runs to show")] = 20,
    storage_uri: StorageOption = None,
) -> None:
    """Leaderboard: tracked runs and registry bundles side by side."""
    _setup_logging()
    from mushroom_common.registry import ModelRegistry
    from mushroom_training.tracking import search_runs

    storage = open_storage_or_exit(storage_uri)
    registry = ModelRegistry(storage)
    table = Table(title="training runs (test split, Keras model)")
    for column in (
        "run",
        "name",
        "status",
        "dataset",
        "backbone",
        "top-1",
        "macro-F1",
        "poison cost",
        "ECE raw/scaled",
        "bundle",
    ):
        table.add_column(column)
    for run in search_runs(storage, get_settings(), runs):
        m, p, t = run.data.metrics, run.data.params, run.data.tags
        table.add_row(
            run.info.run_id[:8],
            run.info.run_name or "",
            run.info.status,
            t.get("dataset_version", ""),
            p.get("model.backbone", ""),
            _num(m.get("test/top1")),
            _num(m.get("test/macro_f1")),
            _num(m.get("test/poison_cost")),
            f"{_num(m.get('test/ece'))}/{_num(m.get('test/ece_scaled'))}",
            t.get("bundle", ""),
        )
    STDOUT.print(table)
    bundles = Table(title="registry bundles (test split, served variant)")
    for column in (
        "model",
        "version",
        "champion",
        "dataset",
        "served",
        "size MB",
        "top-1",
        "macro-F1",
        "poison cost",
        "latency 1t ms",
    ):
        bundles.add_column(column)
    for model in [name] if name else registry.names():
        current = registry.champion(model)
        for version in reversed(registry.versions(model)):
            meta = registry.metadata(model, version)
            served = meta.variant()
            bundles.add_row(
                model,
                version,
                "*" if current and current.version == version else "",
                meta.dataset_version,
                served.name,
                f"{served.size_bytes / 1e6:.1f}",
                _num(meta.metrics.get("top1")),
                _num(meta.metrics.get("macro_f1")),
                _num(meta.metrics.get("poison_cost")),
                _num(meta.metrics.get("latency_ms_1_thread")),
            )
    STDOUT.print(bundles)


@app.command()
def pack(
    name: Annotated[str, typer.Argument(help="model name in the registry")],
    version: Annotated[str, typer.Argument(help="bundle version")],
    target: Annotated[Path, typer.Argument(help="folder to write (replaced), e.g. models/demo")],
    variants: Annotated[list[str], typer.Option("--variant", help="variant to keep (repeatable)")],
    data_status: Annotated[
        str | None, typer.Option(help="replace the metadata's data_status")
    ] = None,
    storage_uri: StorageOption = None,
) -> None:
    """Copy a stored bundle into a folder with only some variants (e.g. the repository's demo)."""
    _setup_logging()
    from mushroom_common.registry import ModelRegistry
    from mushroom_training.promotion import pack_bundle

    with tempfile.TemporaryDirectory(prefix="bundle-") as tmp:
        ModelRegistry(open_storage_or_exit(storage_uri)).download(name, version, Path(tmp))
        packed = pack_bundle(Path(tmp), target, variants, data_status)
    total = sum(f.size_bytes for f in packed.files)
    STDOUT.print(f"packed {name} {version} into {target} ({total / 1e6:.1f} MB)")


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


if __name__ == "__main__":
    app()
