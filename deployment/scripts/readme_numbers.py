"""The README's numbers, made from the files that measured them (CI checks they match).

Usage: uv run python deployment/scripts/readme_numbers.py [--write]

Each block of README.md between `<!-- numbers:NAME -->` and `<!-- /numbers:NAME -->` is
rendered here from its source: `demo-model` from the demo bundle (`models/demo/metadata.json`
and `report.json`, what `GET /model` serves), `costs` from the newest
`benchmarks/results/fresh_clone-*.json`. Without `--write` it prints the blocks; with it, it
rewrites them in README.md. deployment/tests/test_readme.py fails while they differ.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
README = REPO_ROOT / "README.md"
DEMO = REPO_ROOT / "models" / "demo"
RESULTS = REPO_ROOT / "benchmarks" / "results"
BLOCK = re.compile(r"(<!-- numbers:([a-z-]+) -->\n)(.*?)(<!-- /numbers:\2 -->)", re.DOTALL)

logger = logging.getLogger("readme_numbers")


def _read(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def demo_model() -> str:
    """The variants table of the demo bundle: the served variant and the float32 reference."""
    metadata = _read(DEMO / "metadata.json")
    report = _read(DEMO / "report.json")
    served = metadata["serving_variant"]
    rows = [
        "| variant | size | LiteRT latency (1 thread, at export) | top-1 | top-5 | genus top-1 "
        "| macro-F1 | deadly/poisonous answered `edible` |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, variant in report["variants"].items():
        if variant.get("latency_ms_1_thread") is None:
            continue  # the SavedModel: not a LiteRT variant
        metrics = variant["metrics"]
        if name == served:
            label = f"**{name} (served)**"
            genus = _percent(metadata["metrics"].get("genus_top1"))
            unsafe = f"**{metadata['metrics']['verdict_dangerous_as_edible']:.0f}**"
        else:
            label, genus, unsafe = f"{name} (registry only)", "-", "-"
        rows.append(
            f"| {label} | {_megabytes(variant['size_bytes'])} "
            f"| {variant['latency_ms_1_thread']:.1f} ms | {_percent(metrics['top1'])} "
            f"| {_percent(metrics['top5'])} | {genus} | {metrics['macro_f1']:.3f} | {unsafe} |"
        )
    return "\n".join(rows) + "\n"


# The rows without a results file carry no numbers (they went stale: issue 26).
OTHER_COMMANDS = """\
| `make run` again | nothing (uv checks, `npm ci` skipped) | | a few seconds to ready |
| `make test` / `make dev` | the whole workspace | `.venv` of a few GB | every check and test \
(lint, mypy, the client check, pytest with line coverage, Vitest, Playwright): the longest \
command |
| `make pipeline` | the whole workspace | `mushroom-data/` | about an hour on 2 cores for the \
260-species demo config (step by step in `benchmarks/RESULTS.md`) |
| `make bench` | the whole workspace | `benchmarks/results/` | inference, API load, training |
"""


def costs() -> str:
    """What each command installs and costs; `make run` from the newest fresh-clone result."""
    newest = sorted(RESULTS.glob("fresh_clone-*.json"))[-1]
    run = _read(newest)["run"]
    return (
        "| command | installs | disk | time |\n|---|---|---|---|\n"
        "| `make run`, fresh clone, empty uv and npm caches | the API's Python packages "
        "(byte-code compiled), the web app's npm packages (`npm ci --omit=dev`) | "
        f"`.venv` {run['venv_mib']:.0f} MiB, `node_modules` {run['node_modules_mib']:.0f} MiB "
        f"(`.tools/` {run['tools_mib']:.0f} MiB when uv is bootstrapped) | "
        f"{run['seconds_to_predict']:.0f} s to the first answered `/predict` "
        f"(`benchmarks/results/{newest.name}`) |\n" + OTHER_COMMANDS
    )


RENDERERS: dict[str, Callable[[], str]] = {"demo-model": demo_model, "costs": costs}


def render(text: str) -> str:
    """README text with every numbers block re-made from its source."""

    def replace(match: re.Match[str]) -> str:
        opening, name, _old, closing = match.groups()
        return opening + RENDERERS[name]() + closing

    return BLOCK.sub(replace, text)


def blocks(text: str) -> dict[str, str]:
    """The numbers blocks of a README text, by name."""
    return {match.group(2): match.group(3) for match in BLOCK.finditer(text)}


def main() -> None:
    """Print the blocks, or rewrite them in README.md with --write."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if sys.argv[1:] == ["--write"]:
        README.write_text(render(README.read_text(encoding="utf-8")), encoding="utf-8")
        logger.info("rewrote the numbers blocks of %s", README)
        return
    for name, make in RENDERERS.items():
        logger.info("<!-- numbers:%s -->\n%s", name, make())


if __name__ == "__main__":
    main()
