"""Turn everything collected so far into an immutable, validated dataset version.

Steps, in order (each documented in the README):
1. validate every distinct photo (bytes match their hash, decode, RGB, upright, minimum side);
2. cluster "same photo" pairs: identical bytes, or pHash distance <= `near_duplicate_distance`;
   a cluster whose photos carry more than one species is a label conflict and is excluded whole;
   otherwise one photo per cluster is kept and the rest are dropped as duplicates;
3. group the kept photos (pHash distance <= `group_distance`, or one observation) and split the
   groups train/val/test with a seed, per species, so that no group straddles two splits;
4. the version id is a hash of the build parameters and the sorted manifest rows, so the same
   inputs always give the same version, which is then not written again.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from mushroom_collector.card import render_card
from mushroom_collector.images import (
    InvalidImageError,
    analyse_photo,
    near_pairs,
    phash_hex,
    sha256_hex,
)
from mushroom_collector.progress import progress_bar
from mushroom_collector.records import load_records, now_utc
from mushroom_common.catalog import Catalog
from mushroom_common.dataset import (
    CARD_FILE,
    COMPLETE_MARKER,
    MANIFEST_FILE,
    REPORT_FILE,
    SPLITS,
    CollectedPhoto,
    ManifestRow,
    Split,
    dataset_prefix,
    is_complete,
)
from mushroom_common.storage import ObjectNotFoundError, Storage

logger = logging.getLogger(__name__)

BUILD_FORMAT = "mushroom-collector-build-v1"
HASH_ALGORITHM = "imagehash.phash-64bit"
VERSION_PREFIX = "ds-"
SPLIT_ORDER: tuple[Split, ...] = ("train", "val", "test")


class BuildError(RuntimeError):
    """The dataset cannot be built (nothing collected, bad parameters)."""


@dataclass(frozen=True)
class BuildParams:
    """Everything besides the photos that decides a version's content (part of its id)."""

    seed: int = 42
    train_fraction: float = 0.70
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    min_image_side: int = 64
    near_duplicate_distance: int = 8
    group_distance: int = 10

    def __post_init__(self) -> None:
        total = self.train_fraction + self.val_fraction + self.test_fraction
        if abs(total - 1.0) > 1e-6:
            raise BuildError(f"split fractions add up to {total}, not 1")
        if self.group_distance < self.near_duplicate_distance:
            raise BuildError("group_distance must be >= near_duplicate_distance")

    @property
    def fractions(self) -> dict[Split, float]:
        """Target fraction of each split."""
        return {"train": self.train_fraction, "val": self.val_fraction, "test": self.test_fraction}

    def identity(self) -> dict[str, Any]:
        """The parameters as they enter the version id."""
        return {"format": BUILD_FORMAT, "hash_algorithm": HASH_ALGORITHM, **asdict(self)}


@dataclass(frozen=True)
class Drop:
    """One record left out of the version, and why."""

    record_id: str
    content_hash: str
    species: str
    source: str
    reason: str
    detail: str = ""


@dataclass
class BuildResult:
    """The outcome of one build."""

    version_id: str
    created: bool
    rows: list[ManifestRow]
    report: dict[str, Any]


@dataclass
class _Photo:
    """One distinct, valid photo (content hash) and the records that point at it."""

    content_hash: str
    records: list[CollectedPhoto]
    width: int
    height: int
    phash: int
    species: set[str] = field(default_factory=set)


class _UnionFind:
    def __init__(self, size: int) -> None:
        self.parent = list(range(size))

    def find(self, item: int) -> int:
        while self.parent[item] != item:
            self.parent[item] = self.parent[self.parent[item]]
            item = self.parent[item]
        return item

    def union(self, a: int, b: int) -> None:
        root_a, root_b = self.find(a), self.find(b)
        if root_a != root_b:
            self.parent[max(root_a, root_b)] = min(root_a, root_b)

    def components(self) -> list[list[int]]:
        groups: dict[int, list[int]] = defaultdict(list)
        for item in range(len(self.parent)):
            groups[self.find(item)].append(item)
        return list(groups.values())


def _record_preference(record: CollectedPhoto) -> tuple[bool, bool, str, str]:
    """Sort key: reviewed before unreviewed, licensed before unlicensed, then stable ids."""
    return (record.needs_review, record.license == "unlicensed", record.source, record.record_id)


def _photo_preference(photo: _Photo) -> tuple[bool, bool, int, str]:
    """Which photo of a same-photo cluster to keep: the best record, then the most pixels."""
    best = min(photo.records, key=_record_preference)
    return (
        best.needs_review,
        best.license == "unlicensed",
        -photo.width * photo.height,
        photo.content_hash,
    )


def _drops(records: Iterable[CollectedPhoto], reason: str, detail: str = "") -> list[Drop]:
    return [Drop(r.record_id, r.content_hash, r.species, r.source, reason, detail) for r in records]


def _validate(
    storage: Storage, records: list[CollectedPhoto], params: BuildParams, *, quiet: bool
) -> tuple[list[_Photo], list[Drop]]:
    by_hash: dict[str, list[CollectedPhoto]] = defaultdict(list)
    for record in records:
        by_hash[record.content_hash].append(record)
    photos: list[_Photo] = []
    drops: list[Drop] = []
    with progress_bar("validate photos", len(by_hash), quiet=quiet) as advance:
        for content_hash in sorted(by_hash):
            group = by_hash[content_hash]
            advance()
            key = group[0].image_key
            try:
                data = storage.read_bytes(key)
            except ObjectNotFoundError:
                drops += _drops(group, "missing_photo", key)
                continue
            if sha256_hex(data) != content_hash:
                drops += _drops(group, "hash_mismatch", key)
                continue
            try:
                info = analyse_photo(data)
            except InvalidImageError as exc:
                drops += _drops(group, "undecodable", str(exc))
                continue
            if info.mode != "RGB":
                drops += _drops(group, "not_rgb", info.mode)
            elif not info.upright:
                drops += _drops(group, "exif_orientation_not_applied")
            elif min(info.width, info.height) < params.min_image_side:
                size = f"{info.width}x{info.height} < {params.min_image_side} px"
                drops += _drops(group, "too_small", size)
            else:
                photo = _Photo(content_hash, group, info.width, info.height, info.phash)
                photo.species = {r.species for r in group}
                photos.append(photo)
    return photos, drops


def _group_id(hashes: Iterable[str]) -> str:
    digest = hashlib.sha256("\n".join(sorted(hashes)).encode()).hexdigest()
    return f"g-{digest[:16]}"


def _assign_splits(
    groups: dict[str, list[_Photo]], species_of: dict[str, str], params: BuildParams
) -> dict[str, Split]:
    """Seeded, species-stratified assignment of whole groups to splits."""
    totals: Counter[str] = Counter(species_of.values())
    current: dict[str, Counter[Split]] = defaultdict(Counter)
    order = sorted(groups, key=lambda g: hashlib.sha256(f"{params.seed}:{g}".encode()).hexdigest())
    assignment: dict[str, Split] = {}
    for group_id in order:
        members = groups[group_id]
        counts = Counter(species_of[p.content_hash] for p in members)
        primary = min(counts, key=lambda s: (-counts[s], s))
        unreviewed = any(record.needs_review for p in members for record in p.records)
        if unreviewed:
            # Feedback nobody has reviewed yet may teach, never grade: train only.
            split: Split = "train"
        else:
            split = max(
                SPLIT_ORDER,
                key=lambda s: (
                    params.fractions[s] * totals[primary] - current[primary][s],
                    -SPLIT_ORDER.index(s),
                ),
            )
        assignment[group_id] = split
        for species, count in counts.items():
            current[species][split] += count
    return assignment


def plan_version(
    storage: Storage, catalog: Catalog, params: BuildParams, *, quiet: bool = False
) -> tuple[list[ManifestRow], dict[str, Any]]:
    """Compute a version's manifest rows (sorted by hash) and its report; writes nothing."""
    records = load_records(storage)
    if not records:
        raise BuildError(f"nothing collected in {storage.uri}: run import-folder or inat first")
    drops = _drops((r for r in records if r.species not in catalog), "unknown_species")
    known = [r for r in records if r.species in catalog]
    photos, invalid = _validate(storage, known, params, quiet=quiet)
    drops += invalid

    pairs = near_pairs([p.phash for p in photos], params.group_distance)
    same = _UnionFind(len(photos))
    for i, j, distance in pairs:
        if distance <= params.near_duplicate_distance:
            same.union(i, j)

    kept: list[_Photo] = []
    species_of: dict[str, str] = {}
    conflicts: list[dict[str, Any]] = []
    near_dropped = 0
    exact_dropped = 0
    for component in sorted(same.components(), key=min):
        members = [photos[i] for i in component]
        species = sorted(set().union(*(p.species for p in members)))
        if len(species) > 1:
            conflict_records = [r for p in members for r in p.records]
            conflicts.append(
                {
                    "species": species,
                    "content_hashes": sorted(p.content_hash for p in members),
                    "record_ids": sorted(r.record_id for r in conflict_records),
                    "kind": "exact" if len(members) == 1 else "near",
                }
            )
            drops += _drops(conflict_records, "label_conflict", " vs ".join(species))
            continue
        members.sort(key=_photo_preference)
        keeper = members[0]
        keeper.records.sort(key=_record_preference)
        exact_dropped += len(keeper.records) - 1
        drops += _drops(keeper.records[1:], "exact_duplicate", keeper.content_hash)
        for other in members[1:]:
            near_dropped += len(other.records)
            drops += _drops(other.records, "near_duplicate", f"kept {keeper.content_hash}")
        kept.append(keeper)
        species_of[keeper.content_hash] = species[0]

    # Group what is kept: similar-looking photos and photos of one observation stay together.
    index = {p.content_hash: i for i, p in enumerate(kept)}
    together = _UnionFind(len(kept))
    for i, j, _distance in pairs:
        a, b = photos[i].content_hash, photos[j].content_hash
        if a in index and b in index:
            together.union(index[a], index[b])
    by_observation: dict[tuple[str, str], int] = {}
    for i, photo in enumerate(kept):
        record = photo.records[0]
        if record.observation_id:
            first = by_observation.setdefault((record.source, record.observation_id), i)
            together.union(first, i)
    groups: dict[str, list[_Photo]] = {}
    for component in together.components():
        members = [kept[i] for i in component]
        groups[_group_id(p.content_hash for p in members)] = members
    assignment = _assign_splits(groups, species_of, params)

    rows: list[ManifestRow] = []
    original_split_changed = 0
    for group_id, members in groups.items():
        split = assignment[group_id]
        for photo in members:
            record = photo.records[0]
            if record.original_split is not None and record.original_split != split:
                original_split_changed += 1
            rows.append(
                ManifestRow(
                    content_hash=photo.content_hash,
                    image_key=record.image_key,
                    species=species_of[photo.content_hash],
                    split=split,
                    group_id=group_id,
                    source=record.source,
                    source_url=record.source_url,
                    observation_url=record.observation_url,
                    license=record.license,
                    attribution=record.attribution,
                    observer=record.observer,
                    observed_on=record.observed_on,
                    width=photo.width,
                    height=photo.height,
                    perceptual_hash=phash_hex(photo.phash),
                )
            )
    rows.sort(key=lambda r: r.content_hash)
    report = _report(
        records=records,
        rows=rows,
        drops=drops,
        conflicts=conflicts,
        params=params,
        exact_dropped=exact_dropped,
        near_dropped=near_dropped,
        near_pairs=sum(1 for _i, _j, d in pairs if d <= params.near_duplicate_distance),
        groups=groups,
        original_split_changed=original_split_changed,
    )
    return rows, report


def version_id_for(rows: list[ManifestRow], params: BuildParams) -> str:
    """The content-derived version id: sha256 of the parameters and the sorted manifest rows."""
    digest = hashlib.sha256(json.dumps(params.identity(), sort_keys=True).encode())
    for row in rows:
        digest.update(b"\n" + row.model_dump_json().encode())
    return f"{VERSION_PREFIX}{digest.hexdigest()[:16]}"


def _report(
    *,
    records: list[CollectedPhoto],
    rows: list[ManifestRow],
    drops: list[Drop],
    conflicts: list[dict[str, Any]],
    params: BuildParams,
    exact_dropped: int,
    near_dropped: int,
    near_pairs: int,
    groups: dict[str, list[_Photo]],
    original_split_changed: int,
) -> dict[str, Any]:
    per_species: dict[str, dict[str, int]] = {}
    for row in rows:
        counts = per_species.setdefault(row.species, {s: 0 for s in (*SPLITS, "total")})
        counts[row.split] += 1
        counts["total"] += 1
    per_split = {s: sum(1 for r in rows if r.split == s) for s in SPLITS}
    return {
        "parameters": params.identity(),
        "inputs": {
            "records": len(records),
            "distinct_photos": len({r.content_hash for r in records}),
            "records_per_source": dict(sorted(Counter(r.source for r in records).items())),
        },
        "counts": {
            "total": len(rows),
            "species": len(per_species),
            "per_split": per_split,
            "per_species": dict(sorted(per_species.items())),
            "per_license": dict(sorted(Counter(r.license for r in rows).items())),
            "per_source": dict(sorted(Counter(r.source for r in rows).items())),
        },
        "removed": {
            "exact_duplicates": exact_dropped,
            "near_duplicates": near_dropped,
            "near_duplicate_pairs": near_pairs,
            "label_conflicts": len(conflicts),
            "label_conflict_records": sum(len(c["record_ids"]) for c in conflicts),
            "by_reason": dict(sorted(Counter(d.reason for d in drops).items())),
        },
        "groups": {
            "count": len(groups),
            "multi_photo": sum(1 for members in groups.values() if len(members) > 1),
            "largest": max((len(m) for m in groups.values()), default=0),
        },
        "original_split_changed": original_split_changed,
        "label_conflicts": conflicts,
        "drops": [asdict(d) for d in sorted(drops, key=lambda d: (d.reason, d.record_id))],
    }


def build_dataset(
    storage: Storage, catalog: Catalog, params: BuildParams, *, quiet: bool = False
) -> BuildResult:
    """Build (or find) the dataset version of everything collected so far.

    The completion marker is written last; a version that has it is never rewritten, and an
    interrupted build leaves no marker, so the next build rewrites the same files and completes.
    """
    rows, report = plan_version(storage, catalog, params, quiet=quiet)
    if not rows:
        raise BuildError("every collected photo was dropped; see the log for reasons")
    version_id = version_id_for(rows, params)
    prefix = dataset_prefix(version_id)
    if is_complete(storage, version_id):
        logger.info("dataset version %s already exists: nothing written", version_id)
        return BuildResult(version_id, False, rows, storage.read_json(f"{prefix}/{REPORT_FILE}"))
    built_at = now_utc().isoformat()
    report = {"version_id": version_id, "built_at": built_at, **report}
    manifest = "".join(row.model_dump_json() + "\n" for row in rows)
    storage.write_text(f"{prefix}/{MANIFEST_FILE}", manifest, "application/x-ndjson")
    for split in SPLITS:
        hashes = "".join(f"{r.content_hash}\n" for r in rows if r.split == split)
        storage.write_text(f"{prefix}/splits/{split}.txt", hashes)
    storage.write_json(f"{prefix}/{REPORT_FILE}", report)
    storage.write_text(
        f"{prefix}/{CARD_FILE}", render_card(version_id, rows, report, catalog), "text/markdown"
    )
    storage.write_json(
        f"{prefix}/{COMPLETE_MARKER}", {"version_id": version_id, "built_at": built_at}
    )
    logger.info("dataset version %s written: %d photos", version_id, len(rows))
    return BuildResult(version_id, True, rows, report)
