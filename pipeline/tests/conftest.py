"""Fixtures of the pipeline tests: fresh settings, the tiny training config."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mushroom_collector.config import get_settings as get_collector_settings
from mushroom_pipeline.config import get_settings
from mushroom_training.config import get_settings as get_train_settings

sys.path.insert(0, str(Path(__file__).parent))
# model-training's test kit: the field world (a bundle with a detector, field photos).
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "model-training" / "tests"))

from mushroom_pipeline_testkit import TINY_CONFIG


@pytest.fixture(autouse=True)
def _fresh_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith(("PIPELINE_", "COLLECTOR_", "TRAIN_")):
            monkeypatch.delenv(name)
    for getter in (get_settings, get_collector_settings, get_train_settings):
        getter.cache_clear()
    yield
    for getter in (get_settings, get_collector_settings, get_train_settings):
        getter.cache_clear()


@pytest.fixture
def tiny_config() -> Path:
    if not TINY_CONFIG.is_file():
        pytest.skip(f"model-training's tiny config is missing: {TINY_CONFIG}")
    return TINY_CONFIG
