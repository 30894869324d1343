"""Line coverage per package from the coverage data of the last test run.

Usage: uv run python deployment/scripts/coverage_table.py [.coverage]

`make test-python` runs pytest with `--cov` (settings in pyproject.toml's [tool.coverage.*]) and
then this script, which prints one Markdown row per package: statements, missed lines, line
coverage. Coverage records the files of an imported package that no test ran, so they count as
missed; a package that no test imported shows '-'.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import coverage
import coverage.exceptions
import typer

# Import name -> package folder name in the table (the order of the table).
PACKAGES = {
    "mushroom_common": "packages/mushroom-common",
    "mushroom_collector": "data-collector",
    "mushroom_training": "model-training",
    "mushroom_api": "api-service",
    "mushroom_pipeline": "pipeline",
}


@dataclass
class Lines:
    """Statement counts of one package."""

    statements: int = 0
    missed: int = 0

    @property
    def percent(self) -> str:
        """Line coverage in percent; '-' when no test imported the package."""
        if not self.statements:
            return "-"
        return f"{100.0 * (self.statements - self.missed) / self.statements:.1f}%"


def package_of(path: str) -> str | None:
    """The import name of the package a measured file belongs to, if it is one of ours."""
    parts = Path(path).parts
    return next((name for name in PACKAGES if name in parts), None)


def per_package(data_file: Path) -> dict[str, Lines]:
    """Statements and missed lines per package, from a coverage data file."""
    measured = coverage.Coverage(data_file=str(data_file))
    measured.load()
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "coverage.json"
        measured.json_report(outfile=str(report))
        files = json.loads(report.read_text("utf-8"))["files"]
    totals = {name: Lines() for name in PACKAGES}
    for path, entry in files.items():
        name = package_of(path)
        if name is not None:
            totals[name].statements += entry["summary"]["num_statements"]
            totals[name].missed += entry["summary"]["missing_lines"]
    return totals


def render(totals: dict[str, Lines]) -> str:
    """The table as Markdown, with a total row."""
    rows = ["| package | statements | missed | line coverage |", "|---|---:|---:|---:|"]
    overall = Lines()
    for name, lines in totals.items():
        rows.append(f"| {PACKAGES[name]} | {lines.statements} | {lines.missed} | {lines.percent} |")
        overall.statements += lines.statements
        overall.missed += lines.missed
    rows.append(f"| **total** | {overall.statements} | {overall.missed} | {overall.percent} |")
    return "\n".join(rows)


def main(
    data_file: Annotated[Path, typer.Argument(help="coverage data file of the test run")] = Path(
        ".coverage"
    ),
) -> None:
    """Print line coverage per package."""
    if not data_file.is_file():
        typer.echo(f"no coverage data at {data_file}: run `make test-python` first", err=True)
        raise typer.Exit(2)
    try:
        totals = per_package(data_file)
    except coverage.exceptions.NoDataError as exc:
        typer.echo(f"{data_file} holds no coverage of our packages: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(render(totals))


if __name__ == "__main__":
    typer.run(main)
