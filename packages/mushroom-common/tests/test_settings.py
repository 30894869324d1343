"""The shared settings: one rule for the storage root and the runs folder, one name per variable."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic_settings import SettingsConfigDict

from mushroom_common.settings import SharedSettings, runs_dir_for
from mushroom_common.storage import LocalStorage, open_storage


def test_a_command_option_wins_then_the_environment_then_the_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("MUSHROOM_STORAGE_URI", raising=False)
    assert SharedSettings().storage_uri_or(None) == "./mushroom-data"
    monkeypatch.setenv("MUSHROOM_STORAGE_URI", str(tmp_path / "env"))
    assert SharedSettings().storage_uri_or(None) == str(tmp_path / "env")
    assert SharedSettings().storage_uri_or(str(tmp_path / "option")) == str(tmp_path / "option")
    opened = open_storage()
    assert isinstance(opened, LocalStorage)
    assert opened.root == (tmp_path / "env").resolve()


def test_runs_go_beside_local_storage_and_under_the_default_for_a_bucket() -> None:
    assert runs_dir_for("/data") == Path("/data/runs")
    assert runs_dir_for("file:///srv/mushroom") == Path("/srv/mushroom/runs")
    assert runs_dir_for("gs://bucket/prefix") == Path("mushroom-data/runs")


def test_shared_names_ignore_a_service_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    class ServiceSettings(SharedSettings):
        model_config = SettingsConfigDict(env_prefix="SERVICE_")

    monkeypatch.setenv("MUSHROOM_STORAGE_URI", "gs://shared/data")
    monkeypatch.setenv("SERVICE_STORAGE_URI", "gs://not/read")
    monkeypatch.setenv("MUSHROOM_STORAGE_RETRY_DEADLINE_S", "2")
    settings = ServiceSettings()
    assert settings.storage_uri == "gs://shared/data"
    assert settings.storage_retry_deadline_s == 2.0
    assert ServiceSettings(storage_uri="/tmp/x").storage_uri == "/tmp/x"  # tests pass it by name
