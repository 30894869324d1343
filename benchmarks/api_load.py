"""POST /predict under load: API variants against the course-style baseline, in one run.

Starts `mushroom-api` on 127.0.0.1 (a free port, an empty storage root, so it serves the bundle
given as its fallback) once per variant (`--variant NAME:ARGS`: other options or environment, e.g.
`--workers 1` against `--workers 2`, or older code through PYTHONPATH), records each one's cold
start to a ready /readyz, then drives /predict with a bounded load generator (httpx, asyncio, a
fixed number of requests per level) at each concurrency, the variants taking turns at every level,
with a 1 MB camera JPEG and with the frontend's ~1024 px upload. Then the same load against
benchmarks/baseline_server.py (Keras `model.predict` per request, tf.io.decode_jpeg, resize, /255)
serving the same model, and the ratio. Next to req/s it reports the server's own CPU per request
(every process of the server, from /proc/<pid>/stat), the peak RSS of each worker, and a capacity
table: requests per second per vCPU, per pod at the HPA target of deployment/k8s, and the cost of
a million predictions on GKE Autopilot. Targets are printed next to the numbers; `--profile`
samples the API with py-spy under load and prints where its time goes.

The load generator runs on the same machine as the server, so it takes some of the CPU too.

    cd /work/main && uv run python benchmarks/api_load.py --help
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any

import _common
import httpx
import typer
from _common import DEMO_BUNDLE_DIR, RESULTS_DIR, TestPhoto, free_port, write_report

from mushroom_common.bundle import read_metadata

logger = logging.getLogger("benchmarks.api_load")
app = typer.Typer(add_completion=False, help=__doc__)

LOAD_PHOTOS = ("1MB-2000x1500", "upload-1024px")
DEMO_TRAINING_CONFIG = _common.REPO_ROOT / "model-training" / "configs" / "demo.yaml"


# ----------------------------------------------------------------------------- requests


def multipart_body(
    field_name: str, filename: str, content_type: str, data: bytes
) -> tuple[bytes, str]:
    """A multipart/form-data body with one file field, built once and reused for every request.

    Args:
        field_name: the form field (`file` for /predict).
        filename: the file name sent.
        content_type: the file's media type.
        data: the file's bytes.

    Returns:
        The body and the request's Content-Type header value.
    """
    boundary = "mushroom-bench-" + os.urandom(8).hex()
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="{field_name}"; filename="{filename}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    return head + data + tail, f"multipart/form-data; boundary={boundary}"


@dataclass
class LevelResult:
    """One concurrency level against one server with one photo."""

    server: str
    photo: str
    concurrency: int
    requests: int
    ok: int
    errors: dict[str, int]
    wall_s: float
    requests_per_s: float
    latency: _common.LatencySummary | None
    server_cpu_ms_per_request: float | None = None  # every server process and thread, user + system
    client_cpu_ms_per_request: float | None = None  # the load generator's own CPU


def level_result(
    server: str,
    photo: str,
    concurrency: int,
    latencies: Sequence[float],
    errors: Counter[str],
    wall_s: float,
) -> LevelResult:
    """Summarize a level: throughput counts successful requests only."""
    return LevelResult(
        server=server,
        photo=photo,
        concurrency=concurrency,
        requests=len(latencies) + sum(errors.values()),
        ok=len(latencies),
        errors=dict(errors),
        wall_s=wall_s,
        requests_per_s=len(latencies) / wall_s if wall_s > 0 else 0.0,
        latency=_common.summarize_latencies(latencies) if latencies else None,
    )


async def drive(
    url: str,
    body: bytes,
    content_type: str,
    concurrency: int,
    requests: int,
    timeout_s: float,
) -> tuple[list[float], Counter[str], float]:
    """Send exactly `requests` POSTs with at most `concurrency` in flight.

    Returns:
        Latencies of the 200 answers (s), error counts by status or exception, wall time (s).
    """
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"content-type": content_type}
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    tickets: Iterator[int] = iter(range(requests))
    async with httpx.AsyncClient(limits=limits, timeout=timeout_s) as client:

        async def worker() -> None:
            for _ in tickets:
                started = time.perf_counter()
                try:
                    response = await client.post(url, content=body, headers=headers)
                except httpx.HTTPError as exc:
                    errors[type(exc).__name__] += 1
                    continue
                elapsed = time.perf_counter() - started
                if response.status_code == 200:
                    latencies.append(elapsed)
                else:
                    errors[f"HTTP {response.status_code}"] += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return latencies, errors, wall


# ----------------------------------------------------------------------------- servers


def parse_proc_stat_cpu(text: str, ticks_per_second: int) -> float:
    """User + system CPU seconds of a process (all its threads) from `/proc/<pid>/stat`.

    Args:
        text: the file's contents.
        ticks_per_second: `os.sysconf("SC_CLK_TCK")`.

    Returns:
        CPU seconds used so far.
    """
    # The command name (field 2) may hold spaces and parentheses: split after its last ")".
    fields = text.rsplit(")", 1)[1].split()
    user_ticks, system_ticks = int(fields[11]), int(fields[12])  # fields 14 and 15 of the file
    return (user_ticks + system_ticks) / ticks_per_second


def process_cpu_seconds(pid: int) -> float | None:
    """CPU seconds used by a process so far, or None where /proc cannot tell."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return parse_proc_stat_cpu(text, os.sysconf("SC_CLK_TCK"))


def process_tree(pid: int) -> list[int]:
    """A process and all its living descendants (uvicorn's workers are children of the parent).

    Args:
        pid: the root process.

    Returns:
        The pids, the root first; empty when the root is gone.
    """
    if not Path(f"/proc/{pid}").exists():
        return []
    found = [pid]
    for parent in found:
        for children in Path(f"/proc/{parent}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                found += [int(child) for child in children.read_text().split()]
    return found


def tree_cpu_seconds(pid: int) -> float | None:
    """CPU seconds used by a process and its living descendants, or None where /proc cannot tell."""
    pids = process_tree(pid)
    seconds = [process_cpu_seconds(p) for p in pids]
    known = [s for s in seconds if s is not None]
    return sum(known) if known else None


def parse_peak_rss_kib(status_text: str) -> int | None:
    """`VmHWM` (the peak resident set size, KiB) from the text of `/proc/<pid>/status`."""
    match = re.search(r"^VmHWM:\s+(\d+) kB", status_text, re.MULTILINE)
    return int(match.group(1)) if match else None


def serving_peak_rss_mib(pid: int) -> list[float]:
    """Peak RSS (MiB) of each process that serves requests: the workers, else the process itself.

    With `--workers N` the root is uvicorn's supervisor, which only forks and watches; its
    children are the ones that load the model and answer.
    """
    pids = process_tree(pid)
    serving = pids[1:] or pids
    peaks = []
    for p in serving:
        with contextlib.suppress(OSError):
            kib = parse_peak_rss_kib(Path(f"/proc/{p}/status").read_text())
            if kib is not None:
                peaks.append(kib / 1024)
    return peaks


@dataclass
class Server:
    """A server subprocess and where it listens."""

    name: str
    process: subprocess.Popen[bytes]
    base_url: str
    ready_s: float
    log_path: Path


class ServerStartError(RuntimeError):
    """A server exited or never became ready."""


def start_server(
    name: str, command: list[str], port: int, env: dict[str, str], log_path: Path, timeout_s: float
) -> Server:
    """Start a server and wait until GET /readyz answers 200; the time taken is its cold start."""
    base_url = f"http://127.0.0.1:{port}"
    log = log_path.open("wb")
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    with httpx.Client(timeout=1.0) as client:
        while time.perf_counter() - started < timeout_s:
            if process.poll() is not None:
                raise ServerStartError(
                    f"{name} exited with {process.returncode}; see {log_path}:\n" + _tail(log_path)
                )
            with contextlib.suppress(httpx.HTTPError):
                if client.get(f"{base_url}/readyz").status_code == 200:
                    return Server(name, process, base_url, time.perf_counter() - started, log_path)
            time.sleep(0.005)
    stop_server_process(process)
    raise ServerStartError(f"{name} not ready after {timeout_s:.0f} s; see {log_path}")


def _tail(path: Path, lines: int = 15) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def stop_server_process(process: subprocess.Popen[bytes]) -> None:
    """Stop a server we started: SIGTERM, then SIGKILL after 10 s."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def api_command(port: int, extra_args: Sequence[str] = ()) -> list[str]:
    """`mushroom-api --host 127.0.0.1 --port N [extra args]` from this environment."""
    script = Path(sys.executable).with_name("mushroom-api")
    executable = [str(script)] if script.exists() else [shutil.which("mushroom-api") or ""]
    if not executable[0]:
        executable = [sys.executable, "-m", "mushroom_api.cli"]
    return [
        *executable,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "info",
        *extra_args,
    ]


def model_load_seconds(log_text: str) -> float | None:
    """The API's own "loaded model ... in N s" figure from its log, if present."""
    match = re.search(r"loaded model .* in ([0-9.]+) s", log_text)
    return float(match.group(1)) if match else None


def api_env(bundle_dir: Path, work_dir: Path, extra: dict[str, str]) -> dict[str, str]:
    """Environment for the API: an empty storage root (so the bundle is served as the fallback)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("API_")}
    env.update(
        {
            "MUSHROOM_STORAGE_URI": str(work_dir / "storage"),
            "API_FALLBACK_BUNDLE_DIR": str(bundle_dir),
            "API_MODEL_CACHE_DIR": str(work_dir / "model-cache"),
            "MUSHROOM_DATABASE_URL": f"sqlite:///{work_dir / 'mushroom.sqlite3'}",
            "API_RATE_LIMIT_PER_MINUTE": "0",
        }
    )
    env.update(extra)
    return env


# ----------------------------------------------------------------------------- profiling


def collapsed_stacks(text: str) -> Iterator[tuple[str, int]]:
    """(stack, sample count) of each line `frame;frame;...;leaf count` of py-spy's raw
    (collapsed) output; other lines are skipped."""
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if stack and count_text.isdigit():
            yield stack, int(count_text)


def summarize_collapsed(text: str, top: int = 15) -> dict[str, list[tuple[str, float]]]:
    """Self and inclusive time shares per function from py-spy's raw (collapsed) output.

    Each line is `frame;frame;...;leaf count`, a frame `function (file:line)`; line numbers are
    dropped so a function counts once.

    Args:
        text: the collapsed stacks.
        top: how many functions to keep per list.

    Returns:
        {"self": [(function, share)], "inclusive": [(function, share)]}, largest first.
    """
    self_counts: Counter[str] = Counter()
    inclusive_counts: Counter[str] = Counter()
    total = 0
    for stack, count in collapsed_stacks(text):
        frames = [_function_of(frame) for frame in stack.split(";") if frame]
        if not frames:
            continue
        total += count
        self_counts[frames[-1]] += count
        for function in set(frames):
            if not any(noise in function for noise in _INCLUSIVE_NOISE):
                inclusive_counts[function] += count
    if total == 0:
        return {"self": [], "inclusive": []}
    return {
        "self": [(f, c / total) for f, c in self_counts.most_common(top)],
        "inclusive": [(f, c / total) for f, c in inclusive_counts.most_common(top)],
    }


def _function_of(frame: str) -> str:
    """`resize (PIL/Image.py:2345)` -> `resize (PIL/Image.py)`; thread frames stay as they are."""
    name, sep, where = frame.partition(" (")
    if not sep:
        return frame.strip()
    path = where.rstrip(")").rsplit(":", 1)[0]
    short = "/".join(Path(path).parts[-2:])
    return f"{name} ({short})"


# Where a sample's time goes, first match wins (a frame's text contains the marker).
PROFILE_CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("JPEG decode (decode_photo, PIL load)", ("decode_photo", "ImageFile.load")),
    ("resize to the model input", ("resize_for_model",)),
    ("model (LiteRT invoke)", ("Interpreter.invoke", "_Runner.invoke")),
    ("prediction log", ("PredictionStore", "PredictionLog")),
    ("baseline: Keras model.predict", ("Trainer.predict",)),
    ("baseline: TF decode + resize", ("decode_jpeg", "resize_images", "image_ops")),
    ("request body / multipart", ("multipart", "Request.stream", "Request.form", "_get_form")),
    ("response (pydantic, JSON)", ("serialize_response", "jsonable_encoder", "JSONResponse")),
    ("event loop, HTTP, framework", ("asyncio", "uvicorn", "starlette", "fastapi", "anyio")),
)
# A sample whose innermost frame is one of these is a thread waiting, not working: py-spy's idle
# detection does not always see Python-level waits.
WAITING_LEAVES = ("Condition.wait", "Queue.get", "Lock.acquire", "Event.wait", "_worker (")
_INCLUSIVE_NOISE = (
    "threading.py",
    "_click/",
    "typer/",
    "<module>",
    "runners.py",
    "cli.py",
    "futures/thread.py",
    "_backends/_asyncio.py",
    # the ASGI stack every request passes through: true of every sample, telling nothing
    "uvicorn/",
    "starlette/",
    "fastapi/",
    "middleware/",
    "telemetry/",
    "serve (",
)


def categorize_collapsed(
    text: str, categories: Sequence[tuple[str, Sequence[str]]] = PROFILE_CATEGORIES
) -> tuple[list[tuple[str, float]], float]:
    """Where the working samples go, by category, and how many samples were only waiting.

    A sample is waiting when its innermost frame is a wait (`WAITING_LEAVES`); every other sample
    goes to the first category with a marker in any of its frames, else to "other".

    Args:
        text: py-spy raw (collapsed) stacks.
        categories: (name, markers) in priority order.

    Returns:
        (category, share of the working samples) largest first, and the waiting share of all.
    """
    counts: Counter[str] = Counter()
    waiting = 0
    for stack, count in collapsed_stacks(text):
        leaf = stack.rsplit(";", 1)[-1]
        if any(leaf.startswith(w) for w in WAITING_LEAVES):
            waiting += count
            continue
        name = next(
            (name for name, markers in categories if any(m in stack for m in markers)), "other"
        )
        counts[name] += count
    busy = sum(counts.values())
    total = busy + waiting
    shares = [(name, count / busy) for name, count in counts.most_common()] if busy else []
    return shares, (waiting / total if total else 0.0)


def parse_importtime(text: str, top: int = 12) -> list[tuple[str, float]]:
    """Packages by import time (ms, their dependencies included) from `python -X importtime`.

    A package's time is the largest cumulative time of any of its modules, wherever it was first
    imported, so the list reads "importing X took N ms".
    """
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = line[len("import time:") :].split("|")
        if len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        package = parts[2].strip().split(".")[0]
        totals[package] = max(totals.get(package, 0.0), int(parts[1]) / 1000.0)
    return sorted(totals.items(), key=lambda item: -item[1])[:top]


def import_profile() -> list[tuple[str, float]]:
    """Where `import mushroom_api.main` spends its time, by top-level package (ms)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import mushroom_api.main, mushroom_api.cli"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return parse_importtime(done.stderr)


@dataclass
class Profile:
    """Where the API process spent its time under one load level."""

    tool: str
    server: str
    photo: str
    concurrency: int
    samples_file: str
    categories: list[tuple[str, float]] = field(default_factory=list)  # of working samples
    waiting_share: float = 0.0  # samples of threads only waiting, left out of `categories`
    self_share: list[tuple[str, float]] = field(default_factory=list)
    inclusive_share: list[tuple[str, float]] = field(default_factory=list)
    note: str = ""


def profile_api(
    server: Server,
    photo: TestPhoto,
    concurrency: int,
    requests: int,
    timeout_s: float,
    out_path: Path,
) -> Profile:
    """Sample a server process with py-spy (all threads, 200 Hz) while driving one load level."""
    py_spy = Path(sys.executable).with_name("py-spy")
    executable = str(py_spy) if py_spy.exists() else shutil.which("py-spy")
    profile = Profile("py-spy", server.name, photo.name, concurrency, str(out_path))
    if executable is None:
        profile.note = "py-spy is not installed"
        return profile
    recorder = subprocess.Popen(
        [
            executable,
            "record",
            "--pid",
            str(server.process.pid),
            "--rate",
            "200",
            "--format",
            "raw",
            "--output",
            str(out_path),
            "--nonblocking",
            # With --workers N the pid is uvicorn's supervisor: sample its workers too.
            "--subprocesses",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    time.sleep(1.0)  # let py-spy attach before the load starts
    body, content_type = multipart_body("file", "photo.jpg", "image/jpeg", photo.data)
    asyncio.run(
        drive(f"{server.base_url}/predict", body, content_type, concurrency, requests, timeout_s)
    )
    recorder.send_signal(signal.SIGINT)
    try:
        output, _ = recorder.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        recorder.kill()
        output, _ = recorder.communicate()
    if not out_path.is_file():
        profile.note = "py-spy wrote no samples: " + output.decode(errors="replace")[-300:]
        return profile
    text = out_path.read_text(errors="replace")
    summary = summarize_collapsed(text)
    profile.self_share, profile.inclusive_share = summary["self"], summary["inclusive"]
    profile.categories, profile.waiting_share = categorize_collapsed(text)
    return profile


# ----------------------------------------------------------------------------- targets


@dataclass
class Target:
    """A target from the benchmark issue and whether this run met it."""

    name: str
    limit: str
    measured: float | None
    unit: str
    met: bool | None


def _p50(levels: Sequence[LevelResult], server: str, photo: str, concurrency: int) -> float | None:
    for level in levels:
        if (level.server, level.photo, level.concurrency) == (server, photo, concurrency):
            return level.latency.p50_ms if level.latency else None
    return None


def _rps(levels: Sequence[LevelResult], server: str, photo: str, concurrency: int) -> float | None:
    for level in levels:
        if (level.server, level.photo, level.concurrency) == (server, photo, concurrency):
            return level.requests_per_s
    return None


def _cpu(levels: Sequence[LevelResult], server: str, photo: str) -> float | None:
    """Server CPU ms per request at the most loaded level measured (the capacity figure)."""
    mine = [lvl for lvl in levels if (lvl.server, lvl.photo) == (server, photo)]
    loaded = max(mine, key=lambda lvl: lvl.concurrency, default=None)
    return loaded.server_cpu_ms_per_request if loaded else None


def _saturated(levels: Sequence[LevelResult], server: str, photo: str) -> float | None:
    return max(
        (lvl.requests_per_s for lvl in levels if (lvl.server, lvl.photo) == (server, photo)),
        default=None,
    )


def evaluate_targets(
    levels: Sequence[LevelResult], api_cold_start_s: float | None, server: str = "api"
) -> list[Target]:
    """Issue 16's targets against this run's numbers for one API variant (None: not measured)."""
    one_mb, upload = LOAD_PHOTOS

    def ratio(photo: str) -> float | None:
        api_c8 = _rps(levels, server, photo, 8)
        base_c8 = _rps(levels, "baseline", photo, 8)
        return api_c8 / base_c8 if api_c8 is not None and base_c8 else None

    def at_most(value: float | None, limit: float) -> bool | None:
        return None if value is None else value <= limit

    def at_least(value: float | None, limit: float) -> bool | None:
        return None if value is None else value >= limit

    rows: list[tuple[str, str, float | None, str, float, bool]] = [
        (
            "/predict p50, 1 MB JPEG, concurrency 1",
            "<=",
            _p50(levels, server, one_mb, 1),
            "ms",
            14,
            False,
        ),
        (
            "/predict p50, 1024 px upload, concurrency 1",
            "<=",
            _p50(levels, server, upload, 1),
            "ms",
            6,
            False,
        ),
        (
            "saturated throughput, 1 MB JPEG (best level)",
            ">=",
            _saturated(levels, server, one_mb),
            "req/s",
            120,
            True,
        ),
        (
            "saturated throughput, 1024 px upload (best level)",
            ">=",
            _saturated(levels, server, upload),
            "req/s",
            250,
            True,
        ),
        ("API / baseline req/s, 1 MB JPEG, concurrency 8", ">=", ratio(one_mb), "x", 10, True),
        ("API / baseline req/s, 1024 px upload, concurrency 8", ">=", ratio(upload), "x", 10, True),
        (
            "server CPU per 1 MB request (most loaded level)",
            "<=",
            _cpu(levels, server, one_mb),
            "ms",
            12,
            False,
        ),
        ("API cold start to ready (median)", "<=", api_cold_start_s, "s", 0.6, False),
    ]
    return [
        Target(
            name,
            f"{op} {limit:g}{'x' if unit == 'x' else ' ' + unit}",
            value,
            unit,
            at_least(value, limit) if higher_is_better else at_most(value, limit),
        )
        for name, op, value, unit, limit, higher_is_better in rows
    ]


# ----------------------------------------------------------------------------- capacity

# GKE Autopilot list prices, general-purpose Pods, us-central1 (Iowa), USD, as published on
# https://cloud.google.com/kubernetes-engine/pricing (read 2026-12-01 from a copy quoted in 2025;
# regional prices differ, committed-use and Spot discounts are not applied).
AUTOPILOT_VCPU_HOUR_USD = 0.0445
AUTOPILOT_GIB_HOUR_USD = 0.0049225
AUTOPILOT_PRICE_NOTE = (
    "GKE Autopilot general-purpose Pod list prices, us-central1: $0.0445 per vCPU-hour and "
    "$0.0049225 per GiB-hour (cloud.google.com/kubernetes-engine/pricing as quoted in 2025, "
    "used on 2026-12-01; no discounts)"
)
K8S_BASE = _common.REPO_ROOT / "deployment" / "k8s" / "base"


@dataclass(frozen=True)
class PodShape:
    """What one API pod requests and the CPU utilization its HorizontalPodAutoscaler aims at."""

    cpu_request: float  # vCPU
    memory_request_gib: float
    hpa_cpu_utilization: float  # 0..1


def parse_quantity(text: str) -> float:
    """A Kubernetes quantity (`500m`, `2`, `768Mi`, `1Gi`, `1G`) as a plain number."""
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 1e3, "M": 1e6, "G": 1e9}
    for suffix in sorted(units, key=len, reverse=True):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * units[suffix]
    return float(text)


def read_pod_shape(base: Path = K8S_BASE) -> PodShape:
    """The API pod's requests and HPA target from deployment/k8s/base (the manifests we ship)."""
    import yaml

    deployment = yaml.safe_load((base / "api-deployment.yaml").read_text())
    container = next(
        c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "api"
    )
    requests = container["resources"]["requests"]
    hpa = yaml.safe_load((base / "api-hpa.yaml").read_text())
    cpu_metric = next(
        m["resource"] for m in hpa["spec"]["metrics"] if m.get("resource", {}).get("name") == "cpu"
    )
    return PodShape(
        cpu_request=parse_quantity(str(requests["cpu"])),
        memory_request_gib=parse_quantity(str(requests["memory"])) / 2**30,
        hpa_cpu_utilization=float(cpu_metric["target"]["averageUtilization"]) / 100,
    )


@dataclass
class Capacity:
    """What one vCPU, one pod and one million predictions come to for one server and photo."""

    server: str
    photo: str
    server_cpu_ms_per_request: float
    requests_per_s_per_vcpu: float  # at 100 % of one vCPU
    requests_per_s_per_pod_at_hpa_target: float
    usd_per_million: float  # pods billed by their requests, run at the HPA target


def capacity(levels: Sequence[LevelResult], shape: PodShape) -> list[Capacity]:
    """The capacity table from the server CPU per request at each server's most loaded level.

    A pod is billed for what it requests (Autopilot), and the HPA keeps it near the target
    utilization, so a million requests cost their CPU time divided by that utilization, plus the
    memory requested alongside each vCPU.
    """
    rows = []
    for server, photo in dict.fromkeys((lvl.server, lvl.photo) for lvl in levels):
        cpu_ms = _cpu(levels, server, photo)
        if not cpu_ms:
            continue
        per_vcpu = 1000.0 / cpu_ms
        vcpu_hours = 1e6 * cpu_ms / 1000.0 / 3600.0 / shape.hpa_cpu_utilization
        gib_per_vcpu = shape.memory_request_gib / shape.cpu_request
        usd = vcpu_hours * (AUTOPILOT_VCPU_HOUR_USD + gib_per_vcpu * AUTOPILOT_GIB_HOUR_USD)
        rows.append(
            Capacity(
                server,
                photo,
                cpu_ms,
                per_vcpu,
                per_vcpu * shape.cpu_request * shape.hpa_cpu_utilization,
                usd,
            )
        )
    return rows


# ----------------------------------------------------------------------------- the command


def measure_level(
    server: Server, photo: TestPhoto, concurrency: int, requests: int, timeout_s: float
) -> LevelResult:
    """One load level, with the server's CPU (all its processes) and the client's own CPU."""
    body, content_type = multipart_body("file", "photo.jpg", "image/jpeg", photo.data)
    server_cpu = tree_cpu_seconds(server.process.pid)
    client_cpu = time.process_time()
    latencies, errors, wall = asyncio.run(
        drive(f"{server.base_url}/predict", body, content_type, concurrency, requests, timeout_s)
    )
    client_cpu = time.process_time() - client_cpu
    server_after = tree_cpu_seconds(server.process.pid)
    result = level_result(server.name, photo.name, concurrency, latencies, errors, wall)
    sent = max(result.requests, 1)
    if server_cpu is not None and server_after is not None:
        result.server_cpu_ms_per_request = (server_after - server_cpu) * 1000 / sent
    result.client_cpu_ms_per_request = client_cpu * 1000 / sent
    logger.info(
        "%s %s c=%d: %.1f req/s, p50 %s ms, server CPU %s ms/req, errors %s",
        server.name,
        photo.name,
        concurrency,
        result.requests_per_s,
        f"{result.latency.p50_ms:.1f}" if result.latency else "-",
        f"{result.server_cpu_ms_per_request:.1f}" if result.server_cpu_ms_per_request else "-",
        result.errors or 0,
    )
    return result


def run_levels(
    servers: Sequence[Server],
    photos: Sequence[TestPhoto],
    concurrencies: Sequence[int],
    requests: int,
    warmup: int,
    timeout_s: float,
) -> list[LevelResult]:
    """Every photo at every concurrency, the servers taking turns at each level.

    Interleaving puts every variant under the same background load of this shared machine, so
    rows of one level compare; a slow minute hurts all variants alike instead of one.
    """
    results = []
    for photo in photos:
        body, content_type = multipart_body("file", "photo.jpg", "image/jpeg", photo.data)
        for server in servers:
            if warmup:
                url = f"{server.base_url}/predict"
                asyncio.run(drive(url, body, content_type, 1, warmup, timeout_s))
        for concurrency in concurrencies:
            for server in servers:
                results.append(measure_level(server, photo, concurrency, requests, timeout_s))
    return results


@dataclass(frozen=True)
class Variant:
    """One way of running the API: extra `mushroom-api` arguments and environment."""

    name: str
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()


def parse_variant(text: str) -> Variant:
    """`NAME:[KEY=VALUE ...] [--option value ...]` -> Variant.

    Upper-case `KEY=VALUE` words set environment variables (PYTHONPATH=<old checkout>/... runs
    older code from the same environment); everything else is passed to `mushroom-api`.

    Args:
        text: e.g. `"1-worker:--workers 1"` or `"no-log:API_LOG_PREDICTIONS=false"`.

    Returns:
        The variant.
    """
    name, sep, rest = text.partition(":")
    if not sep or not name.strip():
        raise ValueError(f"{text!r} is not NAME:ARGS (for example '1-worker:--workers 1')")
    env: list[tuple[str, str]] = []
    args: list[str] = []
    for word in shlex.split(rest):
        key, eq, value = word.partition("=")
        if eq and not key.startswith("-") and re.fullmatch(r"[A-Z_][A-Z0-9_]*", key):
            env.append((key, value))
        else:
            args.append(word)
    return Variant(name.strip(), tuple(args), tuple(env))


@app.command()
def main(
    bundle_dir: Annotated[Path, typer.Option(help="bundle both servers serve")] = DEMO_BUNDLE_DIR,
    storage_uri: Annotated[
        str | None,
        typer.Option(
            help="registry holding the bundle's SavedModel when the bundle folder has "
            "none (default: MUSHROOM_STORAGE_URI)"
        ),
    ] = None,
    rebuild_config: Annotated[
        Path | None,
        typer.Option(
            help="when no SavedModel is found, the baseline rebuilds the network from "
            "this training config (same compute, untrained head)"
        ),
    ] = DEMO_TRAINING_CONFIG,
    concurrency: Annotated[str, typer.Option(help="comma-separated concurrency levels")] = "1,8,32",
    requests: Annotated[int, typer.Option(min=1, help="requests per level against the API")] = 300,
    baseline_requests: Annotated[
        int, typer.Option(min=1, help="requests per level against the baseline (slower)")
    ] = 64,
    warmup: Annotated[int, typer.Option(min=0, help="untimed requests per photo first")] = 10,
    cold_starts: Annotated[
        int, typer.Option(min=1, help="API starts timed (the median is reported)")
    ] = 3,
    baseline: Annotated[bool, typer.Option(help="also load the course-style baseline")] = True,
    profile: Annotated[
        bool,
        typer.Option(
            help="afterwards, sample the API with py-spy under load (each photo) "
            "and time its imports"
        ),
    ] = False,
    profile_concurrency: Annotated[
        int, typer.Option(min=1, help="concurrency while profiling")
    ] = 8,
    profile_requests: Annotated[int, typer.Option(min=1, help="requests while profiling")] = 300,
    timeout_s: Annotated[float, typer.Option(help="per-request timeout in seconds")] = 60.0,
    api_env_var: Annotated[
        list[str] | None,
        typer.Option(
            "--api-env",
            help="extra KEY=VALUE for the API (repeatable), e.g. API_INTERPRETER_POOL_SIZE=2",
        ),
    ] = None,
    variant_text: Annotated[
        list[str] | None,
        typer.Option(
            "--variant",
            help="an API variant, NAME:[KEY=VALUE ...] [mushroom-api options] (repeatable; "
            "default one variant 'api' with the defaults); the variants take turns at every "
            "level, e.g. --variant '1-worker:--workers 1' --variant '2-workers:--workers 2'",
        ),
    ] = None,
    results_dir: Annotated[Path, typer.Option(help="where the JSON report goes")] = RESULTS_DIR,
) -> None:
    """Load the API and the baseline with the same requests; print the table and the targets."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if not (bundle_dir / "metadata.json").is_file():
        raise typer.BadParameter(f"no bundle at {bundle_dir} (metadata.json missing)")
    bundle_dir = bundle_dir.resolve()
    levels_wanted = _common.parse_int_list(concurrency)
    extra = dict(item.split("=", 1) for item in (api_env_var or []))
    try:
        variants = (
            [parse_variant(text) for text in variant_text] if variant_text else [Variant("api")]
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    if len({v.name for v in variants}) != len(variants) or "baseline" in {v.name for v in variants}:
        raise typer.BadParameter("variant names must be unique and not 'baseline'")
    machine = _common.machine_info()
    photos = [p for name, p in _common.standard_photos().items() if name in LOAD_PHOTOS]
    levels: list[LevelResult] = []
    cold: dict[str, list[float]] = {}
    model_load: list[float] = []
    imports: list[tuple[str, float]] = []
    peak_rss: dict[str, list[float]] = {}
    profiles: list[Profile] = []
    notes: list[str] = []

    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        work = Path(tmp)
        env = api_env(bundle_dir, work, extra)
        servers: dict[str, Server] = {}
        try:
            # Cold starts alternate between the variants, like the load levels below.
            for attempt in range(cold_starts):
                for variant in variants:
                    if variant.name in servers:
                        stop_server_process(servers.pop(variant.name).process)
                    port = free_port()
                    server = start_server(
                        variant.name,
                        api_command(port, variant.args),
                        port,
                        {**env, **dict(variant.env)},
                        work / f"{variant.name}-{attempt}.log",
                        120,
                    )
                    servers[variant.name] = server
                    cold.setdefault(variant.name, []).append(server.ready_s)
                    loaded = model_load_seconds(server.log_path.read_text(errors="replace"))
                    if loaded is not None:
                        model_load.append(loaded)
                    logger.info("%s ready in %.2f s", variant.name, server.ready_s)
            running = [servers[v.name] for v in variants]
            levels += run_levels(running, photos, levels_wanted, requests, warmup, timeout_s)
            for server in running:
                peak_rss[server.name] = serving_peak_rss_mib(server.process.pid)
            if profile:
                imports = import_profile()
                for server in running:
                    for photo in photos:
                        out = (
                            results_dir
                            / "profiles"
                            / f"{server.name}-pyspy-{photo.name}-{_common.timestamp()}.txt"
                        )
                        out.parent.mkdir(parents=True, exist_ok=True)
                        profiles.append(
                            profile_api(
                                server, photo, profile_concurrency, profile_requests, timeout_s, out
                            )
                        )
        finally:
            for server in servers.values():
                stop_server_process(server.process)

        baseline_model: list[str] = []
        if baseline:
            metadata = read_metadata(bundle_dir)
            saved_model, where = _common.locate_saved_model(
                bundle_dir,
                metadata.name,
                metadata.version,
                [v.path for v in metadata.variants if v.format == "saved_model"],
                storage_uri,
            )
            if saved_model is not None:
                baseline_model = ["--saved-model", str(saved_model)]
                notes.append(f"baseline serves the SavedModel from the {where}")
            elif rebuild_config is not None and rebuild_config.is_file():
                baseline_model = ["--rebuild-config", str(rebuild_config)]
                notes.append(
                    f"no SavedModel ({where}): the baseline serves the network rebuilt from "
                    f"{rebuild_config} with an ImageNet backbone and an untrained head (same "
                    "compute per photo, different answers)"
                )
            else:
                notes.append(f"baseline not measured: no SavedModel to serve ({where})")
                logger.warning("%s", notes[-1])
        if baseline_model:
            port = free_port()
            command = [
                sys.executable,
                str(_common.BENCHMARKS_DIR / "baseline_server.py"),
                "--bundle-dir",
                str(bundle_dir),
                *baseline_model,
                "--port",
                str(port),
            ]
            try:
                base = start_server(
                    "baseline", command, port, dict(os.environ), work / "baseline.log", 300
                )
            except ServerStartError as exc:
                notes.append(f"baseline not measured: {exc}")
                logger.warning("%s", notes[-1])
            else:
                cold["baseline"] = [base.ready_s]
                try:
                    levels += run_levels(
                        [base], photos, levels_wanted, baseline_requests, min(warmup, 3), timeout_s
                    )
                    if profile:
                        one_mb = next(p for p in photos if p.name == LOAD_PHOTOS[0])
                        out = results_dir / "profiles" / f"baseline-pyspy-{_common.timestamp()}.txt"
                        profiles.append(
                            profile_api(
                                base, one_mb, profile_concurrency, baseline_requests, timeout_s, out
                            )
                        )
                finally:
                    stop_server_process(base.process)

    targets = {
        v.name: evaluate_targets(
            levels, _common.percentile(cold[v.name], 50) if cold.get(v.name) else None, v.name
        )
        for v in variants
    }
    startup = {"model_load_s": model_load, "imports_ms": imports, "peak_rss_mib": peak_rss}
    shape = read_pod_shape()
    capacities = capacity(levels, shape)
    _report(
        levels,
        cold,
        startup,
        targets,
        (shape, capacities),
        profiles,
        notes,
        machine,
        bundle_dir,
        results_dir,
    )


def _report(
    levels: list[LevelResult],
    cold: dict[str, list[float]],
    startup: dict[str, Any],
    targets: dict[str, list[Target]],
    capacity_table: tuple[PodShape, list[Capacity]],
    profiles: list[Profile],
    notes: list[str],
    machine: Any,
    bundle_dir: Path,
    results_dir: Path,
) -> None:
    echo = typer.echo
    echo(f"\nBundle: {bundle_dir}")
    echo(f"Machine: {_common.describe_machine(machine)}")
    echo("Load generator: httpx asyncio on the same machine (it shares the CPU with the server)")
    echo("\nCold start to ready /readyz (s) and peak RSS of each serving process (MiB)")
    peaks = startup["peak_rss_mib"]
    echo(
        _common.format_table(
            ["server", "starts", "median s", "min s", "max s", "peak RSS MiB per worker"],
            [
                [
                    name,
                    len(v),
                    _common.percentile(v, 50),
                    min(v),
                    max(v),
                    " / ".join(f"{p:.0f}" for p in peaks.get(name, [])) or None,
                ]
                for name, v in cold.items()
            ],
        )
    )
    if startup["model_load_s"]:
        loads = ", ".join(f"{v:.2f}" for v in startup["model_load_s"])
        echo(f"API model load, from its own log: {loads} s")
    if startup["imports_ms"]:
        echo("\nImport time of the API's modules (python -X importtime, dependencies included)")
        echo(_common.format_table(["package", "ms"], startup["imports_ms"]))
    by_key = {(lvl.server, lvl.photo, lvl.concurrency): lvl for lvl in levels}
    rows = []
    for lvl in levels:
        ratio = None
        base = by_key.get(("baseline", lvl.photo, lvl.concurrency))
        if lvl.server != "baseline" and base is not None and base.requests_per_s:
            ratio = lvl.requests_per_s / base.requests_per_s
        lat = lvl.latency
        rows.append(
            [
                lvl.server,
                lvl.photo,
                lvl.concurrency,
                lvl.requests,
                lvl.requests_per_s,
                lat.p50_ms if lat else None,
                lat.p95_ms if lat else None,
                lat.p99_ms if lat else None,
                sum(lvl.errors.values()),
                ratio,
                lvl.server_cpu_ms_per_request,
                lvl.client_cpu_ms_per_request,
            ]
        )
    echo("\nPOST /predict")
    echo(
        _common.format_table(
            [
                "server",
                "photo",
                "conc",
                "requests",
                "req/s",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "errors",
                "x baseline",
                "server CPU ms/req",
                "client CPU ms/req",
            ],
            rows,
        )
    )
    for server, server_targets in targets.items():
        echo(f"\nTargets ({server})")
        echo(
            _common.format_table(
                ["target", "limit", "measured", "met"],
                [
                    [
                        t.name,
                        t.limit,
                        None if t.measured is None else f"{t.measured:.2f} {t.unit}",
                        t.met,
                    ]
                    for t in server_targets
                ],
            )
        )
    shape, capacities = capacity_table
    echo(
        f"\nCapacity (server CPU at the most loaded level; a pod requests {shape.cpu_request:g} "
        f"vCPU and {shape.memory_request_gib:.2f} GiB, its HPA targets "
        f"{shape.hpa_cpu_utilization:.0%} CPU: deployment/k8s/base)"
    )
    echo(
        _common.format_table(
            [
                "server",
                "photo",
                "server CPU ms/req",
                "req/s per vCPU",
                "req/s per pod at the HPA target",
                "USD per 1M predictions",
            ],
            [
                [
                    c.server,
                    c.photo,
                    c.server_cpu_ms_per_request,
                    c.requests_per_s_per_vcpu,
                    c.requests_per_s_per_pod_at_hpa_target,
                    c.usd_per_million,
                ]
                for c in capacities
            ],
        )
    )
    echo(f"Prices: {AUTOPILOT_PRICE_NOTE}.")
    for prof in profiles:
        echo(
            f"\nProfile of the {prof.server} ({prof.tool}, {prof.photo}, concurrency "
            f"{prof.concurrency}): "
            f"{prof.samples_file}"
        )
        if prof.note:
            echo(f"  {prof.note}")
        echo(
            _common.format_table(
                ["where the working time goes", "share"],
                [[c, f"{s:.1%}"] for c, s in prof.categories],
            )
        )
        echo(f"({prof.waiting_share:.1%} of all samples were threads waiting on a queue or lock)")
        echo(
            _common.format_table(
                ["function (self time)", "share"], [[f, f"{s:.1%}"] for f, s in prof.self_share]
            )
        )
        echo(
            _common.format_table(
                ["function (inclusive)", "share"],
                [[f, f"{s:.1%}"] for f, s in prof.inclusive_share],
            )
        )
    for note in notes:
        echo(f"note: {note}")
    path = write_report(
        "api_load",
        {
            "machine": machine,
            "bundle_dir": bundle_dir,
            "cold_start_s": cold,
            "levels": [asdict(lvl) for lvl in levels],
            "targets": {name: [asdict(t) for t in ts] for name, ts in targets.items()},
            "peak_rss_mib": startup["peak_rss_mib"],
            "pod_shape": asdict(shape),
            "capacity": [asdict(c) for c in capacities],
            "prices": AUTOPILOT_PRICE_NOTE,
            "profiles": [asdict(p) for p in profiles],
            "notes": notes,
        },
        results_dir,
    )
    echo(f"\nJSON: {path}")


if __name__ == "__main__":
    app()
