"""train.py: the bf16 decision and the speed-up table (the timed part runs only as a script)."""

from __future__ import annotations

import pytest
from _common import LatencySummary
from train import PhaseResult, bf16_supported, speedups


def test_bf16_needs_a_bf16_flag() -> None:
    assert bf16_supported(["avx2", "avx512_bf16"])
    assert bf16_supported(["amx_bf16"])
    assert not bf16_supported(["avx2", "avx512f"])


def _result(phase: str, precision: str, images_per_s: float) -> PhaseResult:
    step = LatencySummary(1, 1.0, 1.0, 1.0, 1.0, 1.0)
    return PhaseResult(phase, precision, "CPU", 32, 1, step, images_per_s, 10, 0.1, 0.1)


def test_speedups_pair_precisions_per_phase() -> None:
    results = [
        _result("head", "float32", 100.0),
        _result("head", "bfloat16", 150.0),
        _result("fine-tune", "float32", 20.0),
    ]
    assert speedups(results) == {"head": pytest.approx(1.5)}
