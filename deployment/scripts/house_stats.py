"""Print the size and tidiness numbers of the tree (issue 26's "Done when" table).

Usage: uv run python deployment/scripts/house_stats.py [--no-duplicates]

Lines are physical lines (`wc -l`) of the Python files git tracks (untracked, not ignored ones
too), per package, split into source and tests; the largest files and functions by lines; the
pairs `duplicates` reports on the whole tree (when that command is on PATH); the number of
settings `.env.example` lists; and the test-to-code ratio (test lines / source lines) per package.
Re-run it after a change to get the AFTER numbers the same way as the BEFORE ones.
"""

from __future__ import annotations

import ast
import logging
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGES = (
    "packages/mushroom-common",
    "data-collector",
    "model-training",
    "api-service",
    "pipeline",
    "benchmarks",
    "deployment",
)
TOP = 8

logger = logging.getLogger("house_stats")


def _tracked_python_files() -> list[Path]:
    command = ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.py"]
    listed = subprocess.run(command, cwd=REPO_ROOT, check=True, capture_output=True, text=True)
    names = listed.stdout
    return [REPO_ROOT / name for name in names.split() if (REPO_ROOT / name).is_file()]


def _is_test(relative: str) -> bool:
    parts = relative.split("/")
    return "tests" in parts or parts[-1].startswith("test_") or parts[-1] == "conftest.py"


def _line_count(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def _functions(path: Path, relative: str) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno:
            where = f"{relative}:{node.lineno} {node.name}"
            found.append((node.end_lineno - node.lineno + 1, where))
    return found


def _duplicate_pairs() -> str:
    if shutil.which("duplicates") is None:
        return "n/a (no `duplicates` command on PATH)"
    command = ["duplicates", "--seconds", "120"]
    out = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=False).stdout
    first = out.splitlines()[0] if out else ""
    match = re.match(r"(\d+) pairs", first)
    return match.group(1) if match else first


def _settings_count() -> int:
    text = (REPO_ROOT / ".env.example").read_text(encoding="utf-8")
    return len(re.findall(r"^# [A-Z][A-Z0-9_]*=", text, flags=re.MULTILINE))


def report(with_duplicates: bool = True) -> str:
    """The whole report as Markdown."""
    source: dict[str, int] = dict.fromkeys(PACKAGES, 0)
    tests: dict[str, int] = dict.fromkeys(PACKAGES, 0)
    files: list[tuple[int, str]] = []
    functions: list[tuple[int, str]] = []
    for path in _tracked_python_files():
        relative = path.relative_to(REPO_ROOT).as_posix()
        package = next((p for p in PACKAGES if relative.startswith(p + "/")), None)
        count = _line_count(path)
        if package is not None:
            (tests if _is_test(relative) else source)[package] += count
        if not _is_test(relative):
            files.append((count, relative))
            functions.extend(_functions(path, relative))
    out = ["| package | source lines | test lines | test/code |", "|---|---|---|---|"]
    for package in PACKAGES:
        ratio = tests[package] / source[package] if source[package] else 0.0
        out.append(f"| {package} | {source[package]} | {tests[package]} | {ratio:.2f} |")
    total_source, total_tests = sum(source.values()), sum(tests.values())
    out.append(f"| total | {total_source} | {total_tests} | {total_tests / total_source:.2f} |")
    for title, sizes in (("files", files), ("functions", functions)):
        largest = ", ".join(f"{n} {where}" for n, where in sorted(sizes, reverse=True)[:TOP])
        out.append(f"\nLargest source {title}: {largest}")
    if with_duplicates:
        out.append(f"\n`duplicates` pairs: {_duplicate_pairs()}")
    out.append(f"\nSettings in .env.example: {_settings_count()}")
    return "\n".join(out)


def main() -> None:
    """Print the report."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logger.info("%s", report(with_duplicates="--no-duplicates" not in sys.argv[1:]))


if __name__ == "__main__":
    main()
