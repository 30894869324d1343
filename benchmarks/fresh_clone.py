"""`make run` from a fresh clone with empty caches: seconds to the first answered /predict, sizes.

Clones this repository's committed HEAD into a temporary folder, runs `make run PORT=<free port>`
there with an empty uv cache and an empty npm cache (so every package is downloaded from the
registries), and posts a photo to /predict until it answers 200. `--no-uv-on-path` hides the uv
and Python of PATH so the Makefile's bootstrap (uv into .tools/ with Debian's system Python) is
measured too.

    uv run python benchmarks/fresh_clone.py --help
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import httpx
import typer
from _common import REPO_ROOT, format_table, free_port, standard_photos, write_report

logger = logging.getLogger("benchmarks.fresh_clone")
app = typer.Typer(add_completion=False, help=__doc__)

SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclass
class FreshRun:
    """One fresh clone's `make run`."""

    command: str
    seconds_to_predict: float | None
    venv_mib: float
    tools_mib: float
    node_modules_mib: float
    uv_cache_mib: float
    npm_cache_mib: float
    exit_code: int | None
    log_tail: str


def tree_mib(path: Path) -> float:
    """Disk use of a folder in MiB (`du`, so hard links count once), 0 when absent."""
    if not path.exists():
        return 0.0
    done = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True)
    return int(done.stdout.split()[0]) / 1024


def first_answer(
    url: str, photo: bytes, process: subprocess.Popen[bytes], timeout_s: float
) -> bool:
    """Post the photo until /predict answers 200; False when make exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    files = {"file": ("photo.jpg", photo, "image/jpeg")}
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            if httpx.post(url, files=files, timeout=5).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    return False


def _timestamp_lines(
    process: subprocess.Popen[bytes], started: float, lines: list[tuple[float, str]]
) -> None:
    """Collect make's output lines with the seconds since it started (the phases' times)."""
    assert process.stdout is not None
    for raw in process.stdout:
        lines.append((time.monotonic() - started, raw.decode(errors="replace").rstrip()))


@app.command()
def main(
    no_uv_on_path: Annotated[
        bool, typer.Option(help=f"run make with PATH={SYSTEM_PATH} (Debian's Python, no uv)")
    ] = False,
    timeout_s: Annotated[float, typer.Option(help="give up after this many seconds")] = 300,
) -> None:
    """Clone, `make run`, time the first /predict answer; print and save the numbers."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    photo = standard_photos()["upload-1024px"].data
    with tempfile.TemporaryDirectory(prefix="fresh-clone-") as tmp:
        work = Path(tmp)
        clone = work / "mushroom-id"
        subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), str(clone)], check=True)
        # A fresh shell: no settings, no active virtual environment, and not the `UV` that
        # `uv run` exports to its children (the Makefile would take it as the uv to use).
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("API_", "VIRTUAL_ENV", "UV", "MUSHROOM_"))
        }
        env.update(
            {
                "UV_CACHE_DIR": str(work / "uv-cache"),
                "npm_config_cache": str(work / "npm-cache"),
                "MUSHROOM_STORAGE_URI": str(work / "storage"),
                "API_MODEL_CACHE_DIR": str(work / "model-cache"),
            }
        )
        if no_uv_on_path:
            env["PATH"] = SYSTEM_PATH
        port = free_port()
        command = ["make", "run", f"PORT={port}"]
        lines: list[tuple[float, str]] = []
        started = time.monotonic()
        process = subprocess.Popen(
            command,
            cwd=clone,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        reader = threading.Thread(target=_timestamp_lines, args=(process, started, lines))
        reader.start()
        try:
            answered = first_answer(f"http://127.0.0.1:{port}/predict", photo, process, timeout_s)
            seconds = time.monotonic() - started if answered else None
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
        reader.join(timeout=10)
        result = FreshRun(
            command=" ".join(command) + (f" (PATH={SYSTEM_PATH})" if no_uv_on_path else ""),
            seconds_to_predict=seconds,
            venv_mib=tree_mib(clone / ".venv"),
            tools_mib=tree_mib(clone / ".tools"),
            node_modules_mib=tree_mib(clone / "frontend-react" / "node_modules"),
            uv_cache_mib=tree_mib(work / "uv-cache"),
            npm_cache_mib=tree_mib(work / "npm-cache"),
            exit_code=process.returncode if not answered else None,
            log_tail="\n".join(f"{t:6.1f} s  {line}" for t, line in lines[-40:]),
        )
        shutil.rmtree(clone, ignore_errors=True)
    typer.echo(
        format_table(
            [
                "command",
                "s to first /predict",
                ".venv MiB",
                ".tools MiB",
                "node_modules MiB",
                "uv cache MiB",
                "npm cache MiB",
            ],
            [
                [
                    result.command,
                    result.seconds_to_predict,
                    result.venv_mib,
                    result.tools_mib,
                    result.node_modules_mib,
                    result.uv_cache_mib,
                    result.npm_cache_mib,
                ]
            ],
        )
    )
    typer.echo("make's output, seconds since it started:\n" + result.log_tail)
    if result.seconds_to_predict is None:
        typer.echo(f"make run did not answer (exit {result.exit_code}):\n{result.log_tail}")
    typer.echo(f"JSON: {write_report('fresh_clone', {'run': result})}")
    if result.seconds_to_predict is None:
        raise typer.Exit(code=1)


if __name__ == "__main__":
    app()
