"""Reading uploaded files: the one place that knows about multipart uploads."""

from __future__ import annotations

from fastapi import HTTPException, UploadFile, status

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
