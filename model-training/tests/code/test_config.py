"""Run configuration: YAML plus overrides, validated; the service settings' runs folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from mushroom_training.config import Settings, dump_config, load_config

CONFIGS = Path(__file__).parents[2] / "configs"


def test_overrides_are_parsed_as_yaml_and_applied() -> None:
    config = load_config(
        CONFIGS / "demo.yaml",
        [
            "training.phase2_epochs=0",
            "export.variants=[int8, float16]",
            "data.dataset_version=ds-x",
        ],
    )
    assert config.training.phase2_epochs == 0
    assert config.export.variants == ["int8", "float16"]
    assert config.data.dataset_version == "ds-x"
    assert config.model.backbone == "efficientnet_lite0"


def test_dumped_config_reloads_identically(tmp_path: Path) -> None:
    config = load_config(CONFIGS / "tiny.yaml", ["training.seed=7"])
    (tmp_path / "config.yaml").write_text(dump_config(config))
    assert load_config(tmp_path / "config.yaml") == config


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            [
                "model.backbone=mobilenet_v3_small",
                "model.detector=none",
                "model.fine_tune_blocks=3",
            ],
            "fine_tune_blocks",
        ),
        (["model.weights=none"], "detector needs efficientnet_lite0"),
        (["export.serving_variant=float16", "export.variants=[int8]"], "serving_variant"),
        (["training.unknown=1"], "Extra inputs"),
    ],
)
def test_invalid_configs_are_refused(overrides: list[str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        load_config(CONFIGS / "demo.yaml", overrides)


def test_override_without_equals_is_refused() -> None:
    with pytest.raises(ValueError, match="key=value"):
        load_config(None, ["training.seed"])


def test_runs_go_beside_the_shared_storage_unless_train_runs_dir_says(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("TRAIN_RUNS_DIR", raising=False)
    monkeypatch.setenv("MUSHROOM_STORAGE_URI", str(tmp_path))
    monkeypatch.setenv("TRAIN_STORAGE_URI", "/not/read")  # the storage root has one name
    settings = Settings()
    assert settings.storage_uri == str(tmp_path)
    assert settings.runs_dir == tmp_path / "runs"
    monkeypatch.setenv("TRAIN_RUNS_DIR", str(tmp_path / "elsewhere"))
    assert Settings().runs_dir == tmp_path / "elsewhere"
