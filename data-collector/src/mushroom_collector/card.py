"""The dataset card (`DATASET.md`): what a version holds, where from, who took the photos."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from typing import Any

from mushroom_common.catalog import Catalog
from mushroom_common.dataset import SPLITS, ManifestRow

_FOLDER = re.compile(r"local folder ([^/)]+)")


def _credits(rows: list[ManifestRow]) -> list[str]:
    lines: list[str] = []
    inat = [r for r in rows if r.source == "inaturalist"]
    if inat:
        lines += ["", "### iNaturalist", ""]
        by_observer: dict[str, list[ManifestRow]] = defaultdict(list)
        for row in inat:
            by_observer[row.observer or "unknown"].append(row)
        for observer in sorted(by_observer, key=str.casefold):
            observer_rows = by_observer[observer]
            attributions = sorted({r.attribution for r in observer_rows if r.attribution})
            licences = ", ".join(sorted({r.license for r in observer_rows}))
            lines.append(
                f"- **{observer}**: {len(observer_rows)} photo(s), {licences}; "
                + "; ".join(attributions)
            )
    folder = [r for r in rows if r.source == "folder"]
    if folder:
        lines += ["", "### Local folders", ""]
        folders = Counter(
            (m.group(1) if (m := _FOLDER.search(r.attribution)) else "unknown") for r in folder
        )
        for name, count in sorted(folders.items()):
            lines.append(f"- `{name}`: {count} photo(s); photographers unknown; **no licence**.")
    feedback = [r for r in rows if r.source == "feedback"]
    if feedback:
        lines += ["", "### App users", ""]
        lines.append(
            f"- {len(feedback)} photo(s) shared by people using the app, who agreed to share them."
        )
    return lines


def render_card(
    version_id: str, rows: list[ManifestRow], report: dict[str, Any], catalog: Catalog
) -> str:
    """Markdown card of one dataset version."""
    counts = report["counts"]
    removed = report["removed"]
    params = report["parameters"]
    lines = [
        f"# Mushroom ID dataset {version_id}",
        "",
        f"Built {report['built_at']} by the data collector ({params['format']}). "
        f"{counts['total']} photos of {counts['species']} species.",
        "",
        "## Contents",
        "",
        "| species | scientific name | edibility | train | val | test | total |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for species_id, split_counts in counts["per_species"].items():
        species = catalog.get(species_id)
        cells = " | ".join(str(split_counts[s]) for s in (*SPLITS, "total"))
        lines.append(
            f"| {species_id} | *{species.scientific_name}* | {species.edibility.value} | {cells} |"
        )
    per_split = counts["per_split"]
    lines.append(
        f"| **all** | | | {per_split['train']} | {per_split['val']} | {per_split['test']} "
        f"| {counts['total']} |"
    )
    lines += ["", "## Licences", ""]
    for licence, count in counts["per_license"].items():
        lines.append(f"- `{licence}`: {count} photo(s)")
    unlicensed = counts["per_license"].get("unlicensed", 0)
    if unlicensed:
        lines += [
            "",
            f"**{unlicensed} photo(s) have no licence.** They were imported from local folders "
            "whose owners granted no rights. Use this version for development and testing only: "
            "do not publish these photos, and do not publish or ship a model trained on them "
            "without clearing the rights first.",
        ]
    lines += [
        "",
        "## Cleaning",
        "",
        "- exact duplicates removed (identical bytes, same species): "
        f"{removed['exact_duplicates']}",
        f"- near-duplicates removed (pHash distance <= {params['near_duplicate_distance']}): "
        f"{removed['near_duplicates']}",
        f"- label conflicts (the same or a near-same photo under two species), excluded whole: "
        f"{removed['label_conflicts']} ({removed['label_conflict_records']} records)",
        f"- every drop by reason: {removed['by_reason']}",
        "",
        "## Splits",
        "",
        f"Grouped split with seed {params['seed']} (train/val/test "
        f"{params['train_fraction']}/{params['val_fraction']}/{params['test_fraction']}, per "
        f"species). Photos within pHash distance {params['group_distance']} of each other, and "
        "photos of one observation, always share a split. Splits that came with a folder were "
        f"not kept ({report['original_split_changed']} photos moved); feedback not yet reviewed "
        "by a person is only ever put in train.",
        "",
        "## Credits",
        "",
        "Every photo's licence and attribution is in `manifest.jsonl`.",
        *_credits(rows),
        "",
    ]
    return "\n".join(lines)
