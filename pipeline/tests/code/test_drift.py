"""Drift monitoring on a synthetic prediction log: statistics, windows, report, exit code."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mushroom_common.bundle import ChampionPointer
from mushroom_common.storage import LocalStorage
from mushroom_common.store import PredictionRecord, PredictionStore
from mushroom_pipeline.cli import app
from mushroom_pipeline.drift import (
    DriftThresholds,
    Reference,
    analyse,
    ks_two_sample,
    population_stability_index,
    window_start,
)

NAME, VERSION = "mushroom", "v-test"
DAY0 = datetime(2026, 9, 1, tzinfo=UTC)


def _reference(rng: np.random.Generator, n: int = 400) -> Reference:
    return Reference(
        model_name=NAME,
        model_version=VERSION,
        dataset_version="ds-test",
        source="tflite_test_split",
        confidences=rng.beta(12, 1.5, n).tolist(),
        mushroom_scores=rng.beta(8, 1, n).tolist(),
        detector_threshold=0.3,
    )


def _log(rng: np.random.Generator, day: int, n: int, shifted: bool) -> list[PredictionRecord]:
    records = []
    for i in range(n):
        if shifted:
            confidence = float(rng.beta(2, 2))
            verdict = "uncertain" if confidence < 0.7 else "edible"
            if i % 3 == 0:
                verdict = "not_a_mushroom"
        else:
            confidence = float(rng.beta(12, 1.5))
            verdict = "edible" if confidence > 0.9 else ("dangerous" if i % 2 else "uncertain")
        records.append(
            PredictionRecord(
                request_id=f"d{day}-{i}",
                created_at=DAY0 + timedelta(days=day, minutes=7 * i),
                photo_sha256=f"{day:02d}{i:062d}",
                model_name=NAME,
                model_version=VERSION,
                verdict=verdict,
                top_species="boletus_edulis",
                top_probability=confidence,
                mushroom_score=0.9,
            )
        )
    return records


def test_psi_and_ks_agree_with_known_values() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.beta(12, 1.5, 2000), rng.beta(12, 1.5, 2000)
    shifted = rng.beta(2, 2, 2000)
    assert population_stability_index(a, b) < 0.05
    assert population_stability_index(a, shifted) > 1.0
    stat_same, p_same = ks_two_sample(a, b)
    stat_shift, p_shift = ks_two_sample(a, shifted)
    assert p_same > 0.01
    assert p_shift < 1e-6
    assert stat_shift > stat_same
    stats = pytest.importorskip("scipy.stats")
    expected = stats.ks_2samp(a, b, method="asymp")
    assert stat_same == pytest.approx(expected.statistic, abs=1e-9)
    assert p_same == pytest.approx(expected.pvalue, abs=0.02)


def test_windows_start_on_utc_boundaries() -> None:
    moment = datetime(2026, 9, 3, 17, 45, tzinfo=UTC)  # a Thursday
    assert window_start(moment, "hour") == datetime(2026, 9, 3, 17, tzinfo=UTC)
    assert window_start(moment, "day") == datetime(2026, 9, 3, tzinfo=UTC)
    assert window_start(moment, "week") == datetime(2026, 8, 31, tzinfo=UTC)


def test_only_the_shifted_day_is_flagged() -> None:
    rng = np.random.default_rng(1)
    log = _log(rng, 0, 150, False) + _log(rng, 1, 150, False) + _log(rng, 2, 150, True)
    log += _log(rng, 3, 40, True)  # too few answers to judge
    report = analyse(log, _reference(rng), DriftThresholds(), "day")
    assert [w.predictions for w in report.windows] == [150, 150, 150, 40]
    assert [w.drift for w in report.windows] == [False, False, True, False]
    shifted = report.windows[2]
    assert shifted.psi is not None
    assert shifted.psi > 0.2
    assert shifted.not_a_mushroom_share == pytest.approx(50 / 150)
    assert any("not_a_mushroom share" in reason for reason in shifted.reasons)
    assert report.drift
    assert report.expected_not_a_mushroom_share is not None


@pytest.fixture
def drift_storage(tmp_path: Path, database_url: str) -> tuple[LocalStorage, str]:
    rng = np.random.default_rng(2)
    storage = LocalStorage(tmp_path / "store")
    storage.write_text(
        f"models/{NAME}/champion.json",
        ChampionPointer(
            name=NAME, version=VERSION, promoted_at=DAY0, reason="test"
        ).model_dump_json(),
    )
    storage.write_text(
        f"monitoring/reference/{NAME}/{VERSION}.json", _reference(rng).model_dump_json()
    )
    store = PredictionStore(database_url)
    store.upgrade()
    store.add_predictions(_log(rng, 0, 150, False) + _log(rng, 1, 150, True))
    store.close()
    return storage, database_url


def test_monitor_drift_command_writes_reports_and_fails_on_drift(
    drift_storage: tuple[LocalStorage, str],
) -> None:
    storage, url = drift_storage
    runner = CliRunner()
    args = ["monitor-drift", "--storage", storage.uri, "--database-url", url]
    calm = runner.invoke(app, args)
    assert calm.exit_code == 0, calm.output
    failing = runner.invoke(app, [*args, "--fail-on-drift"])
    assert failing.exit_code == 1, failing.output
    reports = storage.list("monitoring/drift/")
    assert len([k for k in reports if k.endswith("report.json")]) == 2
    report = json.loads(storage.read_text(sorted(k for k in reports if k.endswith(".json"))[-1]))
    assert [w["drift"] for w in report["windows"]] == [False, True]
    markdown = storage.read_text(sorted(k for k in reports if k.endswith(".md"))[-1])
    assert "| 2026-09-02 00:00 | 150 |" in markdown
    assert "DRIFT" in markdown


def test_monitor_drift_without_a_log_says_so(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "monitor-drift",
            "--storage",
            str(tmp_path),
            "--database-url",
            f"sqlite:///{tmp_path / 'none.sqlite3'}",
        ],
    )
    assert result.exit_code == 2
