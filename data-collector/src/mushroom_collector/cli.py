"""`mushroom-collect`: collect licensed, labelled photos and build immutable dataset versions.

Standard output carries results only (the version id as the last line of `build`); logs and
progress bars go to standard error.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.logging import RichHandler

from mushroom_collector.build import BuildError, BuildParams, build_dataset
from mushroom_collector.config import get_settings
from mushroom_collector.feedback import import_feedback, read_review_file
from mushroom_collector.folder import FolderLayoutError, import_folder
from mushroom_collector.inat import InatClient, InatCollector, InatError
from mushroom_collector.progress import STDERR
from mushroom_common.catalog import load_catalog
from mushroom_common.commands import StorageOption, command_app, open_storage_or_exit
from mushroom_common.dataset import REPORT_FILE, SPLITS, dataset_prefix, list_dataset_versions
from mushroom_common.storage import StorageError
from mushroom_common.store import (
    DatabaseUrlError,
    PredictionStore,
    StoreError,
    resolve_database_url,
)

app = command_app(
    "mushroom-collect",
    "Collect licensed mushroom photos and build immutable, validated dataset versions.",
)
logger = logging.getLogger("mushroom_collector")

QuietOption = Annotated[
    bool, typer.Option("--quiet", "-q", help="no progress bars: log lines only")
]


def _setup_logging(quiet: bool) -> None:
    root = logging.getLogger()
    if not any(isinstance(h, RichHandler) for h in root.handlers):
        handler = RichHandler(console=STDERR, show_path=False, show_time=not quiet)
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.getLogger("httpx").setLevel(logging.WARNING)


@app.command("import-folder")
def import_folder_command(
    path: Annotated[
        Path,
        typer.Argument(
            help="class-folder tree: PATH/<species>/*.jpg or PATH/<split>/<species>/*.jpg",
            exists=True,
            file_okay=False,
        ),
    ],
    storage_uri: StorageOption = None,
    quiet: QuietOption = False,
) -> None:
    """Import a local class-folder tree (no licence: the dataset card says so)."""
    _setup_logging(quiet)
    storage = open_storage_or_exit(storage_uri)
    try:
        summary = import_folder(storage, path, load_catalog(), quiet=quiet)
    except FolderLayoutError as exc:
        logger.error("%s", exc)
        raise typer.Exit(2) from exc
    for species, count in sorted(summary.per_species.items()):
        typer.echo(f"{species}\t{count}")
    typer.echo(
        f"imported {summary.imported}, already imported {summary.already_imported}, "
        f"invalid {len(summary.invalid)}"
    )


@app.command("build")
def build_command(
    storage_uri: StorageOption = None,
    seed: Annotated[int | None, typer.Option(help="split seed (default COLLECTOR_SEED)")] = None,
    min_image_side: Annotated[
        int | None,
        typer.Option(
            help="drop photos whose shorter side is below this (default COLLECTOR_MIN_IMAGE_SIDE)"
        ),
    ] = None,
    near_duplicate_distance: Annotated[
        int | None,
        typer.Option(help="pHash distance at or below which two photos are one (default 8)"),
    ] = None,
    group_distance: Annotated[
        int | None,
        typer.Option(help="pHash distance at or below which photos share a split (default 10)"),
    ] = None,
    quiet: QuietOption = False,
) -> None:
    """Build a dataset version from everything collected; prints its id last."""
    _setup_logging(quiet)
    settings = get_settings()
    storage = open_storage_or_exit(storage_uri)
    try:
        params = BuildParams(
            seed=settings.seed if seed is None else seed,
            train_fraction=settings.train_fraction,
            val_fraction=settings.val_fraction,
            test_fraction=settings.test_fraction,
            min_image_side=settings.min_image_side if min_image_side is None else min_image_side,
            near_duplicate_distance=(
                settings.near_duplicate_distance
                if near_duplicate_distance is None
                else near_duplicate_distance
            ),
            group_distance=settings.group_distance if group_distance is None else group_distance,
        )
        result = build_dataset(storage, load_catalog(), params, quiet=quiet)
    except BuildError as exc:
        logger.error("%s", exc)
        raise typer.Exit(1) from exc
    counts = result.report["counts"]
    removed = result.report["removed"]
    for species, per_split in counts["per_species"].items():
        typer.echo(
            f"{species}\ttrain {per_split['train']}\tval {per_split['val']}\t"
            f"test {per_split['test']}\ttotal {per_split['total']}"
        )
    typer.echo(
        f"total {counts['total']} ("
        + ", ".join(f"{s} {counts['per_split'][s]}" for s in SPLITS)
        + f"); removed: exact duplicates "
        f"{removed['exact_duplicates']}, near duplicates {removed['near_duplicates']}, "
        f"label conflicts {removed['label_conflicts']} "
        f"({removed['label_conflict_records']} records); "
        f"{'new version' if result.created else 'existing version, nothing written'}"
    )
    typer.echo(result.version_id)


@app.command("list")
def list_command(storage_uri: StorageOption = None) -> None:
    """List the complete dataset versions with their counts."""
    _setup_logging(quiet=True)
    storage = open_storage_or_exit(storage_uri)
    versions = list_dataset_versions(storage)
    if not versions:
        logger.info("no dataset versions in %s", storage.uri)
    for version_id in versions:
        report = storage.read_json(f"{dataset_prefix(version_id)}/{REPORT_FILE}")
        counts = report["counts"]
        splits = " ".join(f"{s} {n}" for s, n in counts["per_split"].items())
        typer.echo(
            f"{version_id}\t{report.get('built_at', '?')}\t{counts['species']} species\t"
            f"{counts['total']} photos\t{splits}"
        )


def _species_ids(names: str | None) -> list[str]:
    catalog = load_catalog()
    if not names:
        return catalog.trained_ids
    ids, unknown = [], []
    for name in (n.strip() for n in names.split(",") if n.strip()):
        species = catalog.resolve(name)
        if species is None:
            unknown.append(name)
        else:
            ids.append(species.id)
    if unknown:
        logger.error("not in the species catalog: %s", ", ".join(unknown))
        raise typer.Exit(2)
    return list(dict.fromkeys(ids))


@app.command("inat")
def inat_command(
    species: Annotated[
        str | None,
        typer.Option(
            help="comma-separated species (ids, scientific or common names); default: every "
            "species the model learns (the catalog's trained species)"
        ),
    ] = None,
    max_per_species: Annotated[
        int | None,
        typer.Option(help="stop a species at this many photos (default COLLECTOR_MAX_PER_SPECIES)"),
    ] = None,
    storage_uri: StorageOption = None,
    quiet: QuietOption = False,
) -> None:
    """Collect research-grade, openly licensed photos from iNaturalist (resumable)."""
    _setup_logging(quiet)
    settings = get_settings()
    storage = open_storage_or_exit(storage_uri)
    species_ids = _species_ids(species)
    limit = settings.max_per_species if max_per_species is None else max_per_species
    with InatClient(settings) as client:
        collector = InatCollector(storage, load_catalog(), client, settings)
        for species_id in species_ids:
            try:
                summary = collector.collect(species_id, limit, quiet=quiet)
            except InatError as exc:
                logger.error("%s: %s", species_id, exc)
                raise typer.Exit(1) from exc
            skipped = ", ".join(f"{k} {v}" for k, v in sorted(summary.skipped.items()))
            typer.echo(
                f"{species_id}\t{summary.collected} photos\t{summary.new} new\t"
                f"skipped: {skipped or 'none'}"
            )


@app.command("import-feedback")
def import_feedback_command(
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="the API's prediction and feedback database (default MUSHROOM_DATABASE_URL, "
            "else SQLite under local storage)",
        ),
    ] = None,
    reviewed: Annotated[
        bool, typer.Option("--reviewed", help="a person reviewed every photo imported now")
    ] = False,
    review_file: Annotated[
        Path | None,
        typer.Option(
            help="text file of approved feedback ids, one per line", exists=True, dir_okay=False
        ),
    ] = None,
    storage_uri: StorageOption = None,
    quiet: QuietOption = False,
) -> None:
    """Import photos people shared through feedback (unreviewed ones are train-only)."""
    _setup_logging(quiet)
    storage = open_storage_or_exit(storage_uri)
    try:
        store = PredictionStore(resolve_database_url(database_url, storage))
    except DatabaseUrlError as exc:
        logger.error("%s", exc)
        raise typer.Exit(2) from exc
    try:
        store.require_schema()
        summary = import_feedback(
            storage,
            load_catalog(),
            store,
            approve_all=reviewed,
            approved_ids=read_review_file(review_file) if review_file else None,
            quiet=quiet,
        )
    except StoreError as exc:
        logger.error("the feedback database cannot be read: %s", exc)
        raise typer.Exit(2) from exc
    finally:
        store.close()
    skipped = ", ".join(f"{k} {v}" for k, v in sorted(summary.skipped.items()))
    typer.echo(
        f"imported {summary.imported}, approved {summary.approved}, "
        f"already imported {summary.already_imported}, skipped: {skipped or 'none'}"
    )


# Exit status of a run stopped by storage: unreachable for longer than the retry deadline, or a
# full disk. Every write is atomic and every step resumable, so nothing half-written is kept.
STORAGE_FAILED_EXIT = 3


def main() -> None:
    """The `mushroom-collect` entry point: a storage failure ends with one sentence, not a trace."""
    try:
        app()
    except StorageError as exc:
        logger.error(
            "stopped: %s. Nothing half-written was kept; run the same command again when the "
            "storage is back (finished work is not repeated).",
            exc,
        )
        raise SystemExit(STORAGE_FAILED_EXIT) from None


if __name__ == "__main__":
    main()
