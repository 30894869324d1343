"""The real development data (../shared/data): its known defects must be caught."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from mushroom_collector.build import BuildParams, BuildResult, build_dataset
from mushroom_collector.folder import import_folder
from mushroom_collector.records import load_records
from mushroom_common.catalog import load_catalog
from mushroom_common.storage import LocalStorage

# tests/data -> data-collector -> repository root (/work/main) -> ../shared/data
SHARED_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"
MUSHROOMVISION = SHARED_DATA / "mushroomvision"
NORDIC_FIELD = SHARED_DATA / "nordic-field"

pytestmark = pytest.mark.skipif(
    not (MUSHROOMVISION.is_dir() and NORDIC_FIELD.is_dir()),
    reason=f"development data not present at {SHARED_DATA} (never copied into the repository)",
)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[LocalStorage, BuildResult]:
    storage = LocalStorage(tmp_path_factory.mktemp("shared-data") / "store")
    catalog = load_catalog()
    import_folder(storage, MUSHROOMVISION, catalog, quiet=True)
    import_folder(storage, NORDIC_FIELD, catalog, quiet=True)
    return storage, build_dataset(storage, catalog, BuildParams(), quiet=True)


def test_identical_files_under_two_species_are_excluded(
    built: tuple[LocalStorage, BuildResult],
) -> None:
    storage, result = built
    origin = {r.record_id: r.original_path or "" for r in load_records(storage)}
    exact_in_train = [
        c
        for c in result.report["label_conflicts"]
        if c["kind"] == "exact"
        and len(c["species"]) == 2
        and all(origin[r].startswith("mushroomvision/train/") for r in c["record_ids"])
    ]
    assert len(exact_in_train) >= 2
    kept = {row.content_hash for row in result.rows}
    assert not kept & {h for c in result.report["label_conflicts"] for h in c["content_hashes"]}


def test_near_duplicates_across_the_given_splits_are_removed(
    built: tuple[LocalStorage, BuildResult],
) -> None:
    _storage, result = built
    assert result.report["removed"]["near_duplicates"] > 0
    phashes = [int(row.perceptual_hash or "0", 16) for row in result.rows]
    closest = min((a ^ b).bit_count() for i, a in enumerate(phashes) for b in phashes[i + 1 :])
    assert closest > BuildParams().near_duplicate_distance


def test_one_version_of_nine_species_without_leaks(
    built: tuple[LocalStorage, BuildResult],
) -> None:
    storage, result = built
    counts = result.report["counts"]
    assert counts["species"] == 9
    assert all(per_split["test"] > 0 for per_split in counts["per_species"].values())
    splits_of_group: dict[str, set[str]] = defaultdict(set)
    for row in result.rows:
        splits_of_group[row.group_id].add(row.split)
        assert row.species in load_catalog()
    assert all(len(s) == 1 for s in splits_of_group.values())
    again = build_dataset(storage, load_catalog(), BuildParams(), quiet=True)
    assert again.version_id == result.version_id
    assert not again.created
