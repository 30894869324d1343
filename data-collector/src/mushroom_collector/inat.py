"""Research-grade, openly licensed photos from the iNaturalist API v1.

Follows the API's published guidance: at most `requests_per_minute` requests in any sliding
window (every request counts: API calls, photo downloads and retries), a User-Agent naming the
project, retries with exponential backoff on 429 and 5xx that honour `Retry-After`, and paging
by `id_above` (the API refuses deep offset paging).

Resumable: each species' state (taxon id, last fully processed observation id) is stored under
`collector-state/inaturalist/<species>.json`; a photo's record is written after its bytes and
a photo whose record exists is never downloaded again.
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from mushroom_collector.config import Settings
from mushroom_collector.images import InvalidImageError, normalise_photo
from mushroom_collector.progress import progress_bar
from mushroom_collector.records import load_records, now_utc, store_photo, write_record
from mushroom_common.catalog import Catalog
from mushroom_common.dataset import CollectedPhoto
from mushroom_common.storage import ObjectNotFoundError, Storage

logger = logging.getLogger(__name__)

STATE_PREFIX = "collector-state/inaturalist"
PER_PAGE = 200
OBSERVATION_URL = "https://www.inaturalist.org/observations/{id}"
_SQUARE = re.compile(r"/square\.(?P<ext>[A-Za-z]+)(?P<query>\?.*)?$")
_MISSING_PHOTO_STATUSES = frozenset({403, 404, 410})


class InatError(RuntimeError):
    """The API answered with an error we cannot retry away."""


class RateLimiter:
    """At most `max_requests` requests in any sliding window of `window_s` seconds.

    Each request is remembered from its start until `window_s` after it finished (`release`),
    so even a server that timestamps arrivals late never sees more than `max_requests` in any
    window; a new request waits until the oldest one leaves the window.
    """

    def __init__(
        self,
        max_requests: int,
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_requests < 1 or window_s <= 0:
            raise ValueError("a rate limit needs max_requests >= 1 and window_s > 0")
        self.max_requests = max_requests
        self.window_s = window_s
        self._clock = clock
        self._sleep = sleep
        self._starts: deque[float] = deque()

    def acquire(self) -> None:
        """Block until one more request fits in the window, and count it."""
        while True:
            now = self._clock()
            while self._starts and self._expiry(self._starts[0]) <= now:
                self._starts.popleft()
            if len(self._starts) < self.max_requests:
                self._starts.append(now)
                return
            self._sleep(self._expiry(self._starts[0]) - now)

    def release(self) -> None:
        """Mark the latest request finished: it counts from now on (one request at a time)."""
        if self._starts:
            self._starts[-1] = max(self._starts[-1], self._clock())

    def _expiry(self, start: float) -> float:
        return start + self.window_s


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Parse a Retry-After header (delta seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def sized_photo_url(url: str, size: str) -> str:
    """Swap the size in an iNaturalist photo URL (`.../square.jpg` -> `.../medium.jpg`)."""
    return _SQUARE.sub(lambda m: f"/{size}.{m['ext']}{m['query'] or ''}", url)


class InatClient:
    """A polite, retrying client of the iNaturalist API v1 (and its photo hosts)."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.base_url = settings.inat_base_url.rstrip("/")
        self._sleep = sleep
        self.limiter = RateLimiter(
            settings.requests_per_minute, settings.rate_window_s, clock=clock, sleep=sleep
        )
        self._http = httpx.Client(
            headers={"User-Agent": settings.user_agent, "Accept": "application/json"},
            timeout=settings.http_timeout_s,
            follow_redirects=True,
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> InatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _backoff(self, attempt: int) -> float:
        delay: float = self.settings.backoff_base_s * 2**attempt
        return min(delay, self.settings.backoff_max_s)

    def request(self, url: str, params: dict[str, Any] | None = None) -> httpx.Response:
        """GET with rate limiting and retries; returns the final response (any status < 500
        other than 429). Raises InatError when retries run out."""
        retries = self.settings.max_retries
        for attempt in range(retries + 1):
            self.limiter.acquire()
            try:
                response = self._http.get(url, params=params)
            except httpx.TransportError as exc:
                self.limiter.release()
                if attempt == retries:
                    raise InatError(f"GET {url} failed {retries + 1} times: {exc}") from exc
                delay = self._backoff(attempt)
                logger.warning("GET %s: %s; retrying in %.1f s", url, exc, delay)
                self._sleep(delay)
                continue
            self.limiter.release()
            if response.status_code == 429 or response.status_code >= 500:
                if attempt == retries:
                    raise InatError(
                        f"GET {url} answered {response.status_code} {retries + 1} times"
                    )
                retry_after = retry_after_seconds(response.headers.get("Retry-After"))
                delay = retry_after if retry_after is not None else self._backoff(attempt)
                logger.warning(
                    "GET %s answered %d; retrying in %.1f s", url, response.status_code, delay
                )
                self._sleep(delay)
                continue
            return response
        raise AssertionError("unreachable")

    def get_json(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        """GET an API path and return its JSON object; raise InatError on a 4xx."""
        response = self.request(f"{self.base_url}/{path.lstrip('/')}", params)
        if response.status_code != 200:
            raise InatError(f"GET {response.url} answered {response.status_code}")
        body = response.json()
        if not isinstance(body, dict):
            raise InatError(f"GET {response.url} did not answer a JSON object")
        return body

    def resolve_taxon(self, scientific_name: str) -> int:
        """The taxon id of a species name (exact name match preferred)."""
        body = self.get_json("taxa", {"q": scientific_name, "rank": "species"})
        results = [r for r in body.get("results", []) if r.get("rank") == "species"]
        wanted = scientific_name.casefold()
        for result in results:
            if str(result.get("name", "")).casefold() == wanted:
                return int(result["id"])
        for result in results:
            if str(result.get("matched_term", "")).casefold() == wanted:
                return int(result["id"])
        raise InatError(f"iNaturalist knows no species named {scientific_name!r}")

    def observations(
        self, taxon_id: int, id_above: int, licenses: list[str]
    ) -> tuple[list[Any], int]:
        """One page of research-grade observations with photos, and the page size the API used
        (it may cap the 200 asked for); a shorter page is the last one."""
        body = self.get_json(
            "observations",
            {
                "taxon_id": taxon_id,
                "quality_grade": "research",
                "photos": "true",
                "photo_license": ",".join(licenses),
                "per_page": PER_PAGE,
                "order_by": "id",
                "order": "asc",
                "id_above": id_above,
            },
        )
        results = body.get("results", [])
        if not isinstance(results, list):
            raise InatError("observations answer has no results list")
        return results, int(body.get("per_page") or PER_PAGE)

    def download(self, url: str) -> bytes | None:
        """A photo's bytes, or None when it is gone (403, 404, 410)."""
        response = self.request(url)
        if response.status_code in _MISSING_PHOTO_STATUSES:
            return None
        if response.status_code != 200:
            raise InatError(f"GET {url} answered {response.status_code}")
        return response.content


@dataclass
class SpeciesState:
    """Where collection of one species stands."""

    taxon_id: int | None = None
    id_above: int = 0
    exhausted: bool = False


@dataclass
class SpeciesSummary:
    """What collecting one species did."""

    species: str
    collected: int = 0
    new: int = 0
    skipped: Counter[str] = field(default_factory=Counter)


def _state_key(species: str) -> str:
    return f"{STATE_PREFIX}/{species}.json"


def load_state(storage: Storage, species: str) -> SpeciesState:
    """The stored state of a species (fresh when none)."""
    try:
        raw = storage.read_json(_state_key(species))
    except ObjectNotFoundError:
        return SpeciesState()
    return SpeciesState(
        taxon_id=raw.get("taxon_id"),
        id_above=int(raw.get("id_above", 0)),
        exhausted=bool(raw.get("exhausted", False)),
    )


def save_state(storage: Storage, species: str, state: SpeciesState) -> None:
    """Store a species' state atomically."""
    storage.write_json(
        _state_key(species),
        {"taxon_id": state.taxon_id, "id_above": state.id_above, "exhausted": state.exhausted},
    )


def _photos(observation: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for photo in observation.get("photos") or []:
        if isinstance(photo, dict) and photo.get("id") is not None and photo.get("url"):
            yield photo


class InatCollector:
    """Collects one or more species into storage."""

    def __init__(
        self, storage: Storage, catalog: Catalog, client: InatClient, settings: Settings
    ) -> None:
        self.storage = storage
        self.catalog = catalog
        self.client = client
        self.licenses = settings.license_codes
        self.photo_size = settings.photo_size
        records = load_records(storage, "inaturalist")
        self._done = {r.record_id for r in records}
        self._count: Counter[str] = Counter(r.species for r in records)

    def collect(self, species_id: str, max_photos: int, *, quiet: bool = False) -> SpeciesSummary:
        """Collect photos of one species until it has max_photos or iNaturalist has no more."""
        summary = SpeciesSummary(species_id, collected=self._count[species_id])
        if summary.collected >= max_photos:
            logger.info("%s: already %d photos", species_id, summary.collected)
            return summary
        state = load_state(self.storage, species_id)
        if state.taxon_id is None:
            state.taxon_id = self.client.resolve_taxon(self.catalog.get(species_id).scientific_name)
            save_state(self.storage, species_id, state)
        with progress_bar(f"iNaturalist {species_id}", max_photos, quiet=quiet) as advance:
            advance(summary.collected)
            while summary.collected < max_photos:
                page, page_size = self.client.observations(
                    state.taxon_id, state.id_above, self.licenses
                )
                for observation in sorted(page, key=lambda o: int(o["id"])):
                    finished = self._observation(
                        observation, species_id, summary, max_photos, advance
                    )
                    if not finished:
                        break
                    state.id_above = int(observation["id"])
                    save_state(self.storage, species_id, state)
                if len(page) < page_size:
                    state.exhausted = summary.collected < max_photos
                    save_state(self.storage, species_id, state)
                    break
        logger.info(
            "%s: %d photos (%d new); skipped %s",
            species_id,
            summary.collected,
            summary.new,
            dict(summary.skipped) or "none",
        )
        return summary

    def _observation(
        self,
        observation: dict[str, Any],
        species_id: str,
        summary: SpeciesSummary,
        max_photos: int,
        advance: Callable[[int], None],
    ) -> bool:
        """Collect an observation's photos; False when the species filled up part way."""
        for photo in _photos(observation):
            if summary.collected >= max_photos:
                return False
            license_code = str(photo.get("license_code") or "all-rights-reserved").lower()
            if license_code not in self.licenses:
                summary.skipped["license"] += 1
                continue
            record_id = f"inat-{photo['id']}"
            if record_id in self._done:
                continue
            url = sized_photo_url(str(photo["url"]), self.photo_size)
            data = self.client.download(url)
            if data is None:
                logger.warning("photo %s is gone (%s)", photo["id"], url)
                summary.skipped["missing"] += 1
                continue
            try:
                stored = normalise_photo(data)
            except InvalidImageError as exc:
                logger.warning("photo %s does not decode: %s", photo["id"], exc)
                summary.skipped["corrupt"] += 1
                continue
            key = store_photo(self.storage, stored)
            user = observation.get("user") or {}
            write_record(
                self.storage,
                CollectedPhoto(
                    record_id=record_id,
                    content_hash=stored.content_hash,
                    image_key=key,
                    species=species_id,
                    source="inaturalist",
                    source_url=url,
                    observation_id=str(observation["id"]),
                    observation_url=observation.get("uri")
                    or OBSERVATION_URL.format(id=observation["id"]),
                    license=license_code,
                    attribution=str(photo.get("attribution") or ""),
                    observer=user.get("login"),
                    observed_on=observation.get("observed_on"),
                    collected_at=now_utc(),
                ),
            )
            self._done.add(record_id)
            self._count[species_id] += 1
            summary.collected += 1
            summary.new += 1
            advance(1)
        return True
