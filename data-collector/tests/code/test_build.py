"""Folder import and dataset build on generated photos."""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image

from mushroom_collector.build import BuildParams, build_dataset, version_id_for
from mushroom_collector.folder import FolderLayoutError, import_folder
from mushroom_collector.images import hamming, near_pairs, normalise_photo
from mushroom_collector.records import load_records, store_photo, write_record
from mushroom_common.catalog import load_catalog
from mushroom_common.dataset import (
    CollectedPhoto,
    dataset_prefix,
    is_complete,
    list_dataset_versions,
    read_manifest,
)
from mushroom_common.storage import LocalStorage

MakeJpeg = Callable[..., bytes]


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _tree(root: Path, species_seeds: dict[str, range], make_jpeg: MakeJpeg) -> None:
    for species, seeds in species_seeds.items():
        for seed in seeds:
            _write(root / species / f"{seed}.jpg", make_jpeg(seed))


def test_exact_and_near_duplicates_are_removed(
    tmp_path: Path, storage: LocalStorage, make_jpeg: MakeJpeg, near_copy: Callable[..., bytes]
) -> None:
    root = tmp_path / "tree"
    _tree(root, {"boletus_edulis": range(0, 10), "amanita_muscaria": range(10, 20)}, make_jpeg)
    _write(root / "boletus_edulis" / "copy-of-0.jpg", make_jpeg(0))
    _write(root / "boletus_edulis" / "resized-1.jpg", near_copy(make_jpeg(1)))
    _write(
        root / "amanita_muscaria" / "resized-10.jpg",
        near_copy(make_jpeg(10), scale=0.9, quality=40),
    )

    summary = import_folder(storage, root, load_catalog(), quiet=True)
    assert summary.imported == 23
    result = build_dataset(storage, load_catalog(), BuildParams(), quiet=True)

    assert len(result.rows) == 20
    removed = result.report["removed"]
    assert removed["exact_duplicates"] == 1
    assert removed["near_duplicates"] == 2
    assert removed["label_conflicts"] == 0
    hashes = [row.content_hash for row in result.rows]
    assert len(set(hashes)) == len(hashes)
    # Of each near pair the larger original is kept.
    kept_sizes = {(row.width, row.height) for row in result.rows}
    assert kept_sizes == {(128, 96)}


def test_label_conflicts_are_excluded_whole(
    tmp_path: Path, storage: LocalStorage, make_jpeg: MakeJpeg, near_copy: Callable[..., bytes]
) -> None:
    root = tmp_path / "tree"
    _tree(root, {"boletus_edulis": range(0, 8), "boletus_erythropus": range(8, 16)}, make_jpeg)
    # Identical bytes under both species, and a near copy of an edulis photo filed as erythropus.
    _write(root / "boletus_erythropus" / "same-as-0.jpg", make_jpeg(0))
    _write(root / "boletus_erythropus" / "near-1.jpg", near_copy(make_jpeg(1)))

    import_folder(storage, root, load_catalog(), quiet=True)
    result = build_dataset(storage, load_catalog(), BuildParams(), quiet=True)

    conflicts = result.report["label_conflicts"]
    assert sorted(c["kind"] for c in conflicts) == ["exact", "near"]
    assert all(c["species"] == ["boletus_edulis", "boletus_erythropus"] for c in conflicts)
    assert result.report["removed"]["label_conflict_records"] == 4
    kept = {row.content_hash for row in result.rows}
    conflicted = {h for c in conflicts for h in c["content_hashes"]}
    assert not kept & conflicted
    assert len(result.rows) == 14


def _observation_records(storage: LocalStorage, make_jpeg: MakeJpeg) -> None:
    """40 observations of 3 photos each, over two species."""
    seed = 100
    for observation in range(40):
        species = "boletus_edulis" if observation % 2 else "imleria_badia"
        for photo in range(3):
            stored = normalise_photo(make_jpeg(seed))
            seed += 1
            write_record(
                storage,
                CollectedPhoto(
                    record_id=f"inat-{observation}-{photo}",
                    content_hash=stored.content_hash,
                    image_key=store_photo(storage, stored),
                    species=species,
                    source="inaturalist",
                    observation_id=str(observation),
                    observation_url=f"https://www.inaturalist.org/observations/{observation}",
                    license="cc-by",
                    attribution=f"(c) observer{observation % 5}, some rights reserved (CC BY)",
                    observer=f"observer{observation % 5}",
                    collected_at=datetime(2026, 1, 1, tzinfo=UTC),
                ),
            )


def test_groups_never_straddle_splits(storage: LocalStorage, make_jpeg: MakeJpeg) -> None:
    _observation_records(storage, make_jpeg)
    result = build_dataset(storage, load_catalog(), BuildParams(seed=7), quiet=True)

    assert len(result.rows) == 120
    split_of_group: dict[str, set[str]] = defaultdict(set)
    group_of_observation: dict[str, set[str]] = defaultdict(set)
    for row in result.rows:
        split_of_group[row.group_id].add(row.split)
        assert row.observation_url is not None
        group_of_observation[row.observation_url].add(row.group_id)
    assert all(len(splits) == 1 for splits in split_of_group.values())
    assert all(len(groups) == 1 for groups in group_of_observation.values())
    per_split = result.report["counts"]["per_split"]
    # 20 observations of 3 photos per species: 14/3/3 observations is the 70/15/15 target.
    assert per_split == {"train": 84, "val": 18, "test": 18}
    card = storage.read_text(f"{dataset_prefix(result.version_id)}/DATASET.md")
    assert all(f"**observer{i}**" in card for i in range(5))


def test_a_different_seed_gives_a_different_split_and_version(
    storage: LocalStorage, make_jpeg: MakeJpeg
) -> None:
    _observation_records(storage, make_jpeg)
    first = build_dataset(storage, load_catalog(), BuildParams(seed=1), quiet=True)
    second = build_dataset(storage, load_catalog(), BuildParams(seed=2), quiet=True)
    assert first.version_id != second.version_id
    assert {r.content_hash: r.split for r in first.rows} != {
        r.content_hash: r.split for r in second.rows
    }


def test_same_inputs_give_the_same_version_and_no_rewrite(
    tmp_path: Path, storage: LocalStorage, make_jpeg: MakeJpeg
) -> None:
    root = tmp_path / "tree"
    _tree(
        root,
        {"cantharellus_cibarius": range(0, 12), "hygrophoropsis_aurantiaca": range(12, 24)},
        make_jpeg,
    )
    import_folder(storage, root, load_catalog(), quiet=True)
    first = build_dataset(storage, load_catalog(), BuildParams(), quiet=True)
    assert first.created
    manifest = storage.local_path(f"{dataset_prefix(first.version_id)}/manifest.jsonl")
    assert manifest is not None
    written_at = manifest.stat().st_mtime_ns

    again = import_folder(storage, root, load_catalog(), quiet=True)
    assert again.imported == 0
    assert again.already_imported == 24
    second = build_dataset(storage, load_catalog(), BuildParams(), quiet=True)

    assert second.version_id == first.version_id
    assert not second.created
    assert manifest.stat().st_mtime_ns == written_at
    assert list_dataset_versions(storage) == [first.version_id]
    assert read_manifest(storage, first.version_id) == first.rows
    assert version_id_for(first.rows, BuildParams()) == first.version_id
    assert version_id_for(first.rows, BuildParams(min_image_side=65)) != first.version_id
    card = storage.read_text(f"{dataset_prefix(first.version_id)}/DATASET.md")
    assert "24 photo(s) have no licence" in card


def test_an_interrupted_build_is_invisible_and_completes_on_rerun(
    tmp_path: Path, storage: LocalStorage, make_jpeg: MakeJpeg
) -> None:
    root = tmp_path / "tree"
    _tree(root, {"boletus_edulis": range(0, 6)}, make_jpeg)
    import_folder(storage, root, load_catalog(), quiet=True)
    first = build_dataset(storage, load_catalog(), BuildParams(), quiet=True)
    # A build killed before its marker: the version does not exist yet.
    storage.delete(f"{dataset_prefix(first.version_id)}/_COMPLETE")
    assert list_dataset_versions(storage) == []
    second = build_dataset(storage, load_catalog(), BuildParams(), quiet=True)
    assert second.created
    assert second.version_id == first.version_id
    assert is_complete(storage, first.version_id)


def test_invalid_small_and_rotated_photos(
    tmp_path: Path, storage: LocalStorage, make_jpeg: MakeJpeg
) -> None:
    root = tmp_path / "tree"
    _tree(root, {"boletus_edulis": range(0, 4)}, make_jpeg)
    _write(root / "boletus_edulis" / "corrupt.jpg", make_jpeg(50)[:300])
    _write(root / "boletus_edulis" / "tiny.jpg", make_jpeg(51, size=(80, 40)))
    rotated = Image.open(io.BytesIO(make_jpeg(52, size=(120, 90))))
    exif = rotated.getexif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    buffer = io.BytesIO()
    rotated.save(buffer, "JPEG", exif=exif)
    _write(root / "boletus_edulis" / "rotated.jpg", buffer.getvalue())
    _write(root / "boletus_edulis" / "transparent.png", _png_with_alpha())

    summary = import_folder(storage, root, load_catalog(), quiet=True)
    assert summary.invalid == ["boletus_edulis/corrupt.jpg"]
    assert summary.imported == 7
    result = build_dataset(storage, load_catalog(), BuildParams(), quiet=True)

    assert result.report["removed"]["by_reason"] == {"too_small": 1}
    sizes = {(row.width, row.height) for row in result.rows}
    assert (90, 120) in sizes  # stored upright
    for row in result.rows:
        stored = Image.open(io.BytesIO(storage.read_bytes(row.image_key)))
        assert stored.format == "JPEG"
        assert stored.mode == "RGB"
        assert stored.getexif().get(0x0112, 1) == 1


def _png_with_alpha() -> bytes:
    image = Image.new("RGBA", (100, 100), (200, 120, 40, 0))
    image.paste((90, 30, 10, 255), (20, 20, 80, 80))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def test_split_folders_and_catalog_names(
    tmp_path: Path, storage: LocalStorage, make_jpeg: MakeJpeg
) -> None:
    root = tmp_path / "tree"
    _write(root / "train" / "Boletus edulis" / "a.jpg", make_jpeg(1))
    _write(root / "val" / "chanterelle" / "b.jpg", make_jpeg(2))
    import_folder(storage, root, load_catalog(), quiet=True)
    records = {r.original_path: r for r in load_records(storage)}
    assert records["tree/train/Boletus edulis/a.jpg"].species == "boletus_edulis"
    assert records["tree/train/Boletus edulis/a.jpg"].original_split == "train"
    assert records["tree/val/chanterelle/b.jpg"].species == "cantharellus_cibarius"
    assert all(r.license == "unlicensed" for r in records.values())


def test_unknown_folder_names_are_refused_and_listed(
    tmp_path: Path, storage: LocalStorage, make_jpeg: MakeJpeg
) -> None:
    root = tmp_path / "tree"
    _tree(
        root, {"boletus_edulis": range(1), "toadstool_x": range(1), "mystery": range(1)}, make_jpeg
    )
    with pytest.raises(FolderLayoutError, match="mystery, toadstool_x"):
        import_folder(storage, root, load_catalog(), quiet=True)
    assert storage.list() == []


def test_near_pairs_matches_brute_force() -> None:
    import random

    rng = random.Random(3)
    hashes = [rng.getrandbits(64) for _ in range(300)]
    hashes += [h ^ (1 << rng.randrange(64)) for h in hashes[:20]]
    expected = {
        (i, j, hamming(hashes[i], hashes[j]))
        for i in range(len(hashes))
        for j in range(i + 1, len(hashes))
        if hamming(hashes[i], hashes[j]) <= 12
    }
    assert set(near_pairs(hashes, 12, chunk=64)) == expected
    assert len(expected) >= 20
