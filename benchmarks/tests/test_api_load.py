"""api_load.py: request bodies, the load generator against a real server, profiles, targets."""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Annotated

import pytest
import uvicorn
from api_load import (
    LOAD_PHOTOS,
    LevelResult,
    PodShape,
    Variant,
    capacity,
    categorize_collapsed,
    drive,
    evaluate_targets,
    level_result,
    model_load_seconds,
    multipart_body,
    parse_importtime,
    parse_peak_rss_kib,
    parse_proc_stat_cpu,
    parse_quantity,
    parse_variant,
    process_cpu_seconds,
    process_tree,
    read_pod_shape,
    serving_peak_rss_mib,
    summarize_collapsed,
    tree_cpu_seconds,
)
from fastapi import FastAPI, File, Response


def test_multipart_body_parses_back_to_the_file() -> None:
    data = bytes(range(256)) * 4
    body, content_type = multipart_body("file", "photo.jpg", "image/jpeg", data)
    message = email.message_from_bytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body, policy=email.policy.HTTP
    )
    parts = list(message.iter_parts())
    assert len(parts) == 1
    assert parts[0].get_param("name", header="content-disposition") == "file"
    assert parts[0].get_filename() == "photo.jpg"
    assert parts[0].get_content_type() == "image/jpeg"
    assert parts[0].get_payload(decode=True) == data


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def echo_server() -> Iterator[str]:
    """A real uvicorn server whose /predict answers 200, except 503 for every 4th request."""
    app = FastAPI()
    seen = Counter[str]()

    @app.post("/predict")
    async def predict(file: Annotated[bytes, File()]) -> Response:
        seen["n"] += 1
        status = 503 if seen["n"] % 4 == 0 else 200
        return Response(str(len(file)), status_code=status)

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_drive_sends_exactly_the_requests_and_counts_errors(echo_server: str) -> None:
    body, content_type = multipart_body("file", "a.jpg", "image/jpeg", b"x" * 1000)
    latencies, errors, wall = asyncio.run(
        drive(
            f"{echo_server}/predict", body, content_type, concurrency=4, requests=20, timeout_s=10
        )
    )
    assert len(latencies) + sum(errors.values()) == 20
    assert errors == Counter({"HTTP 503": 5})
    assert all(latency > 0 for latency in latencies)
    assert wall >= max(latencies)


def test_drive_counts_connection_errors() -> None:
    body, content_type = multipart_body("file", "a.jpg", "image/jpeg", b"x")
    latencies, errors, _ = asyncio.run(
        drive(f"http://127.0.0.1:{_free_port()}/predict", body, content_type, 2, 3, 2)
    )
    assert latencies == []
    assert errors == Counter({"ConnectError": 3})


def test_level_result_counts_only_successes_in_throughput() -> None:
    result = level_result("api", "p", 8, [0.01, 0.02, 0.03], Counter({"HTTP 500": 1}), 0.5)
    assert result.requests == 4
    assert result.ok == 3
    assert result.requests_per_s == pytest.approx(6.0)
    assert result.latency is not None
    assert result.latency.p50_ms == pytest.approx(20.0)
    empty = level_result("api", "p", 1, [], Counter({"ConnectError": 2}), 1.0)
    assert empty.latency is None
    assert empty.requests_per_s == 0.0


_WORKER = "Thread._bootstrap (threading.py:1002);WorkerThread.run (anyio/_backends/_asyncio.py:967)"
_PREPARE = "_prepare (mushroom_api/services/identify.py:80)"
COLLAPSED = "\n".join(
    [
        "Runner.run (asyncio/runners.py:118);_run_once (asyncio/base_events.py:1922) 30",
        f"{_WORKER};{_PREPARE};decode_photo (mushroom_api/services/imaging.py:95);"
        "ImageFile.load (PIL/ImageFile.py:290) 50",
        f"{_WORKER};{_PREPARE};resize_for_model (mushroom_api/services/imaging.py:140);"
        "Image.resize (PIL/Image.py:2300) 10",
        "Thread._bootstrap (threading.py:1002);_run (mushroom_api/services/classifier.py:97);"
        "Interpreter.invoke (ai_edge_litert/interpreter.py:900) 6",
        "Thread._bootstrap (threading.py:1002);SomethingElse.work (lib/other.py:1) 4",
        "not a stack line",
    ]
)


def test_summarize_collapsed_self_and_inclusive_shares() -> None:
    summary = summarize_collapsed(COLLAPSED)
    self_share = dict(summary["self"])
    assert self_share["ImageFile.load (PIL/ImageFile.py)"] == pytest.approx(0.5)
    assert self_share["_run_once (asyncio/base_events.py)"] == pytest.approx(0.3)
    inclusive = dict(summary["inclusive"])
    assert inclusive["_prepare (services/identify.py)"] == pytest.approx(0.6)
    assert not any("threading.py" in name for name in inclusive)
    assert summarize_collapsed("") == {"self": [], "inclusive": []}


def test_categorize_collapsed_first_match_wins_and_waiting_is_apart() -> None:
    text = COLLAPSED + "\nThread._bootstrap (threading.py:1);Queue.get (queue.py:171);"
    text += "Condition.wait (threading.py:320) 100"
    shares, waiting = categorize_collapsed(text)
    by_name = dict(shares)
    assert waiting == pytest.approx(0.5)
    assert by_name["JPEG decode (decode_photo, PIL load)"] == pytest.approx(0.5)
    assert by_name["resize to the model input"] == pytest.approx(0.1)
    assert by_name["event loop, HTTP, framework"] == pytest.approx(0.3)
    assert by_name["model (LiteRT invoke)"] == pytest.approx(0.06)
    assert by_name["other"] == pytest.approx(0.04)
    assert sum(by_name.values()) == pytest.approx(1.0)
    assert categorize_collapsed("") == ([], 0.0)


def test_parse_importtime_takes_the_largest_cumulative_per_package() -> None:
    text = """\
import time: self [us] | cumulative | imported package
import time:       120 |        120 |   _io
import time:      1000 |       5000 |     numpy.core
import time:       500 |       9000 |   numpy
import time:       300 |     200000 |   mushroom_api.main
garbage line
"""
    assert parse_importtime(text) == [("mushroom_api", 200.0), ("numpy", 9.0), ("_io", 0.12)]


def test_model_load_seconds_reads_the_api_log() -> None:
    log = "2026 INFO x: loaded model demo/v1 from /m.tflite (2 interpreters) in 0.12 s\n"
    assert model_load_seconds(log) == pytest.approx(0.12)
    assert model_load_seconds("nothing here") is None


def _level(server: str, photo: str, concurrency: int, rps: float, p50_s: float) -> LevelResult:
    return level_result(server, photo, concurrency, [p50_s] * 10, Counter(), 10 / rps)


def test_evaluate_targets() -> None:
    one_mb, upload = LOAD_PHOTOS
    levels = [
        _level("api", one_mb, 1, 60, 0.013),
        _level("api", one_mb, 8, 130, 0.060),
        _level("api", upload, 1, 100, 0.007),
        _level("api", upload, 8, 200, 0.040),
        _level("baseline", one_mb, 8, 10, 0.800),
        _level("baseline", upload, 8, 25, 0.300),
    ]
    levels[1].server_cpu_ms_per_request = 11.0
    targets = {t.name: t for t in evaluate_targets(levels, api_cold_start_s=0.7)}
    assert targets["/predict p50, 1 MB JPEG, concurrency 1"].met is True
    assert targets["/predict p50, 1024 px upload, concurrency 1"].met is False
    saturated = targets["saturated throughput, 1 MB JPEG (best level)"]
    assert saturated.measured == pytest.approx(130)
    assert saturated.met is True
    assert targets["saturated throughput, 1024 px upload (best level)"].met is False
    ratio = targets["API / baseline req/s, 1 MB JPEG, concurrency 8"]
    assert ratio.measured == pytest.approx(13)
    assert ratio.met is True
    assert targets["API / baseline req/s, 1024 px upload, concurrency 8"].met is False
    cpu = targets["server CPU per 1 MB request (most loaded level)"]
    assert (cpu.measured, cpu.met) == (11.0, True)
    assert targets["API cold start to ready (median)"].met is False


def test_evaluate_targets_of_a_named_variant() -> None:
    one_mb = LOAD_PHOTOS[0]
    levels = [_level("api", one_mb, 1, 60, 0.030), _level("2-workers", one_mb, 1, 90, 0.012)]
    assert evaluate_targets(levels, None, "2-workers")[0].met is True
    assert evaluate_targets(levels, None, "api")[0].met is False


def test_evaluate_targets_without_a_baseline_leaves_the_ratio_open() -> None:
    targets = {t.name: t for t in evaluate_targets([], None)}
    assert all(t.met is None and t.measured is None for t in targets.values())


def test_parse_variant_splits_environment_from_options() -> None:
    variant = parse_variant("old:PYTHONPATH=/tmp/old/src:/x API_LOG_PREDICTIONS=false --workers 1")
    assert variant == Variant(
        "old",
        ("--workers", "1"),
        (("PYTHONPATH", "/tmp/old/src:/x"), ("API_LOG_PREDICTIONS", "false")),
    )
    assert parse_variant("plain:") == Variant("plain")
    with pytest.raises(ValueError, match="NAME:ARGS"):
        parse_variant("--workers 2")


def test_parse_quantity() -> None:
    assert parse_quantity("500m") == pytest.approx(0.5)
    assert parse_quantity("2") == 2
    assert parse_quantity("768Mi") == 768 * 2**20
    assert parse_quantity("1G") == 1e9


def test_read_pod_shape_from_the_shipped_manifests() -> None:
    shape = read_pod_shape()
    assert 0 < shape.cpu_request <= 8
    assert shape.memory_request_gib > 0
    assert 0 < shape.hpa_cpu_utilization <= 1


def test_capacity_prices_cpu_time_at_the_hpa_target() -> None:
    levels = [_level("api", LOAD_PHOTOS[0], 1, 50, 0.02), _level("api", LOAD_PHOTOS[0], 8, 90, 0.1)]
    levels[0].server_cpu_ms_per_request = 30.0
    levels[1].server_cpu_ms_per_request = 10.0  # the most loaded level counts
    shape = PodShape(cpu_request=0.5, memory_request_gib=1.0, hpa_cpu_utilization=0.5)
    (row,) = capacity(levels, shape)
    assert row.requests_per_s_per_vcpu == pytest.approx(100)
    assert row.requests_per_s_per_pod_at_hpa_target == pytest.approx(25)
    # 1e6 requests x 10 ms = 2.78 vCPU-hours of work, billed at 50 % use: 5.56 vCPU-hours,
    # each with 2 GiB requested alongside.
    hours = 1e6 * 0.010 / 3600 / 0.5
    assert row.usd_per_million == pytest.approx(hours * (0.0445 + 2 * 0.0049225))


def test_parse_peak_rss_kib() -> None:
    assert parse_peak_rss_kib("Name:\tpython\nVmHWM:\t  123456 kB\nVmRSS:\t1 kB\n") == 123456
    assert parse_peak_rss_kib("Name:\tpython\n") is None


def test_process_tree_cpu_and_rss_count_the_children() -> None:
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\n"
    child = subprocess.Popen(
        [sys.executable, "-c", burn + "import time; time.sleep(30)"], stdout=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 20
        while (tree_cpu_seconds(os.getpid()) or 0) - (process_cpu_seconds(os.getpid()) or 0) < 0.25:
            assert time.monotonic() < deadline, "the child's CPU never showed in the tree"
            time.sleep(0.05)
        assert child.pid in process_tree(os.getpid())
        peaks = serving_peak_rss_mib(os.getpid())
        assert peaks
        assert all(p > 1 for p in peaks)
    finally:
        child.kill()
        child.wait()
    assert process_tree(2**22 + 12345) == []


def test_parse_proc_stat_cpu_handles_names_with_spaces() -> None:
    fields = ["S", "1", "1", "1", "0", "-1", "4194304", "10", "0", "0", "0", "250", "50"]
    text = "1234 (mushroom api (x)) " + " ".join(fields + ["0"] * 30)
    assert parse_proc_stat_cpu(text, 100) == pytest.approx(3.0)


def test_process_cpu_seconds_of_this_process() -> None:
    import os

    before = process_cpu_seconds(os.getpid())
    assert before is not None
    sum(i * i for i in range(200_000))
    after = process_cpu_seconds(os.getpid())
    assert after is not None
    assert after >= before
    assert process_cpu_seconds(2**22 + 12345) is None
