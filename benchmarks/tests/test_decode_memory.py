"""decode_memory.py: a child process decodes as the API does and its peak RSS matches the plan."""

from __future__ import annotations

from pathlib import Path

from decode_memory import _smooth, measure


def test_a_progressive_jpeg_costs_what_the_plan_says(tmp_path: Path) -> None:
    photo, warm = tmp_path / "big.jpg", tmp_path / "warm.jpg"
    _smooth(2400, 2400, 1).save(photo, format="JPEG", progressive=True, subsampling=0)
    _smooth(256, 256, 1).save(warm, format="JPEG", progressive=True, subsampling=0)
    result = measure(photo, warm, 224)
    assert result["format"] == "JPEG"
    assert result["scans"] == 10
    # 2400x2400 with no chroma subsampling: 6 bytes of DCT coefficients a pixel (34.6 MB).
    assert result["estimate"] >= 2400 * 2400 * 6
    assert 0.8 * result["estimate"] <= result["measured"] <= 1.1 * result["estimate"]
    assert result["out"] == [300, 300]
