"""The evaluation report: PNG plots and the Markdown rendering of `report.json`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from mushroom_training.metrics import reliability_bins, softmax


def plot_confusion(matrix: np.ndarray, labels: list[str], path: Path, title: str) -> None:
    """Confusion matrix with counts (rows: true species); a plain heat map past 40 species."""
    if len(labels) > 40:
        fig, ax = plt.subplots(figsize=(9, 8))
        shown = ax.imshow(np.log1p(matrix), cmap="Blues")
        fig.colorbar(shown, ax=ax, label="log(1 + photos)")
        ax.set_xlabel(f"predicted ({len(labels)} species, alphabetical)")
        ax.set_ylabel("true")
        ax.set_title(title)
        fig.tight_layout()
        fig.savefig(path, dpi=80)
        plt.close(fig)
        return
    size = max(4.0, 0.6 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    threshold = matrix.max() / 2 if matrix.size else 0
    for (i, j), value in np.ndenumerate(matrix):
        if value:
            colour = "white" if value > threshold else "black"
            ax.text(j, i, str(value), ha="center", va="center", fontsize=8, color=colour)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_curves(history: dict[str, list[float]], path: Path) -> None:
    """Loss and accuracy per epoch for each training phase."""
    phases = sorted({key.split("/", 1)[0] for key in history})
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for phase in phases:
        for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
            for prefix, style in (("", "-"), ("val_", "--")):
                values = history.get(f"{phase}/{prefix}{metric}")
                if values:
                    ax.plot(
                        range(1, len(values) + 1),
                        values,
                        style,
                        label=f"{phase} {prefix or 'train_'}{metric}",
                    )
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # a run may log no accuracy (no empty legend)
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_reliability(
    logits: np.ndarray, labels: np.ndarray, temperature: float, path: Path
) -> None:
    """Reliability diagram before and after temperature scaling."""
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], "k:", label="perfect calibration")
    for t, name in ((1.0, "raw"), (temperature, f"T={temperature:.2f}")):
        rows = reliability_bins(softmax(logits, t), labels)
        if rows:
            conf, acc, _ = zip(*rows, strict=True)
            ax.plot(conf, acc, "o-", label=name)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend()
    ax.set_title("reliability (test split)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_gradcam(items: list[dict[str, Any]], path: Path) -> None:
    """Grid of photos with their Grad-CAM overlays; each item has image, cam, title, correct."""
    columns = min(4, max(1, len(items)))
    rows = (len(items) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(3 * columns, 3.3 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, item in zip(axes.ravel(), items, strict=False):
        ax.imshow(item["image"])
        ax.imshow(item["cam"], cmap="jet", alpha=0.4)
        ax.set_title(item["title"], fontsize=7, color="green" if item["correct"] else "red")
    fig.tight_layout()
    fig.savefig(path, dpi=60)
    plt.close(fig)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def render_markdown(report: dict[str, Any]) -> str:
    """The Markdown version of report.json."""
    lines = [
        f"# Evaluation report: {report['name']} {report['version']}",
        "",
        f"- dataset version: `{report['dataset_version']}` "
        f"(test split: {report['test_photos']} photos)",
        f"- backbone: {report['backbone']} ({report['weights_loaded']})",
        f"- tracking run: `{report['run_id']}`; git revision `{report['git_revision']}`",
        f"- command: `{report['command']}`",
        f"- temperature (fitted on val): {report['temperature']:.3f}"
        + (
            "; mirror-image test-time augmentation inside the model"
            if report.get("flip_tta")
            else ""
        ),
        f"- serving variant: **{report['serving_variant']}**",
        "",
    ]
    if report.get("field"):
        lines += [*field_sections(report["field"]), ""]
    lines += [
        "## Variants (test split)",
        "",
        "| variant | size (MB) | latency 1 thread (ms) | latency 2 threads (ms) | top-1 | top-3 "
        "| macro-F1 "
        "| poison cost | PSC | ESC | dangerous as edible | ECE raw | ECE scaled |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, v in report["variants"].items():
        m = v["metrics"]
        lines.append(
            f"| {name} | {v['size_bytes'] / 1e6:.2f} | {_fmt(v.get('latency_ms_1_thread', '-'))} "
            f"| {_fmt(v.get('latency_ms_2_threads', '-'))} | {m['top1']:.4f} | {m['top3']:.4f} "
            f"| {m['macro_f1']:.4f} | {m['poison_cost']:.3f} | {int(m['psc'])} | {int(m['esc'])} "
            f"| {int(m['dangerous_as_edible'])} | {m['ece']:.4f} | {m['ece_scaled']:.4f} |"
        )
    agreement = report.get("int8_float_agreement_val")
    if agreement is not None:
        lines += ["", f"int8 vs float32 top-1 agreement on the val split: {agreement:.4f}"]
    lines += [
        "",
        "Poison cost = (100 * PSC + ESC) / N: PSC counts deadly/poisonous photos predicted as a "
        "non-dangerous species, ESC the reverse (edibility from the species catalog).",
        "",
        "## Per species (served variant, test split)",
        "",
        "| species | edibility | photos | precision | recall |",
        "|---|---|---|---|---|",
    ]
    for row in report["per_species"]:
        lines.append(
            f"| {row['species']} | {row['edibility']} | {row['support']} | {row['precision']:.3f} "
            f"| {row['recall']:.3f} |"
        )
    detector = report.get("mushroom_detector")
    if detector:
        lines += [
            "",
            "## Not-a-mushroom detector",
            "",
            f"- method: {detector['method']}; threshold {detector['threshold']:.4f}",
            f"- false rejections on the test photos: {detector['false_rejection_rate']:.4f} "
            f"({detector['test_photos']} photos)",
            f"- false acceptances on other images: {detector['false_acceptance_rate']:.4f} "
            f"({detector['negative_images']} images: {detector['negative_sources']})",
        ]
    broad = report.get("broad")
    if broad:
        lines += _broad_sections(broad)
    lines += ["", "## Plots", ""]
    for title, file in report["plots"].items():
        lines.append(f"### {title}\n\n![{title}]({file})\n")
    return "\n".join(lines) + "\n"


def _pct(value: float) -> str:
    return "-" if value != value else f"{100 * value:.1f}%"  # NaN: no photos


def _broad_sections(broad: dict[str, Any]) -> list[str]:
    """Verdicts, open set, ablations, sources, genera, confusions and the poison table."""
    rules = broad["decision_rules"]
    test = broad["verdicts"]["test"]
    val = broad["verdicts"]["val"]
    lines = [
        "",
        "## Verdicts as served (the real `judge`, tuned on val)",
        "",
        f"- danger threshold (summed deadly/poisonous probability): {rules['danger_threshold']}; "
        f"edible threshold: {rules['edible_threshold']:.3f}"
        + (
            f"; open set: {rules['open_set']['method']} >= {rules['open_set']['threshold']:.4f}"
            if rules.get("open_set")
            else ""
        ),
        "",
        "| split | photos | dangerous | edible | uncertain | not a mushroom | deadly/poisonous "
        "answered edible | edible photos answered edible, right species | poison cost "
        "(re-ranked) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in (("val", val), ("test", test)):
        v = row["verdicts"]
        lines.append(
            f"| {name} | {row['photos']} | {v['dangerous']} | {v['edible']} | {v['uncertain']} "
            f"| {v['not_a_mushroom']} | {row['dangerous_as_edible']} "
            f"| {_pct(row['edible_coverage'])} of {row['edible_photos']} "
            f"| {row['poison_cost_reranked']:.4f} |"
        )
    lines += [
        "",
        "Verdicts by the true species' edibility (test):",
        "",
        "| true edibility | dangerous | edible | uncertain | not a mushroom |",
        "|---|---|---|---|---|",
    ]
    for truth, counts in test["verdicts_by_true_edibility"].items():
        lines.append(
            f"| {truth} | {counts['dangerous']} | {counts['edible']} | {counts['uncertain']} "
            f"| {counts['not_a_mushroom']} |"
        )
    lines += [
        "",
        "Trade-off (test, danger threshold fixed): see the coverage plot below.",
        "",
        "| edible threshold | edible coverage | deadly/poisonous answered edible |",
        "|---|---|---|",
    ]
    for row in broad["coverage_curve"]["test"][::2]:
        lines.append(
            f"| {row['edible_threshold']:.3f} | {_pct(row['edible_coverage'])} "
            f"| {row['dangerous_as_edible']} |"
        )
    open_set = broad.get("open_set")
    if open_set:
        lines += [
            "",
            "## Unknown species (open-set run)",
            "",
            f"{len(open_set['held_out'])} species left out of training entirely "
            f"({len(open_set['held_out_dangerous'])} of them deadly or poisonous: "
            f"{', '.join(open_set['held_out_dangerous'])}); {open_set['known_photos']} test photos "
            f"of known species against {open_set['unknown_photos']} photos of the left-out ones.",
            "",
            "| score | AUROC |",
            "|---|---|",
        ]
        lines += [f"| {name} | {value:.3f} |" for name, value in open_set["auroc"].items()]
        lines += [
            "",
            f"Served: **{open_set['method']}**, threshold {open_set['threshold']:.4f} (lets "
            f"{_pct(open_set['known_pass_rate_val'])} of known val photos through): flags "
            f"{_pct(open_set['unknown_flagged'])} of unknown-species photos and "
            f"{_pct(open_set['known_flagged_test'])} of known test photos. Left out: "
            f"{', '.join(open_set['held_out'])}.",
        ]
    genus_loss = broad.get("genus_loss")
    if genus_loss:
        lines += [
            "",
            f"## Genus-level auxiliary loss (weight {genus_loss['weight']})",
            "",
            "| head | species top-1 | genus top-1 (argmax genus) |",
            "|---|---|---|",
            f"| without | {_pct(genus_loss['without']['top1'])} "
            f"| {_pct(genus_loss['without']['genus_top1'])} |",
            f"| with | {_pct(genus_loss['with']['top1'])} "
            f"| {_pct(genus_loss['with']['genus_top1'])} |",
        ]
    origins = broad["by_origin"]
    models = list(next(iter(origins.values())).keys())
    lines += [
        "",
        "## Generalisation across sources (test top-1)",
        "",
        "`no_degradation`: the same head trained without the resolution/JPEG degradation of "
        "augmented views; `no_genus`: without the genus loss.",
        "",
        "| photos | count | " + " | ".join(models) + " |",
        "|---|---|" + "---|" * len(models),
    ]
    for group, results in origins.items():
        count = next(iter(results.values()))["photos"]
        lines.append(
            f"| {group} | {count} | " + " | ".join(_pct(results[m]["top1"]) for m in models) + " |"
        )
    lines += [
        "",
        f"## Per genus (test; genus top-1 overall {_pct(broad['genus_top1'])})",
        "",
        "| genus | family | species | photos | genus top-1 | species top-1 |",
        "|---|---|---|---|---|---|",
    ]
    for row in sorted(broad["per_genus"], key=lambda r: -r["photos"]):
        lines.append(
            f"| {row['genus']} | {row['family'] or '-'} | {row['species']} | {row['photos']} "
            f"| {_pct(row['genus_top1'])} | {_pct(row['species_top1'])} |"
        )
    lines += [
        "",
        "## The 20 most frequent confusions (test)",
        "",
        "| true | edibility | predicted | edibility | photos |",
        "|---|---|---|---|---|",
    ]
    for row in broad["worst_confusions"]:
        lines.append(
            f"| {row['true']} | {row['true_edibility']} | {row['predicted']} "
            f"| {row['predicted_edibility']} | {row['photos']} |"
        )
    table = broad["poison_table"]
    columns = sorted({c for counts in table.values() for c, n in counts.items() if n})
    lines += [
        "",
        "## Poison confusion table (test, top-1 species; rows: true edibility)",
        "",
        "| true \\ predicted | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for truth, counts in table.items():
        lines.append(f"| {truth} | " + " | ".join(str(counts[c]) for c in columns) + " |")
    lines += ["", f"Training time: {broad['train_seconds'] / 60:.1f} min on this machine."]
    return lines


def _share(value: Any) -> str:
    return "-" if value is None else f"{100 * float(value):.1f}%"


def field_sections(field: dict[str, Any]) -> list[str]:
    """The field-test section (issue 23): every number for the test split, field validation and
    the field test side by side, class bias, open set on `field-extra/`, field confusions and
    the verdict trade-off by severity on field validation."""
    rows = [
        ("photos", "photos", "{}"),
        ("top-1", "top1", "pct"),
        ("top-5", "top5", "pct"),
        ("genus top-1", "genus_top1", "pct"),
        ("toxic answered dangerous", "toxic_answered_dangerous", "pct"),
        ("edible answered dangerous", "edible_answered_dangerous", "pct"),
        ("edible answered edible, right species", "edible_answered_edible_right", "pct"),
        ("dangerous answered edible", "dangerous_answered_edible", "{}"),
        ("recall, 4 big classes", "big_recall", "pct"),
        ("recall, other classes", "rest_recall", "pct"),
        ("death cap / destroying angel answered grisette", "death_cap_as_grisette", "{}"),
    ]
    lines = [
        "## Field test (issue 23)",
        "",
        f"{field['note']} Columns: the dataset version's test split; field validation (the "
        "field photos choices are made on); field test (other photographers' photos, never "
        "tuned on).",
        "",
        "| | test split | field val | field test |",
        "|---|---|---|---|",
    ]
    for title, key, fmt in rows:
        cells = [
            _share(field[c].get(key)) if fmt == "pct" else str(field[c].get(key))
            for c in ("test", "field_val", "field_test")
        ]
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    o = field["open_set_field_extra"]
    # A bundle without an open-set rule has no unknown-species score to rank by.
    open_auroc = "-" if o["auroc"] is None else f"{o['auroc']:.3f}"
    lines += [
        "",
        f"Open set (`field-extra/` unknowns, {o['photos']} photos, {o['dangerous_photos']} of "
        f"dangerous species): AUROC {open_auroc}; dangerous answered edible "
        f"{o['dangerous_answered_edible']}; verdicts {o['verdicts']}.",
        "",
        "Most frequent field-test confusions: "
        + "; ".join(
            f"{c['true']} -> {c['predicted']} ({c['photos']})"
            for c in field["field_test_confusions"][:8]
        )
        + ".",
        "",
        "Severity trade-off on field validation (each threshold moved alone):",
        "",
        "| threshold | value | toxic answered dangerous | edible answered dangerous |",
        "|---|---|---|---|",
    ]
    for name, curve in field["severity_curves_field_val"].items():
        for point in curve:
            lines.append(
                f"| {name} | {point[name]} | {_share(point['toxic_answered_dangerous'])} | "
                f"{_share(point['edible_answered_dangerous'])} |"
            )
    return lines
