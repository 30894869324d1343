"""Import a class-folder tree: `PATH/<species>/*.jpg` or `PATH/<split>/<species>/*.jpg`."""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from mushroom_collector.images import InvalidImageError, normalise_photo
from mushroom_collector.progress import progress_bar
from mushroom_collector.records import existing_record_ids, now_utc, store_photo, write_record
from mushroom_common.catalog import Catalog
from mushroom_common.dataset import CollectedPhoto, Split
from mushroom_common.storage import Storage

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif"})
SPLIT_ALIASES: dict[str, Split] = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}
FOLDER_LICENSE = "unlicensed"


class FolderLayoutError(ValueError):
    """The folder is not a class-folder tree of known species."""


@dataclass(frozen=True)
class FolderPhoto:
    """One image file found in the tree."""

    path: Path
    relative: str
    species: str
    split: Split | None


@dataclass
class ImportSummary:
    """What one import did."""

    found: int = 0
    imported: int = 0
    already_imported: int = 0
    reencoded: int = 0
    invalid: list[str] = field(default_factory=list)
    per_species: Counter[str] = field(default_factory=Counter)


def _subdirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images(path: Path) -> list[Path]:
    return sorted(
        p
        for p in path.rglob("*")
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )


def scan_folder(root: Path, catalog: Catalog) -> list[FolderPhoto]:
    """Find every image under root with its species (and split, when the tree has splits).

    Raises:
        FolderLayoutError: root is not a folder, has no class folders, mixes split and class
            folders, or names a species the catalog does not know (every unknown name listed).
    """
    if not root.is_dir():
        raise FolderLayoutError(f"{root} is not a folder")
    top = _subdirs(root)
    if not top:
        raise FolderLayoutError(f"{root} has no class folders (expected {root}/<species>/*.jpg)")
    split_dirs = [d for d in top if d.name.lower() in SPLIT_ALIASES]
    if split_dirs and len(split_dirs) != len(top):
        others = ", ".join(d.name for d in top if d not in split_dirs)
        raise FolderLayoutError(f"{root} mixes split folders and class folders ({others})")
    class_dirs: list[tuple[Path, Split | None]] = []
    if split_dirs:
        for split_dir in split_dirs:
            class_dirs += [(d, SPLIT_ALIASES[split_dir.name.lower()]) for d in _subdirs(split_dir)]
    else:
        class_dirs = [(d, None) for d in top]
    unknown = sorted({d.name for d, _ in class_dirs if catalog.resolve(d.name) is None})
    if unknown:
        raise FolderLayoutError(
            f"{root}: folder names not in the species catalog: {', '.join(unknown)}. "
            f"Use catalog ids, scientific or common names; known ids: {', '.join(catalog.ids)}"
        )
    photos = []
    for class_dir, split in class_dirs:
        species = catalog.resolve(class_dir.name)
        assert species is not None  # checked above
        for path in _images(class_dir):
            relative = path.relative_to(root).as_posix()
            photos.append(FolderPhoto(path, relative, species.id, split))
    return photos


def folder_record_id(root: Path, relative: str) -> str:
    """A stable record id: the same file of the same tree always gets the same id."""
    digest = hashlib.sha256(f"{root.name}/{relative}".encode()).hexdigest()
    return f"folder-{digest[:24]}"


def import_folder(
    storage: Storage, root: Path, catalog: Catalog, *, quiet: bool = False
) -> ImportSummary:
    """Import every image under root; files imported before are skipped (resumable).

    Local folders carry no licence: records get licence 'unlicensed' and an attribution that
    names the folder, and the dataset card says so.
    """
    root = root.resolve()
    photos = scan_folder(root, catalog)
    done = existing_record_ids(storage, "folder")
    summary = ImportSummary(found=len(photos))
    with progress_bar(f"import {root.name}", len(photos), quiet=quiet) as advance:
        for photo in photos:
            record_id = folder_record_id(root, photo.relative)
            if record_id in done:
                summary.already_imported += 1
                summary.per_species[photo.species] += 1
                advance()
                continue
            try:
                stored = normalise_photo(photo.path.read_bytes())
            except InvalidImageError as exc:
                logger.warning("skipping %s: %s", photo.path, exc)
                summary.invalid.append(photo.relative)
                advance()
                continue
            key = store_photo(storage, stored)
            origin = f"{root.name}/{photo.relative}"
            write_record(
                storage,
                CollectedPhoto(
                    record_id=record_id,
                    content_hash=stored.content_hash,
                    image_key=key,
                    species=photo.species,
                    source="folder",
                    license=FOLDER_LICENSE,
                    attribution=f"unknown photographer, no licence (local folder {origin})",
                    original_path=origin,
                    original_split=photo.split,
                    collected_at=now_utc(),
                ),
            )
            summary.imported += 1
            summary.reencoded += int(stored.reencoded)
            summary.per_species[photo.species] += 1
            advance()
    logger.info(
        "%s: %d images found, %d imported, %d already imported, %d invalid, %d re-encoded",
        root,
        summary.found,
        summary.imported,
        summary.already_imported,
        len(summary.invalid),
        summary.reencoded,
    )
    return summary
