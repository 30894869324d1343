"""GET /model's evaluation columns: the test split and the field test, never mixed up."""

from __future__ import annotations

from mushroom_api.services.model_info import evaluation_columns


def test_field_metrics_become_their_own_columns() -> None:
    metrics = {
        "top1": 0.55,
        "genus_top1": 0.73,
        "dangerous_answered_edible": 0.0,
        "field_top1": 0.61,
        "field_genus_top1": 0.66,
        "field_edible_answered_dangerous": 0.4,
        "field_val_top1": 0.7,
    }
    columns = evaluation_columns(metrics)
    assert columns["test"] == {"top1": 0.55, "genus_top1": 0.73, "dangerous_answered_edible": 0.0}
    assert columns["field_test"] == {
        "top1": 0.61,
        "genus_top1": 0.66,
        "edible_answered_dangerous": 0.4,
    }
    assert columns["field_val"] == {"top1": 0.7}


def test_a_bundle_without_field_numbers_has_no_columns() -> None:
    assert evaluation_columns({"top1": 0.56, "macro_f1": 0.45}) == {}
