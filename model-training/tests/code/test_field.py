"""The field split, its numbers, the field head's training and the field promotion gate."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from mushroom_common.catalog import load_catalog
from mushroom_common.dataset import ManifestRow, Split
from mushroom_training import field, field_head
from mushroom_training.promotion import field_gate

LABELS = ["amanita_muscaria", "amanita_vaginata", "boletus_edulis", "amanita_phalloides"]


def _row(data: bytes, species: str, split: Split) -> ManifestRow:
    content_hash = hashlib.sha256(data).hexdigest()
    return ManifestRow(
        content_hash=content_hash,
        image_key=f"photos/{content_hash}.jpg",
        species=species,
        split=split,
        group_id=content_hash[:16],
        source="folder",
        license="unlicensed",
        width=10,
        height=10,
    )


def test_field_photos_follow_the_version_split_and_field_extra_is_test_or_open_set(
    tmp_path: Path,
) -> None:
    files: dict[str, tuple[bytes, Split | None]] = {
        "web-species/amanita_muscaria/YaSeCA-aaaaaaaaaaaa.jpg": (b"a", "val"),
        "web-species/amanita_muscaria/YaSeCA-bbbbbbbbbbbb.jpg": (b"b", "test"),
        "web-species/amanita_muscaria/YaSeCA-cccccccccccc.jpg": (b"c", "train"),
        "web-species/amanita_muscaria/fungiapp-dddddddddddd.jpg": (b"d", "test"),
        "nordic-field/boletus_edulis/1.jpg": (b"e", "val"),
        "web-species/boletus_edulis/Bartekp26-ffffffffffff.jpg": (b"f", None),
    }
    manifest = []
    for rel, (data, split) in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        if split is not None:
            manifest.append(_row(data, path.parent.name, split))
    for rel in ("field-extra/boletus_edulis/Penzo00-1.jpg", "field-extra/amanita_augusta/x-2.jpg"):
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rel.encode())
    photos = field.field_photos(tmp_path, manifest, LABELS)
    roles = {(p.path.relative_to(tmp_path).as_posix(), p.role, p.origin) for p in photos}
    assert roles == {
        ("web-species/amanita_muscaria/YaSeCA-aaaaaaaaaaaa.jpg", "field_val", "YaSeCA"),
        ("web-species/amanita_muscaria/YaSeCA-bbbbbbbbbbbb.jpg", "field_test", "YaSeCA"),
        ("web-species/amanita_muscaria/YaSeCA-cccccccccccc.jpg", "field_train", "YaSeCA"),
        ("nordic-field/boletus_edulis/1.jpg", "field_val", "nordic-field"),
        ("field-extra/boletus_edulis/Penzo00-1.jpg", "field_test", "field-extra"),
        ("field-extra/amanita_augusta/x-2.jpg", "open_set", "field-extra"),
    }
    assert field.role_counts(photos)["field_val"] == {"YaSeCA": 1, "nordic-field": 1}


def test_accuracy_safety_and_bias_numbers() -> None:
    catalog = load_catalog()
    probs = np.array(
        [
            [0.1, 0.7, 0.1, 0.1],  # a death cap answered grisette
            [0.05, 0.05, 0.8, 0.1],  # a penny bun, right
            [0.6, 0.2, 0.1, 0.1],  # a fly agaric, right
        ]
    )
    truth = ["amanita_phalloides", "boletus_edulis", "amanita_muscaria"]
    numbers = field.accuracy_numbers(probs, truth, LABELS, catalog)
    assert numbers["photos"] == 3
    assert numbers["top1"] == pytest.approx(2 / 3)
    assert numbers["top5"] == 1.0
    assert numbers["genus_top1"] == 1.0  # the Amanita genus wins for the death cap
    bias = field.class_bias(probs, truth, LABELS)
    assert bias["death_cap_photos"] == 1
    assert bias["death_cap_as_grisette"] == 1
    assert bias["big_recall"] == 1.0
    assert bias["rest_recall"] == 0.0
    safety = field.safety_numbers(truth, ["uncertain", "edible", "dangerous"], LABELS[1:], catalog)
    assert safety["toxic_photos"] == 2
    assert safety["toxic_answered_dangerous"] == 0.5
    assert safety["dangerous_answered_edible"] == 0
    assert safety["edible_photos"] == 1
    confusions = field.confusions(probs, truth, LABELS)
    assert confusions == [
        {"true": "amanita_phalloides", "predicted": "amanita_vaginata", "photos": 1}
    ]


def test_logit_adjusted_head_learns_the_rare_class_it_was_pulled_away_from() -> None:
    rng = np.random.default_rng(0)
    # Two overlapping classes, the first 20 times as frequent: a plain head prefers it.
    common = rng.normal(0.0, 1.0, (400, 2))
    rare = rng.normal(1.0, 1.0, (20, 2))
    x = np.concatenate([common, rare]).astype(np.float32)
    y = np.array([0] * 400 + [1] * 20)
    prior = np.array([400.0, 20.0]) / 420
    zeros_w, zeros_b = np.zeros((2, 2), np.float32), np.zeros(2, np.float32)
    config = field_head.HeadConfig(epochs=40, label_smoothing=0.0, learning_rate=0.05)
    plain_w, plain_b = field_head.train_head(x, y, prior, zeros_w, zeros_b, config)
    adjusted_w, adjusted_b = field_head.train_head(
        x, y, prior, zeros_w, zeros_b, field_head.HeadConfig(**{**config.__dict__, "loss_tau": 1.0})
    )
    test = rng.normal(1.0, 1.0, (200, 2)).astype(np.float32)  # photos of the rare class
    plain_recall = np.mean((test @ plain_w + plain_b).argmax(1) == 1)
    adjusted_recall = np.mean((test @ adjusted_w + adjusted_b).argmax(1) == 1)
    assert adjusted_recall > plain_recall + 0.3


def test_field_view_keeps_the_model_size_and_varies() -> None:
    from PIL import Image

    image = Image.fromarray(np.random.default_rng(1).integers(0, 255, (300, 400, 3), np.uint8))
    rng = np.random.default_rng(2)
    views = [field_head.field_view(image, 224, rng) for _ in range(3)]
    assert all(v.shape == (224, 224, 3) and v.dtype == np.uint8 for v in views)
    assert not np.array_equal(views[0], views[1])


def test_field_gate_refuses_dangerous_as_edible_and_worse_field_numbers() -> None:
    champion = {
        "field_val_dangerous_answered_edible": 0.0,
        "field_val_top1": 0.6,
        "field_val_toxic_answered_dangerous": 0.95,
        "field_val_edible_answered_dangerous": 0.5,
    }
    better = {**champion, "field_val_top1": 0.65, "field_val_edible_answered_dangerous": 0.4}
    assert field_gate(better, champion) == []
    assert field_gate(better, None) == []
    unsafe = {**better, "field_val_dangerous_answered_edible": 1.0}
    assert "answered edible" in field_gate(unsafe, None)[0]
    worse = {**champion, "field_val_top1": 0.55}
    assert field_gate(worse, champion) == ["field-val top-1 0.5500 < 0.6000"]
    louder = {**champion, "field_val_edible_answered_dangerous": 0.7}
    assert "edible answered dangerous" in field_gate(louder, champion)[0]
    # A dangerous photo answered edible on any recorded set refuses, whatever field val says.
    leaky = {**better, "field_unknown_dangerous_answered_edible": 2.0}
    assert field_gate(leaky, champion) == ["2 dangerous photos of unknown species answered edible"]


def test_field_gate_lets_red_answers_trade_inside_the_verdict_targets() -> None:
    champion = {
        "field_val_dangerous_answered_edible": 0.0,
        "field_val_top1": 0.6,
        "field_val_toxic_answered_dangerous": 0.96,
        "field_val_edible_answered_dangerous": 0.15,
    }
    # One toxic photo moves from red to amber and two edible ones turn red: still inside the
    # targets (>= 90% red toxic, <= 20% red edible), so a better model is not held back.
    traded = {
        **champion,
        "field_val_top1": 0.64,
        "field_val_toxic_answered_dangerous": 0.92,
        "field_val_edible_answered_dangerous": 0.18,
    }
    assert field_gate(traded, champion) == []
    quieter = {**traded, "field_val_toxic_answered_dangerous": 0.85}
    assert field_gate(quieter, champion) == ["field-val toxic answered dangerous 0.8500 < 0.9000"]
    louder = {**traded, "field_val_edible_answered_dangerous": 0.25}
    assert field_gate(louder, champion) == ["field-val edible answered dangerous 0.2500 > 0.2000"]


def test_field_section_puts_the_three_photo_sets_side_by_side() -> None:
    from mushroom_training.report import field_sections

    column = {
        "photos": 10,
        "top1": 0.5,
        "top5": 0.8,
        "genus_top1": 0.6,
        "toxic_answered_dangerous": 1.0,
        "edible_answered_dangerous": 0.25,
        "edible_answered_edible_right": None,
        "dangerous_answered_edible": 0,
        "big_recall": 0.9,
        "rest_recall": 0.4,
        "death_cap_as_grisette": 1,
    }
    section = {
        "note": "A note.",
        "test": column,
        "field_val": {**column, "top1": 0.7},
        "field_test": {**column, "top1": 0.3},
        "open_set_field_extra": {
            "photos": 5,
            "dangerous_photos": 2,
            "auroc": 0.66,
            "dangerous_answered_edible": 0,
            "verdicts": {"dangerous": 5},
        },
        "field_test_confusions": [{"true": "a_b", "predicted": "c_d", "photos": 2}],
        "severity_curves_field_val": {
            "deadly_threshold": [
                {
                    "deadly_threshold": 0.05,
                    "toxic_answered_dangerous": 1.0,
                    "edible_answered_dangerous": 0.5,
                }
            ]
        },
    }
    text = "\n".join(field_sections(section))
    assert "| top-1 | 50.0% | 70.0% | 30.0% |" in text
    assert "| edible answered edible, right species | - | - | - |" in text
    assert "AUROC 0.660" in text
    assert "a_b -> c_d (2)" in text
    assert "| deadly_threshold | 0.05 | 100.0% | 50.0% |" in text


def test_field_tuning_keeps_red_and_edible_apart_and_guards_a_learned_lookalike() -> None:
    """A jack-o'-lantern answered 'chanterelle, 95%' with its own label under every caution
    threshold: only the look-alike rule keeps it from `edible`, and the tuning finds it; the
    caution stays at or below the cap and deadly warns below poisonous at every grid point."""
    from mushroom_common.verdict import VerdictRules
    from mushroom_training import safety

    catalog = load_catalog()
    labels = [
        "cantharellus_cibarius",
        "omphalotus_olearius",
        "boletus_edulis",
        "amanita_phalloides",
    ]
    val = safety.FieldAnswers(
        probabilities=np.array(
            [
                [0.95, 0.008, 0.042, 0.0],  # a jack-o'-lantern answered chanterelle
                [0.95, 0.001, 0.049, 0.0],  # a chanterelle, right
                [0.05, 0.05, 0.1, 0.8],  # a death cap, right
                [0.1, 0.6, 0.3, 0.0],  # a jack-o'-lantern, right
            ]
        ),
        true_species=[
            "omphalotus_olearius",
            "cantharellus_cibarius",
            "amanita_phalloides",
            "omphalotus_olearius",
        ],
    )
    base = VerdictRules(0.03, 0.875, None, False, caution_threshold=0.02)
    assert safety.verdict_rates(val, labels, catalog, base)["dangerous_answered_edible"] == 1
    settings = safety.FieldTuningSettings()
    rules, grid = safety.tune_field_rules(val, [], labels, catalog, base, settings)
    assert all(r["caution_threshold"] <= settings.caution_cap for r in grid)
    assert all(r["deadly_threshold"] < r["poisonous_threshold"] for r in grid)
    assert rules.lookalike_threshold is not None
    assert rules.lookalike_threshold <= 0.008
    assert rules.deadly_threshold < rules.poisonous_threshold
    tuned = safety.verdict_rates(val, labels, catalog, rules)
    assert tuned["dangerous_answered_edible"] == 0
    assert tuned["edible_answered_edible_right"] == 1.0
    assert tuned["toxic_answered_caution"] == pytest.approx(1 / 3)


def test_field_tuning_chooses_the_mushroom_score_edible_needs_from_right_edible_answers() -> None:
    """The 2nd percentile ("lower") of the mushroom scores of the photos the decision sets answer
    `edible` with the right species: it costs at most 2% of them, and a photo the detector
    barely accepted (the leaf litter answered "glistening inkcap") is no longer `edible`."""
    from mushroom_common.verdict import Reason, VerdictRules, verdict_features
    from mushroom_common.verdict import verdicts_from_features as batch_verdicts
    from mushroom_training import safety

    catalog = load_catalog()
    labels = ["boletus_edulis", "amanita_phalloides", "amanita_muscaria", "amanita_vaginata"]
    rules = VerdictRules(0.3, 0.8, 0.02, False, deadly_threshold=0.1, caution_threshold=0.03)

    def edible_answers(scores: np.ndarray, right: bool) -> safety.FieldAnswers:
        return safety.FieldAnswers(
            probabilities=np.tile([0.95, 0.0, 0.0, 0.05], (len(scores), 1)),
            true_species=["boletus_edulis" if right else "amanita_vaginata"] * len(scores),
            mushroom_scores=scores,
        )

    field_val = edible_answers(np.linspace(0.3, 1.0, 60), right=True)
    in_source = edible_answers(np.linspace(0.5, 1.0, 40), right=True)
    # Answered edible but with the wrong species (and a death cap answered dangerous): neither
    # may pull the score down.
    wrong = edible_answers(np.array([0.03, 0.04]), right=False)
    toxic = safety.FieldAnswers(
        probabilities=np.array([[0.0, 0.9, 0.1, 0.0]]),
        true_species=["amanita_phalloides"],
        mushroom_scores=np.array([0.025]),
    )
    sets = [field_val, in_source, wrong, toxic]
    # A previous bundle's value is ignored (no ratchet).
    previous = safety.with_edible_mushroom_score(rules, 0.99)
    score = safety.edible_mushroom_score(sets, labels, catalog, previous, 0.02)
    right_scores = np.concatenate([field_val.mushroom_scores, in_source.mushroom_scores])
    assert score == float(np.quantile(right_scores, 0.02, method="lower"))
    assert score in right_scores  # a score a photo really had
    tuned = safety.with_edible_mushroom_score(rules, score)

    def edible_count(r: VerdictRules) -> int:
        return sum(
            int(safety.verdict_rates(a, labels, catalog, r)["answered_edible"] or 0)
            for a in (field_val, in_source)
        )

    # 100 right answers: the 2nd percentile ("lower") is the 2nd-lowest score, one photo lost.
    assert edible_count(rules) - edible_count(tuned) == 1 <= 0.02 * len(right_scores)
    # The leaf-litter crop: past the detector, under the score, so `uncertain`.
    litter = verdict_features(
        np.array([[0.95, 0.0, 0.0, 0.05]]), labels, catalog, mushroom_scores=np.array([0.065])
    )
    assert batch_verdicts(litter, tuned).reason_mask(Reason.UNCLEAR_PHOTO).tolist() == [True]
    # The grid's helpers keep the rule (severity curves move thresholds with `_with`).
    curves = safety.severity_curves(field_val, labels, catalog, tuned, thresholds=(0.1,))
    assert curves["deadly_threshold"][0]["answered_edible"] == len(field_val.true_species) - 1
    # No detector, no scores, or no right `edible` answer: the rule stays off.
    no_detector = VerdictRules(0.3, 0.8, None, False, deadly_threshold=0.1)
    assert safety.edible_mushroom_score(sets, labels, catalog, no_detector, 0.02) is None
    unscored = safety.FieldAnswers(field_val.probabilities, field_val.true_species)
    assert safety.edible_mushroom_score([unscored], labels, catalog, rules, 0.02) is None
    assert safety.edible_mushroom_score([wrong, toxic], labels, catalog, rules, 0.02) is None
