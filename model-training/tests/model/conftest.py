"""The bundle the model tests check: `--bundle` (or MUSHROOM_TEST_BUNDLE), else models/demo.

The promotion step runs these tests on the candidate it is about to promote
(mushroom_training.promotion.run_model_tests)."""

from __future__ import annotations

from pathlib import Path

import pytest

DEMO = Path(__file__).parents[3] / "models" / "demo"


@pytest.fixture(scope="session")
def bundle_dir(request: pytest.FixtureRequest) -> Path:
    """The bundle folder under test (skips when it holds no metadata.json)."""
    chosen = request.config.getoption("--bundle")
    folder = Path(chosen) if chosen else DEMO
    if not (folder / "metadata.json").is_file():
        pytest.skip(f"no model bundle at {folder}")
    return folder
