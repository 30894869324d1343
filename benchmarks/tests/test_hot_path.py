"""hot_path.py: interleaved timing, and the multipart lever parses the same upload either way."""

from __future__ import annotations

import asyncio

import pytest
from hot_path import multipart_request, parse_form, summarize, time_alternatives


def test_time_alternatives_interleaves_and_counts_every_call() -> None:
    order: list[str] = []
    timings = time_alternatives(
        {"a": lambda: order.append("a"), "b": lambda: order.append("b")},
        rounds=3,
        calls_per_round=2,
    )
    assert [len(v) for v in timings.values()] == [6, 6]
    # One warm-up call each, then the alternatives take turns, two calls at a time.
    assert order == ["a", "b"] + ["a", "a", "b", "b"] * 3
    (first, second) = summarize("lever", "photo", timings, {"b": "note"})
    assert (first.alternative, first.calls, second.note) == ("a", 6, "note")


@pytest.mark.parametrize("spool", [1024, 16 << 20])
def test_parse_form_reads_the_whole_file_whether_it_spills_or_not(spool: int) -> None:
    data = bytes(range(256)) * 400  # 100 KiB: over the small spool, under the large one
    body, content_type = multipart_request(data)
    assert asyncio.run(parse_form(body, content_type, spool)) == len(data)


def test_new_levers_measure_every_alternative() -> None:
    from hot_path import catalog_lever, prediction_log_lever

    catalog = catalog_lever(rounds=1)
    assert {r.alternative for r in catalog} >= {"PyYAML SafeLoader (Python)"}
    assert all(r.calls == 1 and r.p50_ms > 0 for r in catalog)
    log = prediction_log_lever(rounds=1)
    assert [r.alternative for r in log] == ["1 record per insert", "10 records per insert"]
    assert all(r.calls == 10 and r.p50_ms > 0 for r in log)


def test_views_lever_times_one_and_two_views_on_the_demo_bundle() -> None:
    from pathlib import Path

    from hot_path import views_lever
    from PIL import Image

    bundle = Path(__file__).resolve().parents[2] / "models" / "demo"
    if not (bundle / "metadata.json").is_file():
        pytest.skip("no demo bundle at models/demo")
    import io

    buffer = io.BytesIO()
    Image.new("RGB", (320, 240), (120, 90, 60)).save(buffer, "JPEG")
    results = views_lever({"small": buffer.getvalue()}, bundle, rounds=1)
    assert [r.alternative for r in results] == ["1 view (photo)", "2 views (photo + mirror)"]
    assert all(r.calls == 10 and r.p50_ms > 0 and "ms CPU/photo" in r.note for r in results)
