"""deployment/README.md: every file, playbook and folder it tells a person to use exists; the
repository README's numbers match the files that measured them."""

from __future__ import annotations

import re

import readme_numbers
from deployment_helpers import ANSIBLE, DEPLOYMENT, REPO_ROOT

README = DEPLOYMENT / "README.md"
PATH_PATTERN = re.compile(
    r"(?<![\w/.-])((?:deployment|k8s|playbooks|inventory|vertex|scripts|\.github|api-service|"
    r"data-collector|model-training)/[\w./{},-]*[\w}])"
)
# Made by the deploy role at run time, never committed.
GENERATED = ("deployment/ansible/build",)


def _expand(path: str) -> list[str]:
    """`a/{b,c}.yml` -> [`a/b.yml`, `a/c.yml`]."""
    match = re.search(r"\{([^}]+)\}", path)
    if match is None:
        return [path]
    return [
        expanded
        for option in match.group(1).split(",")
        for expanded in _expand(path[: match.start()] + option + path[match.end() :])
    ]


def test_readme_mentions_only_paths_that_exist() -> None:
    text = README.read_text(encoding="utf-8")
    mentioned = {p for raw in PATH_PATTERN.findall(text) for p in _expand(raw.rstrip("."))}
    assert len(mentioned) > 20
    missing = [
        path
        for path in sorted(mentioned)
        if not path.startswith(GENERATED)
        and not any((root / path).exists() for root in (REPO_ROOT, DEPLOYMENT, ANSIBLE))
    ]
    assert missing == []


def test_readme_walks_through_every_playbook() -> None:
    text = README.read_text(encoding="utf-8")
    for playbook in (ANSIBLE / "playbooks").glob("*.yml"):
        if playbook.name != "site.yml":
            assert f"playbooks/{playbook.name}" in text, playbook.name


def test_the_repository_readme_numbers_match_their_sources() -> None:
    """Every numbers block of README.md is what readme_numbers.py makes from the bundle and the
    benchmark results (run `uv run python deployment/scripts/readme_numbers.py --write`)."""
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    found = readme_numbers.blocks(text)
    assert set(found) == set(readme_numbers.RENDERERS)
    assert found == readme_numbers.blocks(readme_numbers.render(text))
