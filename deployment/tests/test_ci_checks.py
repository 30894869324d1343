"""What `make test` (and so CI) checks besides the tests: the generated client, coverage."""

from __future__ import annotations

import re
from pathlib import Path

import coverage
import pytest
from coverage_table import PACKAGES, per_package, render
from deployment_helpers import REPO_ROOT


def _recipe(target: str) -> tuple[list[str], list[str]]:
    """A Makefile target's prerequisites and recipe lines."""
    text = (REPO_ROOT / "Makefile").read_text("utf-8")
    match = re.search(rf"^{re.escape(target)}:(.*)\n((?:\t.*\n)*)", text, flags=re.MULTILINE)
    assert match, f"no target {target} in the Makefile"
    return match.group(1).split(), [line.strip() for line in match.group(2).splitlines()]


def test_make_test_fails_on_a_stale_generated_client() -> None:
    prerequisites, _ = _recipe("test")
    assert "check-client" in prerequisites
    _, recipe = _recipe("check-client")
    assert recipe == ["bash frontend-react/scripts/check-client.sh"]
    script = (REPO_ROOT / "frontend-react/scripts/check-client.sh").read_text("utf-8")
    # It regenerates both files with the same script developers run, and names the fix.
    assert 'OUT_DIR="$fresh" bash scripts/generate-client.sh' in script
    assert "openapi.json src/client/schema.d.ts" in script
    assert "npm run generate-client" in script


def test_make_test_python_measures_and_reports_coverage() -> None:
    _, recipe = _recipe("test-python")
    assert "--cov" in recipe[0].split()
    assert recipe[-1].endswith("python deployment/scripts/coverage_table.py")


def test_the_coverage_table_counts_lines_per_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    common = REPO_ROOT / "packages/mushroom-common/src/mushroom_common"
    ran, never_ran = common / "storage.py", common / "bundle.py"
    monkeypatch.chdir(REPO_ROOT)  # the [tool.coverage] settings of pyproject.toml
    analysis = coverage.Coverage(data_file=None)
    first_line = analysis.analysis2(str(ran))[1][0]
    statements = sum(len(analysis.analysis2(str(f))[1]) for f in (ran, never_ran))
    data = coverage.CoverageData(basename=str(tmp_path / ".coverage"))
    # Coverage records the files of an imported package that no test ran with no lines.
    data.add_lines({str(ran): [first_line], str(never_ran): []})
    data.write()

    totals = per_package(tmp_path / ".coverage")
    assert list(totals) == list(PACKAGES)
    assert (totals["mushroom_common"].statements, totals["mushroom_common"].missed) == (
        statements,
        statements - 1,
    )
    assert totals["mushroom_api"].statements == 0
    table = render(totals).splitlines()
    assert table[0] == "| package | statements | missed | line coverage |"
    covered = f"{100 / statements:.1f}%"
    assert table[2] == f"| packages/mushroom-common | {statements} | {statements - 1} | {covered} |"
    assert "| api-service | 0 | 0 | - |" in table
    assert table[-1] == f"| **total** | {statements} | {statements - 1} | {covered} |"
