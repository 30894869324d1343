"""The code behind the broad model: open set, verdict tuning, report sections, degradation."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from mushroom_common.catalog import load_catalog
from mushroom_common.dataset import ManifestRow
from mushroom_common.verdict import Verdict, VerdictRules
from mushroom_training.analysis import (
    by_origin,
    genus_top1,
    photo_origin,
    poison_table,
    worst_confusions,
)
from mushroom_training.config import DataConfig, SafetySettings
from mushroom_training.data import _zoom_out, augment
from mushroom_training.open_set import (
    EMBEDDING_SCORES,
    auroc,
    choose_held_out,
    class_mean_distance,
    knn_distance,
    known_label_index,
    relative_mahalanobis,
)
from mushroom_training.safety import SplitOutputs, judged_outcome, tune_rules

LABELS = [
    "amanita_phalloides",
    "agaricus_arvensis",
    "cantharellus_cibarius",
    "hygrophoropsis_aurantiaca",
    "boletus_edulis",
    "rubroboletus_satanas",
]


def test_auroc_matches_the_pairwise_definition() -> None:
    rng = np.random.default_rng(0)
    known, unknown = rng.normal(0, 1, 60), rng.normal(1, 1, 40)
    pairwise = np.mean([(u > k) + 0.5 * (u == k) for u in unknown for k in known])
    assert auroc(known, unknown) == pytest.approx(pairwise)
    assert auroc(np.zeros(3), np.ones(3)) == 1.0
    assert auroc(np.ones(4), np.ones(4)) == 0.5


def test_held_out_species_include_the_asked_number_of_dangerous_ones() -> None:
    catalog = load_catalog()
    labels = sorted(catalog.ids)
    held_out = choose_held_out(labels, 0.1, 5, seed=3)
    assert len(held_out) == round(0.1 * len(labels))
    assert sum(catalog.get(s).edibility.is_dangerous for s in held_out) >= 5
    assert held_out == choose_held_out(labels, 0.1, 5, seed=3)


def test_class_mean_distance_is_small_near_a_class_and_large_away() -> None:
    train = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    distance = class_mean_distance(train, np.array([0, 0, 1, 1]), np.array([[1, 0], [1, 1]]))
    assert distance[0] < 0.01 < distance[1]


def test_known_label_index_renumbers_the_kept_labels_and_marks_the_held_out() -> None:
    index = known_label_index(["a", "b", "c", "d"], ["b", "d"])
    assert index.tolist() == [0, -1, 1, -1]


def test_knn_distance_is_the_kth_neighbour_cosine_distance() -> None:
    train = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    query = np.array([[2.0, 0.0]])
    # Cosine similarities to the query: 1, 0 and 1/sqrt(2).
    assert knn_distance(train, query, 1)[0] == pytest.approx(0.0)
    assert knn_distance(train, query, 2)[0] == pytest.approx(1 - 1 / np.sqrt(2))
    assert knn_distance(train, query, 9)[0] == pytest.approx(1.0)  # k past the end: the farthest


def test_relative_mahalanobis_separates_a_novel_cluster_from_the_known_ones() -> None:
    rng = np.random.default_rng(1)
    centres = rng.normal(0, 1, (4, 8))
    labels = np.repeat(np.arange(4), 50)
    train = centres[labels] + rng.normal(0, 0.1, (200, 8))
    known = centres[np.repeat(np.arange(4), 5)] + rng.normal(0, 0.1, (20, 8))
    novel = rng.normal(0, 1, (1, 8)) + rng.normal(0, 0.1, (20, 8))
    score = relative_mahalanobis(train, labels, np.concatenate([known, novel]))
    assert auroc(score[:20], score[20:]) > 0.95
    for distance in EMBEDDING_SCORES.values():
        values = distance(train, labels, np.concatenate([known, novel]))
        assert values.shape == (40,)
        assert np.isfinite(values).all()


def _outputs(rows: list[tuple[str, list[float]]]) -> SplitOutputs:
    logits = np.log(np.clip(np.array([p for _, p in rows], np.float64), 1e-9, 1))
    return SplitOutputs(logits, np.full(len(rows), 0.9), [s for s, _ in rows])


def test_tuning_never_accepts_a_dangerous_photo_answered_edible_on_val() -> None:
    # A common ink cap photo the model is 86% sure is a shaggy ink cap: any edible threshold
    # at or below 0.85 would answer it `edible`, so the tuned threshold must be above it.
    labels = [
        "coprinopsis_atramentaria",
        "coprinopsis_romagnesiana",
        "coprinus_comatus",
        "hydnum_repandum",
    ]
    val = _outputs(
        [
            ("coprinopsis_atramentaria", [0.14, 0.0, 0.86, 0.0]),
            ("coprinus_comatus", [0.03, 0.0, 0.97, 0.0]),
            ("coprinus_comatus", [0.01, 0.0, 0.92, 0.07]),
            ("hydnum_repandum", [0.0, 0.0, 0.01, 0.99]),
        ]
    )
    settings = SafetySettings(
        danger_thresholds=[0.2], edible_thresholds=[0.8, 0.85, 0.9, 0.95], margin_steps=0
    )
    spec, grid = tune_rules(val, labels, load_catalog(), 1.0, 0.5, None, settings)
    assert (spec.danger_threshold, spec.edible_threshold) == (0.2, 0.9)
    assert len(grid) == 4
    # A lower danger threshold catches the false chanterelle's 15% as `dangerous`, so a lower
    # edible threshold becomes safe; equal coverage prefers the lower danger threshold.
    lower = settings.model_copy(update={"danger_thresholds": [0.1, 0.2]})
    spec_low, _ = tune_rules(val, labels, load_catalog(), 1.0, 0.5, None, lower)
    assert (spec_low.danger_threshold, spec_low.edible_threshold) == (0.1, 0.8)
    outcome = judged_outcome(val, labels, load_catalog(), 1.0, VerdictRules.from_spec(spec, 0.5))
    assert outcome["dangerous_as_edible"] == 0
    assert outcome["verdicts"][Verdict.EDIBLE.value] >= 1


def test_tuning_refuses_thresholds_whose_expected_dangerous_answers_pile_up() -> None:
    # Twenty hedgehog photos, each with 9% on the common ink cap, and no dangerous photo among
    # them, but a danger threshold of 10% would answer all twenty `edible` with 1.8 dangerous
    # photos expected among them: the zero observed is luck, so 10% is not safe.
    labels = ["coprinopsis_atramentaria", "hydnum_repandum"]
    val = _outputs([("hydnum_repandum", [0.09, 0.91])] * 20)
    settings = SafetySettings(
        danger_thresholds=[0.05, 0.1], edible_thresholds=[0.8, 0.9], margin_steps=0
    )
    spec, grid = tune_rules(val, labels, load_catalog(), 1.0, 0.5, None, settings)
    assert spec.danger_threshold == 0.05
    loose = {(r["danger_threshold"], r["edible_threshold"]): r for r in grid}[(0.1, 0.8)]
    assert loose["dangerous_as_edible"] == 0
    assert loose["expected_dangerous_as_edible"] == pytest.approx(1.8)
    trusting = settings.model_copy(update={"max_expected_dangerous_as_edible": 2.0})
    spec_trusting, _ = tune_rules(val, labels, load_catalog(), 1.0, 0.5, None, trusting)
    assert spec_trusting.danger_threshold == 0.1


def test_report_sections_on_known_predictions() -> None:
    catalog = load_catalog()
    true = np.array([0, 0, 2, 3, 4])
    predicted = np.array([0, 1, 2, 2, 4])
    confusions = worst_confusions(LABELS, true, predicted, catalog)
    assert {(c["true"], c["predicted"]) for c in confusions} == {
        ("amanita_phalloides", "agaricus_arvensis"),
        ("hygrophoropsis_aurantiaca", "cantharellus_cibarius"),
    }
    table = poison_table(LABELS, true, predicted, catalog)
    assert table["deadly"]["deadly"] == 1
    assert sum(table["poisonous"].values()) == 1
    probabilities = np.eye(len(LABELS))[predicted]
    assert genus_top1(LABELS, true, probabilities, catalog) == pytest.approx(3 / 5)


def _row(attribution: str, width: int) -> ManifestRow:
    return ManifestRow(
        content_hash="0" * 64,
        image_key="photos/00/x.jpg",
        species="boletus_edulis",
        split="test",
        group_id="g",
        source="folder",
        license="unlicensed",
        attribution=attribution,
        width=width,
        height=width * 3 // 4,
    )


def test_photo_origin_and_groups() -> None:
    thumb = _row(
        "unknown photographer (local folder web-species/boletus_edulis/fungiapp-ab.jpg)", 230
    )
    field = _row("unknown photographer (local folder nordic-field/boletus_edulis/IMG_1.jpg)", 640)
    assert photo_origin(thumb) == "web-species/fungiapp"
    assert photo_origin(field) == "nordic-field"
    groups = by_origin([thumb, field], np.array([4, 4]), {"served": np.array([4, 0])})
    assert groups["web thumbnails (long side <= 260 px)"]["served"] == {"photos": 1, "top1": 1.0}
    assert groups["origin nordic-field"]["served"]["top1"] == 0.0


def test_degradation_lowers_detail_and_is_deterministic() -> None:
    rng = np.random.default_rng(1)
    image = tf.constant(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    config = DataConfig(
        image_size=64,
        min_resolution=16,
        jpeg_quality_min=20,
        degrade_probability=1.0,
        colour_jitter=0.0,
        rotation_degrees=0.0,
        crop_scale_min=1.0,
    )
    first = augment(image, tf.constant([1, 2]), config).numpy()
    again = augment(image, tf.constant([1, 2]), config).numpy()
    plain = augment(
        image, tf.constant([1, 2]), config.model_copy(update={"degrade_probability": 0.0})
    )
    assert first.shape == (64, 64, 3)
    assert np.array_equal(first, again)

    # Noise has the most high-frequency detail; shrinking and JPEG remove much of it.
    def detail(x: np.ndarray) -> float:
        return float(np.abs(np.diff(x.astype(np.float64), axis=1)).mean())

    assert detail(first) < 0.8 * detail(plain.numpy())


def test_field_like_views_shrink_the_subject_shift_colour_and_blur() -> None:
    # A bright square on a dark frame: zoom-out makes it smaller, white balance tints it,
    # blur softens its edges; with the field-like steps off the view is the photo itself.
    photo = np.zeros((64, 64, 3), np.uint8)
    photo[16:48, 16:48] = 200
    image = tf.constant(photo)
    plain = DataConfig(
        image_size=64,
        degrade_probability=0.0,
        colour_jitter=0.0,
        rotation_degrees=0.0,
        crop_scale_min=1.0,
    )
    seed = tf.constant([3, 4])
    # A flip of a centred square is the same square.
    assert np.array_equal(augment(image, seed, plain).numpy(), photo)
    zoomed = augment(image, seed, plain.model_copy(update={"zoom_out_min": 0.5})).numpy()
    assert zoomed.shape == (64, 64, 3)
    assert zoomed[28:36, 28:36].min() > 150  # the subject stays in the middle
    half = _zoom_out(tf.cast(image, tf.float32), tf.constant(0.5)).numpy()
    # At half size the photo fills the middle 32 px: the square is 16 px wide with its dark
    # surroundings around it; the frame beyond is the photo's mirror image.
    assert half.shape == (64, 64, 3)
    assert (half[25:39, 25:39] > 150).all()
    assert (half[17:23, 17:47] < 50).all()
    assert (half[41:47, 17:47] < 50).all()
    np.testing.assert_allclose(half[:16, 16:48], half[16:32, 16:48][::-1], atol=1e-3)
    tinted = augment(image, seed, plain.model_copy(update={"white_balance": 0.3})).numpy()
    channel_means = tinted[16:48, 16:48].reshape(-1, 3).mean(axis=0)
    assert channel_means.max() - channel_means.min() > 1.0
    blurred = augment(image, seed, plain.model_copy(update={"blur_probability": 1.0})).numpy()
    edge = blurred[32, 12:20, 0].astype(np.float64)
    # A step from 0 to 200 at x=16 becomes a ramp: values strictly between the two levels.
    assert ((edge > 5) & (edge < 195)).sum() >= 2
    noisy = augment(image, seed, plain.model_copy(update={"noise_probability": 1.0})).numpy()
    assert noisy[0:12, 0:12].std() > 0.5
    again = augment(image, seed, plain.model_copy(update={"noise_probability": 1.0})).numpy()
    assert np.array_equal(noisy, again)


def test_no_safe_threshold_means_never_edible() -> None:
    labels = ["coprinopsis_atramentaria", "coprinopsis_romagnesiana", "coprinus_comatus"]
    val = _outputs([("coprinopsis_atramentaria", [0.001, 0.0, 0.999])])
    settings = SafetySettings(danger_thresholds=[0.05], edible_thresholds=[0.9, 0.99])
    spec, _ = tune_rules(val, labels, load_catalog(), 1.0, None, None, settings)
    assert spec.edible_threshold > 1.0
    outcome = judged_outcome(val, labels, load_catalog(), 1.0, VerdictRules.from_spec(spec, None))
    assert outcome["verdicts"]["edible"] == 0


def test_margin_moves_the_threshold_one_step_up() -> None:
    labels = ["coprinopsis_atramentaria", "coprinopsis_romagnesiana", "coprinus_comatus"]
    val = _outputs(
        [("coprinus_comatus", [0.0, 0.0, 1.0]), ("coprinopsis_atramentaria", [1.0, 0.0, 0.0])]
    )
    settings = SafetySettings(danger_thresholds=[0.05], edible_thresholds=[0.8, 0.9, 0.95])
    spec, _ = tune_rules(val, labels, load_catalog(), 1.0, None, None, settings)
    assert spec.edible_threshold == 0.9
