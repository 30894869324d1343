"""iNaturalist collection against a local fake API server over real HTTP."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any

import pytest

from mushroom_collector.config import Settings
from mushroom_collector.images import sha256_hex
from mushroom_collector.inat import (
    InatClient,
    InatCollector,
    InatError,
    RateLimiter,
    load_state,
    retry_after_seconds,
    sized_photo_url,
)
from mushroom_collector.records import load_records
from mushroom_common.catalog import load_catalog
from mushroom_common.storage import LocalStorage

if TYPE_CHECKING:
    from conftest import FakeInat, LoggedRequest

MakeJpeg = Callable[..., bytes]
EDULIS = 48701


def _settings(fake: FakeInat, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "inat_base_url": fake.base_url,
        "rate_window_s": 0.01,
        "backoff_base_s": 0.01,
        "http_timeout_s": 5.0,
    }
    return Settings(**(values | overrides))


def _collect(storage: LocalStorage, settings: Settings, species: str, max_photos: int = 500) -> Any:
    with InatClient(settings) as client:
        collector = InatCollector(storage, load_catalog(), client, settings)
        return collector.collect(species, max_photos, quiet=True)


def _populate(fake: FakeInat, make_jpeg: MakeJpeg, observations: int) -> None:
    for obs in range(1, observations + 1):
        fake.add_observation(obs * 10, EDULIS, [(obs * 100, "cc-by", make_jpeg(obs))])


def _max_in_window(arrivals: list[float], window: float) -> int:
    arrivals = sorted(arrivals)
    best = 0
    for i, start in enumerate(arrivals):
        best = max(best, sum(1 for t in arrivals[i:] if t < start + window))
    return best


def test_pages_with_id_above_filters_licences_and_skips_bad_photos(
    fake_inat: FakeInat, storage: LocalStorage, make_jpeg: MakeJpeg
) -> None:
    _populate(fake_inat, make_jpeg, 22)
    # Observation 230: one allowed photo and one the licence filter must refuse.
    fake_inat.add_observation(
        230, EDULIS, [(2301, "cc0", make_jpeg(23)), (2302, "cc-by-nd", make_jpeg(99))]
    )
    # Observation 240: no photo with an allowed licence; the API leaves it out.
    fake_inat.add_observation(240, EDULIS, [(2401, None, make_jpeg(24))])
    fake_inat.add_observation(250, EDULIS, [(2501, "cc-by-nc", None)])  # photo 404s
    fake_inat.add_observation(260, EDULIS, [(2601, "cc-by", b"\xff\xd8\xff\xe0 not really a jpeg")])
    fake_inat.add_observation(270, 999, [(2701, "cc-by", make_jpeg(27))])  # another taxon

    summary = _collect(storage, _settings(fake_inat), "boletus_edulis")

    assert summary.new == 23
    assert dict(summary.skipped) == {"license": 1, "missing": 1, "corrupt": 1}
    pages = fake_inat.requests_to("/v1/observations")
    assert [p.params["id_above"] for p in pages] == ["0", "100", "200"]
    for page in pages:
        assert page.params["quality_grade"] == "research"
        assert page.params["photos"] == "true"
        assert page.params["photo_license"] == "cc0,cc-by,cc-by-nc"
        assert page.params["per_page"] == "200"
        assert (page.params["order_by"], page.params["order"]) == ("id", "asc")
        assert page.params["taxon_id"] == str(EDULIS)
    taxa = fake_inat.requests_to("/v1/taxa")
    assert taxa[0].params == {"q": "Boletus edulis", "rank": "species"}
    assert all("mushroom-id" in r.headers["User-Agent"] for r in fake_inat.requests)
    photo_paths = {r.path for r in fake_inat.requests_to("/photos/")}
    assert "/photos/2302/medium.jpg" not in photo_paths  # never downloaded
    assert all(path.endswith("/medium.jpg") for path in photo_paths)

    records = load_records(storage, "inaturalist")
    assert len(records) == 23
    assert {r.license for r in records} <= {"cc0", "cc-by", "cc-by-nc"}
    by_id = {r.record_id: r for r in records}
    first = by_id["inat-100"]
    assert first.observation_url == "https://www.inaturalist.org/observations/10"
    assert first.observer == "observer2"
    assert first.attribution == "(c) observer2, some rights reserved (CC-BY)"
    assert first.source_url == fake_inat.photo_url(100, "medium")
    assert sha256_hex(storage.read_bytes(first.image_key)) == first.content_hash
    assert load_state(storage, "boletus_edulis").id_above == 260

    # Rerun: nothing new is downloaded; only one page asks for observations above 260.
    before = len(fake_inat.requests_to("/photos/"))
    again = _collect(storage, _settings(fake_inat), "boletus_edulis")
    assert again.new == 0
    assert again.collected == 23
    assert len(fake_inat.requests_to("/photos/")) == before
    assert fake_inat.requests_to("/v1/observations")[-1].params["id_above"] == "260"


def test_max_per_species_stops_and_a_larger_max_resumes(
    fake_inat: FakeInat, storage: LocalStorage, make_jpeg: MakeJpeg
) -> None:
    _populate(fake_inat, make_jpeg, 15)
    assert _collect(storage, _settings(fake_inat), "boletus_edulis", max_photos=4).new == 4
    assert load_state(storage, "boletus_edulis").id_above == 40
    resumed = _collect(storage, _settings(fake_inat), "boletus_edulis", max_photos=12)
    assert (resumed.new, resumed.collected) == (8, 12)
    downloads = [r.path for r in fake_inat.requests_to("/photos/")]
    assert len(downloads) == len(set(downloads)) == 12


def test_429_with_retry_after_and_5xx_are_retried(
    fake_inat: FakeInat, storage: LocalStorage, make_jpeg: MakeJpeg
) -> None:
    _populate(fake_inat, make_jpeg, 3)
    fake_inat.fail_next("/v1/observations", (429, {"Retry-After": "1"}))
    fake_inat.fail_next("/photos/200/", (503, {}), (502, {}))

    summary = _collect(storage, _settings(fake_inat), "boletus_edulis")

    assert summary.new == 3
    pages = fake_inat.requests_to("/v1/observations")
    assert pages[1].at - pages[0].at >= 1.0  # waited as Retry-After said
    assert len(fake_inat.requests_to("/photos/200/")) == 3


def test_retries_run_out_with_a_clear_error(fake_inat: FakeInat, storage: LocalStorage) -> None:
    fake_inat.fail_next("/v1/taxa", (500, {}), (500, {}))
    with pytest.raises(InatError, match="answered 500 2 times"):
        _collect(storage, _settings(fake_inat, max_retries=1), "boletus_edulis")


def test_unknown_taxon_is_an_error(fake_inat: FakeInat, storage: LocalStorage) -> None:
    with pytest.raises(InatError, match="no species named 'Amanita muscaria'"):
        _collect(storage, _settings(fake_inat), "amanita_muscaria")


def test_requests_in_any_window_never_exceed_the_setting(
    fake_inat: FakeInat, storage: LocalStorage, make_jpeg: MakeJpeg
) -> None:
    _populate(fake_inat, make_jpeg, 9)
    settings = _settings(fake_inat, requests_per_minute=4, rate_window_s=0.5)
    summary = _collect(storage, settings, "boletus_edulis")
    assert summary.new == 9
    arrivals: list[LoggedRequest] = fake_inat.requests
    assert len(arrivals) == 11  # taxa, one page, 9 photos
    assert _max_in_window([r.at for r in arrivals], 0.5) == 4


def test_rate_limiter_with_a_fake_clock() -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        assert seconds > 0
        now[0] += seconds

    limiter = RateLimiter(60, 60.0, clock=lambda: now[0], sleep=sleep)
    starts = []
    for _ in range(300):
        limiter.acquire()
        starts.append(now[0])
        now[0] += 0.25  # each request takes a quarter second
        limiter.release()
    assert _max_in_window(starts, 60.0) == 60
    # Never slower than needed: 300 requests at 60 a minute take just over 4 minutes.
    assert starts[-1] < 4 * 60 * 1.02 + 15


def test_retry_after_and_photo_url_helpers() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None
    url = "https://inaturalist-open-data.s3.amazonaws.com/photos/123/square.jpeg?1690000000"
    assert sized_photo_url(url, "medium") == (
        "https://inaturalist-open-data.s3.amazonaws.com/photos/123/medium.jpeg?1690000000"
    )
    assert (
        sized_photo_url("https://x/photos/5/square.jpg", "large") == "https://x/photos/5/large.jpg"
    )


def test_settings_come_from_collector_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLLECTOR_LICENSES", " CC0, cc-by ")
    monkeypatch.setenv("COLLECTOR_REQUESTS_PER_MINUTE", "30")
    settings = Settings()
    assert settings.license_codes == ["cc0", "cc-by"]
    assert settings.requests_per_minute == 30
    assert settings.inat_base_url == "https://api.inaturalist.org/v1"
    assert "mushroom-id" in settings.user_agent
    monkeypatch.setenv("COLLECTOR_REQUESTS_PER_MINUTE", "120")
    with pytest.raises(ValueError, match="less than or equal to 60"):
        Settings()
