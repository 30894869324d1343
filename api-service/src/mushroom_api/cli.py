"""`mushroom-api`: serve the API (and the built frontend) with uvicorn."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from pydantic import ValidationError

from mushroom_api.main import create_app
from mushroom_api.tls import self_signed_certificate

logger = logging.getLogger("mushroom_api")
DEFAULT_TLS_DIR = Path.home() / ".cache" / "mushroom-api" / "tls"
app = typer.Typer(add_completion=False, help="Serve the Mushroom ID API.")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port to listen on")] = 8000,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error")] = "info",
    tls_self_signed: Annotated[
        bool,
        typer.Option(
            help="serve HTTPS with a self-signed certificate (made once, then reused), so a "
            "phone on the same network gets the secure context offline identification needs"
        ),
    ] = False,
    tls_dir: Annotated[
        Path, typer.Option(help="where --tls-self-signed keeps cert.pem and key.pem")
    ] = DEFAULT_TLS_DIR,
) -> None:
    """Serve the API; settings come from API_* variables and MUSHROOM_STORAGE_URI."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        api = create_app()
    except ValidationError as exc:
        logger.error("invalid settings: %s", exc)
        raise typer.Exit(code=2) from exc
    tls = self_signed_certificate(tls_dir, host) if tls_self_signed else None
    if tls is not None:
        logger.info(
            "serving https://%s:%d/ with the certificate %s (trust it once on the phone)",
            host,
            port,
            tls.certfile,
        )
    uvicorn.run(
        api,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        ssl_certfile=str(tls.certfile) if tls else None,
        ssl_keyfile=str(tls.keyfile) if tls else None,
    )


if __name__ == "__main__":
    app()
