"""Drift monitoring: the API's answers over time against the model's test-time behaviour.

Per time window (hour, day or week) of the API's prediction log it reports the share of each
verdict, the confidence distribution (the calibrated top-1 probability), and two distances from
the reference distribution (the served model's confidences on its dataset version's test split):

- the population stability index over ten equal-width confidence bins on [0, 1]:
  PSI = sum((p_i - q_i) * ln(p_i / q_i)), empty bins counted as 1e-4. Rule of thumb: below 0.1 no
  shift, 0.1 to 0.2 a moderate shift, above 0.2 a significant shift (the default threshold);
- the two-sample Kolmogorov-Smirnov statistic with its asymptotic p-value (default threshold
  0.01).

A window is flagged when it has at least `min_predictions` answers (100 by default: on two
samples of one distribution, PSI over ten bins reads about 9/n_1 + 9/n_2, so small windows look
shifted) and the PSI or the KS test says the confidences moved, or when its share of `uncertain`
or `not_a_mushroom` answers is above its threshold.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from mushroom_common.store import PredictionRecord

Window = Literal["hour", "day", "week"]
VERDICTS = ("dangerous", "edible", "uncertain", "not_a_mushroom")
PSI_BINS = np.linspace(0.0, 1.0, 11)
PSI_EPSILON = 1e-4


class DriftThresholds(BaseModel):
    """When a window counts as drifted."""

    model_config = ConfigDict(extra="forbid")

    psi: float = Field(0.2, gt=0)
    ks_pvalue: float = Field(0.01, gt=0, lt=1)
    min_predictions: int = Field(100, ge=1)
    max_uncertain_share: float = Field(0.5, ge=0, le=1)
    max_not_a_mushroom_share: float = Field(0.2, ge=0, le=1)


class Reference(BaseModel):
    """The served model's confidence distribution on its dataset version's test split."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model_name: str
    model_version: str
    dataset_version: str
    source: str = Field(description="tflite_test_split: the serving variant run on the test split")
    confidences: list[float]
    mushroom_scores: list[float] = Field(default_factory=list)
    detector_threshold: float | None = None


class Distribution(BaseModel):
    """Summary of a set of confidences."""

    model_config = ConfigDict(extra="forbid")

    count: int
    mean: float | None
    p10: float | None
    p50: float | None
    p90: float | None
    histogram: list[float] = Field(description="share per 0.1-wide bin on [0, 1]")


class WindowReport(BaseModel):
    """One time window of the prediction log."""

    model_config = ConfigDict(extra="forbid")

    start: datetime
    end: datetime
    predictions: int
    verdict_counts: dict[str, int]
    uncertain_share: float
    not_a_mushroom_share: float
    confidence: Distribution
    psi: float | None
    ks_statistic: float | None
    ks_pvalue: float | None
    model_versions: list[str]
    drift: bool
    reasons: list[str]


class DriftReport(BaseModel):
    """The whole report, written as JSON and Markdown."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    generated_at: datetime
    window: Window
    model_name: str
    model_version: str
    dataset_version: str
    reference_source: str
    reference: Distribution
    expected_not_a_mushroom_share: float | None = Field(
        description="share of the reference (test mushrooms) the detector rejects"
    )
    thresholds: DriftThresholds
    windows: list[WindowReport]
    drift: bool


def window_start(moment: datetime, window: Window) -> datetime:
    """The start of the window that holds moment (UTC; weeks start on Monday)."""
    moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    if window == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if window == "day":
        return day
    return day - timedelta(days=day.weekday())


WINDOW_LENGTH = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(weeks=1)}


def histogram(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Share of values in each 0.1-wide bin on [0, 1] (1.0 falls in the last bin)."""
    counts, _ = np.histogram(np.clip(values, 0.0, 1.0), bins=PSI_BINS)
    total = counts.sum()
    return counts / total if total else counts.astype(np.float64)


def population_stability_index(
    reference: npt.NDArray[np.float64], current: npt.NDArray[np.float64]
) -> float:
    """PSI of current against reference over ten equal-width bins on [0, 1]."""
    expected = np.maximum(histogram(reference), PSI_EPSILON)
    actual = np.maximum(histogram(current), PSI_EPSILON)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def _kolmogorov_q(statistic: float) -> float:
    """Q_KS(lambda) = 2 sum_{j>=1} (-1)^(j-1) exp(-2 j^2 lambda^2), the KS tail probability."""
    if statistic < 1e-3:
        return 1.0
    total = 0.0
    for j in range(1, 101):
        term = 2.0 * (-1) ** (j - 1) * math.exp(-2.0 * j * j * statistic * statistic)
        total += term
        if abs(term) < 1e-10:
            break
    return min(max(total, 0.0), 1.0)


def ks_two_sample(
    reference: npt.NDArray[np.float64], current: npt.NDArray[np.float64]
) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov statistic and its asymptotic p-value.

    Returns:
        (D, p): the largest gap between the two empirical CDFs and the probability of a gap at
        least that large when both samples come from one distribution (Stephens' approximation).
    """
    a, b = np.sort(reference), np.sort(current)
    points = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, points, side="right") / len(a)
    cdf_b = np.searchsorted(b, points, side="right") / len(b)
    statistic = float(np.max(np.abs(cdf_a - cdf_b)))
    effective = math.sqrt(len(a) * len(b) / (len(a) + len(b)))
    pvalue = _kolmogorov_q((effective + 0.12 + 0.11 / effective) * statistic)
    return statistic, pvalue


def summarise(values: Sequence[float]) -> Distribution:
    """Count, mean, deciles and histogram of confidences."""
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        return Distribution(count=0, mean=None, p10=None, p50=None, p90=None, histogram=[0.0] * 10)
    p10, p50, p90 = (float(q) for q in np.quantile(array, [0.1, 0.5, 0.9]))
    return Distribution(
        count=int(array.size),
        mean=float(array.mean()),
        p10=p10,
        p50=p50,
        p90=p90,
        histogram=[round(float(h), 6) for h in histogram(array)],
    )


def analyse(
    predictions: Sequence[PredictionRecord],
    reference: Reference,
    thresholds: DriftThresholds,
    window: Window = "day",
    now: datetime | None = None,
) -> DriftReport:
    """Compare each window of the prediction log with the reference distribution.

    Args:
        predictions: the API's logged answers (any order).
        reference: the served model's test-time confidences.
        thresholds: when a window is flagged.
        window: the window length.
        now: the report's time stamp (default: now).

    Returns:
        The report; `drift` is true when any window is flagged.
    """
    if not reference.confidences:
        raise ValueError("the reference distribution is empty")
    ref = np.asarray(reference.confidences, dtype=np.float64)
    by_window: dict[datetime, list[PredictionRecord]] = defaultdict(list)
    for record in predictions:
        by_window[window_start(record.created_at, window)].append(record)
    windows: list[WindowReport] = []
    for start in sorted(by_window):
        records = by_window[start]
        verdicts = Counter(r.verdict for r in records)
        total = len(records)
        confidences = np.asarray(
            [r.top_probability for r in records if r.top_probability is not None],
            dtype=np.float64,
        )
        uncertain = verdicts.get("uncertain", 0) / total
        not_mushroom = verdicts.get("not_a_mushroom", 0) / total
        psi = ks_stat = ks_p = None
        if confidences.size:
            psi = population_stability_index(ref, confidences)
            ks_stat, ks_p = ks_two_sample(ref, confidences)
        reasons: list[str] = []
        if total >= thresholds.min_predictions:
            if psi is not None and psi > thresholds.psi:
                reasons.append(f"confidence PSI {psi:.3f} > {thresholds.psi}")
            if ks_p is not None and ks_p < thresholds.ks_pvalue:
                reasons.append(f"confidence KS p-value {ks_p:.2g} < {thresholds.ks_pvalue}")
            if uncertain > thresholds.max_uncertain_share:
                reasons.append(
                    f"uncertain share {uncertain:.2f} > {thresholds.max_uncertain_share}"
                )
            if not_mushroom > thresholds.max_not_a_mushroom_share:
                reasons.append(
                    f"not_a_mushroom share {not_mushroom:.2f} > "
                    f"{thresholds.max_not_a_mushroom_share}"
                )
        windows.append(
            WindowReport(
                start=start,
                end=start + WINDOW_LENGTH[window],
                predictions=total,
                verdict_counts={v: verdicts.get(v, 0) for v in sorted({*VERDICTS, *verdicts})},
                uncertain_share=round(uncertain, 6),
                not_a_mushroom_share=round(not_mushroom, 6),
                confidence=summarise(confidences.tolist()),
                psi=None if psi is None else round(psi, 6),
                ks_statistic=None if ks_stat is None else round(ks_stat, 6),
                ks_pvalue=ks_p,
                model_versions=sorted({f"{r.model_name}/{r.model_version}" for r in records}),
                drift=bool(reasons),
                reasons=reasons,
            )
        )
    expected_rejections = None
    if reference.mushroom_scores and reference.detector_threshold is not None:
        scores = np.asarray(reference.mushroom_scores, dtype=np.float64)
        expected_rejections = float(np.mean(scores < reference.detector_threshold))
    return DriftReport(
        generated_at=now or datetime.now(UTC),
        window=window,
        model_name=reference.model_name,
        model_version=reference.model_version,
        dataset_version=reference.dataset_version,
        reference_source=reference.source,
        reference=summarise(reference.confidences),
        expected_not_a_mushroom_share=expected_rejections,
        thresholds=thresholds,
        windows=windows,
        drift=any(w.drift for w in windows),
    )


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def render_markdown(report: DriftReport) -> str:
    """The report as a Markdown page."""
    ref = report.reference
    t = report.thresholds
    lines = [
        f"# Drift report: {report.model_name}/{report.model_version}",
        "",
        f"Generated {report.generated_at:%Y-%m-%d %H:%M} UTC, one row per {report.window}. "
        f"Overall: **{'DRIFT' if report.drift else 'no drift'}**.",
        "",
        f"Reference: {ref.count} test photos of dataset version {report.dataset_version} "
        f"({report.reference_source}); confidence mean {_fmt(ref.mean)}, "
        f"p10 {_fmt(ref.p10)}, median {_fmt(ref.p50)}.",
    ]
    if report.expected_not_a_mushroom_share is not None:
        lines.append(
            f"The detector rejects {report.expected_not_a_mushroom_share:.1%} of the reference "
            "mushroom photos (the not_a_mushroom share to expect on real mushrooms)."
        )
    lines += [
        "",
        f"Thresholds: PSI > {t.psi}, KS p < {t.ks_pvalue}, uncertain share > "
        f"{t.max_uncertain_share}, not_a_mushroom share > {t.max_not_a_mushroom_share}; "
        f"windows with fewer than {t.min_predictions} answers are never flagged.",
        "",
        "| window start | answers | uncertain | not a mushroom | confidence mean | median "
        "| PSI | KS D | KS p | drift |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for w in report.windows:
        flag = "; ".join(w.reasons) if w.drift else "no"
        lines.append(
            f"| {w.start:%Y-%m-%d %H:%M} | {w.predictions} | {w.uncertain_share:.1%} "
            f"| {w.not_a_mushroom_share:.1%} | {_fmt(w.confidence.mean)} "
            f"| {_fmt(w.confidence.p50)} | {_fmt(w.psi)} | {_fmt(w.ks_statistic)} "
            f"| {'-' if w.ks_pvalue is None else f'{w.ks_pvalue:.2g}'} | {flag} |"
        )
    if not report.windows:
        lines.append("| (no predictions logged) | 0 | | | | | | | | no |")
    return "\n".join(lines) + "\n"
