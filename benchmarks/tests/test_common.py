"""The shared helpers: statistics, tables, reports, machine facts, generated photos."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from _common import (
    PhotoSpec,
    encode_jpeg,
    format_cell,
    format_table,
    locate_saved_model,
    parse_int_list,
    parse_lscpu,
    percentile,
    standard_photos,
    summarize_latencies,
    synthetic_jpeg,
    timestamp,
    write_report,
)
from PIL import Image


def test_percentile_interpolates_between_order_statistics() -> None:
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == pytest.approx(2.5)
    assert percentile([1.0, 2.0, 3.0, 4.0], 0) == 1.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 100) == 4.0
    assert percentile([7.0], 95) == 7.0
    assert percentile(list(range(101)), 95) == pytest.approx(95.0)


def test_percentile_matches_numpy_linear() -> None:
    rng = np.random.default_rng(3)
    for size in (2, 5, 17, 200):
        values = rng.exponential(10.0, size).tolist()
        for q in (1, 50, 95, 99):
            assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


@pytest.mark.parametrize(("values", "q"), [([], 50), ([1.0], -1), ([1.0], 101)])
def test_percentile_refuses_bad_input(values: list[float], q: float) -> None:
    with pytest.raises(ValueError, match="percentile"):
        percentile(values, q)


def test_summarize_latencies_reports_milliseconds() -> None:
    summary = summarize_latencies([0.010, 0.020, 0.030, 0.040])
    assert summary.count == 4
    assert summary.mean_ms == pytest.approx(25.0)
    assert summary.p50_ms == pytest.approx(25.0)
    assert summary.max_ms == pytest.approx(40.0)
    assert summary.p99_ms == pytest.approx(39.7)


def test_format_table_pads_columns_and_formats_cells() -> None:
    table = format_table(["name", "ms"], [["int8", 3.14159], ["saved_model", None]])
    lines = table.splitlines()
    assert lines[0] == "| name        | ms   |"
    assert lines[1] == "|-------------|------|"
    assert lines[2] == "| int8        | 3.14 |"
    assert lines[3] == "| saved_model | -    |"


def test_format_table_refuses_ragged_rows() -> None:
    with pytest.raises(ValueError, match="cells"):
        format_table(["a", "b"], [[1]])


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "-"),
        (True, "yes"),
        (1234.5, "1234"),
        (12.345, "12.3"),
        (0.1234, "0.12"),
        (float("nan"), "-"),
        (7, "7"),
        ("x", "x"),
    ],
)
def test_format_cell(value: object, text: str) -> None:
    assert format_cell(value) == text


def test_parse_int_list() -> None:
    assert parse_int_list("1,8,32") == [1, 8, 32]
    assert parse_int_list(" 16, 1 ,16,") == [16, 1]
    with pytest.raises(ValueError, match="positive"):
        parse_int_list("0,1")
    with pytest.raises(ValueError, match="no integers"):
        parse_int_list(" , ")


@dataclass
class _Row:
    name: str
    value: float


def test_write_report_writes_json_and_never_overwrites(tmp_path: Path) -> None:
    now = datetime(2026, 11, 26, 7, 30, 5, tzinfo=UTC)
    first = write_report("inference", {"rows": [_Row("a", 1.5)], "path": Path("/x")}, tmp_path, now)
    second = write_report("inference", {"rows": []}, tmp_path, now)
    assert first.name == "inference-20261126T073005Z.json"
    assert second.name == "inference-20261126T073005Z-1.json"
    document = json.loads(first.read_text())
    assert document == {
        "benchmark": "inference",
        "rows": [{"name": "a", "value": 1.5}],
        "path": "/x",
    }


def test_timestamp_is_utc() -> None:
    assert timestamp(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "20260102T030405Z"


def test_parse_lscpu() -> None:
    fields = parse_lscpu("Model name:   AMD EPYC\nCPU(s):  2\nFlags: fpu avx512_bf16\nnoise\n")
    assert fields["Model name"] == "AMD EPYC"
    assert fields["CPU(s)"] == "2"
    assert "avx512_bf16" in fields["Flags"].split()


def test_synthetic_jpeg_hits_the_size_and_is_deterministic() -> None:
    data = synthetic_jpeg(320, 240, 30_000, quality=90, seed=5)
    assert abs(len(data) - 30_000) <= 3_000
    assert synthetic_jpeg(320, 240, 30_000, quality=90, seed=5) == data
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "JPEG"
        assert image.size == (320, 240)


def test_standard_photos_are_generated_once_then_read_from_the_cache(tmp_path: Path) -> None:
    specs = {"small": PhotoSpec(160, 120, 8_000, 90, 1), "tiny": PhotoSpec(64, 48, 2_000, 85, 2)}
    first = standard_photos(tmp_path, specs)
    cached = sorted(p.name for p in tmp_path.iterdir())
    assert len(cached) == 2
    replacement = encode_jpeg(Image.new("RGB", (10, 10), (200, 0, 0)), 90)
    (tmp_path / next(n for n in cached if n.startswith("small"))).write_bytes(replacement)
    second = standard_photos(tmp_path, specs)
    assert second["small"].data == replacement
    assert second["tiny"].data == first["tiny"].data
    assert (first["small"].width, first["small"].height) == (160, 120)
    assert abs(first["small"].kib * 1024 - 8_000) <= 800


def test_locate_saved_model_prefers_the_bundle_then_the_registry(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    storage_root = tmp_path / "storage"
    bundle.mkdir()
    storage_root.mkdir()
    found, where = locate_saved_model(bundle, "m", "v1", ["saved_model"], str(storage_root))
    assert found is None
    assert "not in the bundle folder" in where

    registry_copy = storage_root / "models" / "m" / "v1" / "saved_model"
    registry_copy.mkdir(parents=True)
    (registry_copy.parent / "metadata.json").write_text("{}")
    (registry_copy / "saved_model.pb").write_bytes(b"pb")
    found, where = locate_saved_model(bundle, "m", "v1", ["saved_model"], str(storage_root))
    assert found == registry_copy
    assert where.startswith("registry copy")

    (bundle / "saved_model").mkdir()
    (bundle / "saved_model" / "saved_model.pb").write_bytes(b"pb")
    found, where = locate_saved_model(bundle, "m", "v1", ["saved_model"], str(storage_root))
    assert found == bundle / "saved_model"
    assert where == "bundle folder"
