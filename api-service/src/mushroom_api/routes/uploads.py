"""Reading uploaded files: the one place that knows about multipart uploads."""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

import starlette.requests
from fastapi import HTTPException, UploadFile, status
from python_multipart.multipart import parse_options_header
from starlette.formparsers import MultiPartParser

_READ_CHUNK = 1 << 20


async def read_upload(upload: UploadFile, max_bytes: int) -> bytes:
    """Read an uploaded file in chunks, refusing more than `max_bytes` with 413."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await upload.read(_READ_CHUNK):
        size += len(chunk)
        if size > max_bytes:
            raise HTTPException(
                status.HTTP_413_CONTENT_TOO_LARGE,
                f"The photo is too large: the limit is {max_bytes / (1024 * 1024):.0f} MB.",
            )
        chunks.append(chunk)
    return b"".join(chunks)


# python-multipart drops `filename*` parameters, so they are found here.
_FILENAME_STAR = re.compile(rb";\s*filename\*\s*=\s*([^;\s]+)", re.IGNORECASE)


def _extended_filename(value: bytes) -> bytes:
    """The file name of an RFC 5987 `filename*=charset'lang'pct-encoded` value, as UTF-8."""
    charset, _, rest = value.partition(b"'")
    _, _, encoded = rest.partition(b"'")
    raw = unquote_to_bytes(encoded or value)
    try:
        name = raw.decode(charset.decode("ascii", "replace") or "utf-8")
    except (LookupError, UnicodeDecodeError):
        name = raw.decode("utf-8", "replace")
    return "".join(ch for ch in name if ch not in '"\\' and ch.isprintable()).encode()


class ExtendedFilenameMultiPartParser(MultiPartParser):
    """Starlette's multipart parser, also taking a part named only by `filename*=` as a file.

    Without it such an upload was a plain form field, and /predict said it had no file (422).
    """

    def on_headers_finished(self) -> None:
        disposition = self._current_part.content_disposition or b""
        _, options = parse_options_header(disposition)
        extended = _FILENAME_STAR.search(disposition)
        if b"filename" not in options and extended is not None:
            name = _extended_filename(extended.group(1))
            self._current_part.content_disposition = disposition + b'; filename="' + name + b'"'
        super().on_headers_finished()


def install_multipart_parser(spool_max_size: int) -> None:
    """Make Starlette's requests parse forms with `ExtendedFilenameMultiPartParser`.

    Uploads stay in memory up to `spool_max_size` instead of spilling to a small /tmp.
    """
    ExtendedFilenameMultiPartParser.spool_max_size = spool_max_size
    MultiPartParser.spool_max_size = spool_max_size
    # Request.form() builds its parser by this module-level name.
    setattr(starlette.requests, "MultiPartParser", ExtendedFilenameMultiPartParser)  # noqa: B010
