"""Request ids the service signs, so any replica can tell its own answers from invented ids.

An id is 64 hex characters: a random uuid4 (32), the second it was issued (8), and the first 96
bits of an HMAC-SHA256 of those 40 characters under `API_REQUEST_ID_SECRET` (24). Feedback on a
signed id is accepted by any replica at once, without waiting for the answering replica's
prediction log to reach the database; the feedback joins its prediction when that row lands.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from datetime import UTC, datetime

_BODY = 40
_SIGNATURE = 24
REQUEST_ID_LENGTH = _BODY + _SIGNATURE
_HEX = frozenset("0123456789abcdef")


def _signature(key: bytes, body: str) -> str:
    return hmac.new(key, body.encode("ascii"), hashlib.sha256).hexdigest()[:_SIGNATURE]


def new_request_id(key: bytes, now: float | None = None) -> str:
    """A fresh signed request id."""
    issued = int(now if now is not None else time.time())
    body = uuid.uuid4().hex + f"{issued:08x}"
    return body + _signature(key, body)


def signed_at(key: bytes, request_id: str) -> datetime | None:
    """When this service issued `request_id`, or None when it did not sign it."""
    if len(request_id) != REQUEST_ID_LENGTH or not set(request_id) <= _HEX:
        return None
    body, signature = request_id[:_BODY], request_id[_BODY:]
    if not hmac.compare_digest(signature, _signature(key, body)):
        return None
    return datetime.fromtimestamp(int(body[32:], 16), UTC)
