"""The built frontend at `/`: its files, and index.html at the root.

The app has no client-side routes (its screens are state, not addresses), so every other
address answers 404: a mistyped API path (`/health`) or a missing file must not look like a page.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import FileResponse

# First path segments that belong to the API: never answered with the frontend.
API_SEGMENTS = frozenset(
    {
        "predict",
        "explain",
        "feedback",
        "species",
        "model",
        "admin",
        "healthz",
        "readyz",
        "metrics",
        "docs",
        "docs-assets",
        "redoc",
        "openapi.json",
    }
)
NO_CACHE_FILES = frozenset({"sw.js", "index.html", "manifest.webmanifest"})


def is_api_path(path: str) -> bool:
    """Whether an address (with or without its leading '/') belongs to the API."""
    return path.lstrip("/").split("/", 1)[0] in API_SEGMENTS


def _cache_control(relative: str) -> str:
    if relative in NO_CACHE_FILES:
        return "no-cache"
    if relative.startswith("assets/"):
        # Vite puts a content hash in every file name under assets/.
        return "public, max-age=31536000, immutable"
    return "public, max-age=3600"


def frontend_router(dist: Path) -> APIRouter:
    """Routes that serve `dist` (registered after the API routes, so they never shadow them)."""
    root = dist.resolve()
    index = root / "index.html"
    router = APIRouter(include_in_schema=False)

    @router.api_route("/{path:path}", methods=["GET", "HEAD"])
    def frontend(path: str, request: Request) -> FileResponse:
        """Serve a frontend file, or index.html at the root."""
        if not is_api_path(path):
            candidate = (root / path).resolve()
            if path and candidate.is_relative_to(root) and candidate.is_file():
                relative = candidate.relative_to(root).as_posix()
                headers = {"Cache-Control": _cache_control(relative)}
                packed = candidate.with_name(candidate.name + ".gz")
                if (
                    candidate.suffix == ".wasm"
                    and packed.is_file()
                    and "gzip" in request.headers.get("accept-encoding", "")
                ):
                    # The build stores the large WASM runtime gzipped too: a third of the bytes.
                    headers |= {"Content-Encoding": "gzip", "Vary": "Accept-Encoding"}
                    return FileResponse(packed, media_type="application/wasm", headers=headers)
                return FileResponse(candidate, headers=headers)
            if not path and index.is_file():
                return FileResponse(index, headers={"Cache-Control": "no-cache"})
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"There is nothing at /{path}.")

    return router
