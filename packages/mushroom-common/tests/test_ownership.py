"""One owner for each shared thing, enforced by reading the code (as the frontend's ESLint rule
enforces its feature wall):

- only mushroom_common.runtime opens a LiteRT `Interpreter(`;
- only mushroom_common.registry builds `models/...` storage keys;
- only the store module (mushroom_common/store*) uses `sqlite3`;
- only mushroom_common.runtime divides logits by a temperature (softmax with temperature);
- only settings modules read the environment (`os.environ`, `os.getenv`) in the packages' sources.

The Python sources are tokenized, so comments and docstrings do not count, and storage keys are
looked for in string literals only.
"""

from __future__ import annotations

import io
import itertools
import re
import subprocess
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).parents[3]
COMMON = "packages/mushroom-common/src/mushroom_common"
RUNTIME = f"{COMMON}/runtime.py"
REGISTRY = f"{COMMON}/registry.py"
# The benchmark that reproduces the course's original server (TensorFlow, its own softmax) to
# compare against; being the "before" is its purpose.
COURSE_BASELINE = "benchmarks/baseline_server.py"

# The modules that read the environment: the shared settings and each service's Settings.
SETTINGS_MODULES = frozenset(
    {
        f"{COMMON}/settings.py",
        "api-service/src/mushroom_api/config.py",
        "data-collector/src/mushroom_collector/config.py",
        "model-training/src/mushroom_training/config.py",
        "pipeline/src/mushroom_pipeline/config.py",
    }
)
# Process plumbing, not settings a person chooses: each names why.
ENVIRONMENT_PLUMBING = {
    # prometheus_client's multiprocess switch: the CLI points its workers at one folder.
    "api-service/src/mushroom_api/cli.py": "PROMETHEUS_MULTIPROC_DIR",
    "api-service/src/mushroom_api/services/metrics.py": "PROMETHEUS_MULTIPROC_DIR",
    # TensorFlow's C++ log level, set before TensorFlow is imported.
    "pipeline/src/mushroom_pipeline/cli.py": "TF_CPP_MIN_LOG_LEVEL",
}
ENVIRONMENT_NAMES = frozenset({"environ", "getenv", "putenv", "unsetenv"})

# A storage key under models/ in a one-line string literal (docstrings are triple-quoted;
# 'models/demo' is the repository folder of the demo bundle, not a storage key).
MODELS_KEY = re.compile(r"""^[rbuf]*["']models/(?!demo\b)""", re.IGNORECASE)
TEMPERATURE_NAME = re.compile(r"temperature$", re.IGNORECASE)


@dataclass(frozen=True)
class Hit:
    path: str
    line: int
    text: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.text.strip()}"


def python_files() -> list[str]:
    """Tracked and new (not ignored) Python files of the repository."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return sorted(p for p in listed if (ROOT / p).is_file())


def is_test(path: str) -> bool:
    return "/tests/" in f"/{path}" or path.endswith("conftest.py")


def is_source(path: str) -> bool:
    """Code that ships or runs outside the test suite."""
    return not is_test(path)


def tokens(path: str) -> Iterator[tokenize.TokenInfo]:
    """Tokens of a file given relative to the repository (or absolute)."""
    source = (ROOT / path).read_text("utf-8")
    yield from tokenize.generate_tokens(io.StringIO(source).readline)


def code_tokens(path: str) -> list[tokenize.TokenInfo]:
    skipped = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT}
    return [t for t in tokens(path) if t.type not in skipped]


def interpreter_calls(path: str) -> list[Hit]:
    found = code_tokens(path)
    return [
        Hit(path, a.start[0], a.line)
        for a, b in itertools.pairwise(found)
        if a.type == tokenize.NAME and a.string == "Interpreter" and b.string == "("
    ]


def models_keys(path: str) -> list[Hit]:
    return [
        Hit(path, t.start[0], t.line)
        for t in tokens(path)
        if t.type == tokenize.STRING and MODELS_KEY.match(t.string)
    ]


def sqlite_uses(path: str) -> list[Hit]:
    return [
        Hit(path, t.start[0], t.line)
        for t in code_tokens(path)
        if t.type == tokenize.NAME and t.string == "sqlite3"
    ]


def temperature_divisions(path: str) -> list[Hit]:
    """`x / temperature`, `x / metadata.temperature`, `x /= ...temperature`."""
    found = code_tokens(path)
    hits = []
    for i, token in enumerate(found):
        if token.type != tokenize.OP or token.string not in ("/", "/="):
            continue
        # The divisor: a dotted name right after the operator.
        j, name = i + 1, ""
        while j < len(found) and (found[j].type == tokenize.NAME or found[j].string == "."):
            name += found[j].string
            j += 1
        if TEMPERATURE_NAME.search(name):
            hits.append(Hit(path, token.start[0], token.line))
    return hits


def environment_uses(path: str) -> list[Hit]:
    return [
        Hit(path, t.start[0], t.line)
        for t in code_tokens(path)
        if t.type == tokenize.NAME and t.string in ENVIRONMENT_NAMES
    ]


def _report(hits: list[Hit]) -> str:
    return "\n".join(str(h) for h in hits)


def test_the_scanner_finds_what_it_should(tmp_path: Path) -> None:
    """The rules are not vacuous: each one fires on a sample of the code it forbids."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        '"""models/x in a docstring does not count; neither does / temperature."""\n'
        "import sqlite3\n"
        "key = f'models/{name}/champion.json'\n"
        "demo = 'models/demo'\n"
        "model = Interpreter(model_path='m.tflite')\n"
        "p = softmax(logits / bundle.temperature)\n"
        "# Interpreter( in a comment does not count\n"
        "root = os.environ.get('X')\n",
        "utf-8",
    )
    where = str(sample)  # absolute: ROOT / where is the sample itself
    assert [h.line for h in interpreter_calls(where)] == [5]
    assert [h.line for h in models_keys(where)] == [3]
    assert [h.line for h in sqlite_uses(where)] == [2]
    assert [h.line for h in temperature_divisions(where)] == [6]
    assert [h.line for h in environment_uses(where)] == [8]


def test_only_the_runtime_opens_a_litert_interpreter() -> None:
    hits = [h for p in python_files() if p != RUNTIME for h in interpreter_calls(p)]
    assert not hits, f"use mushroom_common.runtime.BundleRuntime instead:\n{_report(hits)}"
    assert interpreter_calls(RUNTIME), "the runtime module should be the one that does"


def test_only_the_registry_builds_models_keys() -> None:
    hits = [h for p in python_files() if is_source(p) and p != REGISTRY for h in models_keys(p)]
    assert not hits, f"use mushroom_common.registry.ModelRegistry instead:\n{_report(hits)}"


def test_only_the_store_uses_sqlite3() -> None:
    hits = [
        h
        for p in python_files()
        if "/src/" in p and not p.startswith(f"{COMMON}/store")
        for h in sqlite_uses(p)
    ]
    assert not hits, f"go through the store module (mushroom_common.store):\n{_report(hits)}"


def test_only_the_runtime_applies_a_temperature() -> None:
    hits = [
        h
        for p in python_files()
        if is_source(p) and p not in (RUNTIME, COURSE_BASELINE)
        for h in temperature_divisions(p)
    ]
    assert not hits, (
        "calibrate with mushroom_common.runtime.calibrated_probabilities (or run the bundle "
        f"with BundleRuntime):\n{_report(hits)}"
    )


def test_only_settings_modules_read_the_environment() -> None:
    """Settings are read in one place per service (its `Settings`, extending the shared ones);
    the benchmarks and deployment scripts, which hand environments to subprocesses, are not
    package sources."""
    hits = [
        h
        for p in python_files()
        if "/src/" in p and is_source(p) and p not in SETTINGS_MODULES
        for h in environment_uses(p)
        if not (p in ENVIRONMENT_PLUMBING and ENVIRONMENT_PLUMBING[p] in h.text)
    ]
    assert not hits, f"read settings through the package's Settings:\n{_report(hits)}"
    assert all(environment_uses(p) for p in ENVIRONMENT_PLUMBING), "a stale plumbing entry"
