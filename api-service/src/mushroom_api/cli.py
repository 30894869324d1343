"""`mushroom-api`: serve the API (and the built frontend) with uvicorn."""

from __future__ import annotations

import logging
from typing import Annotated

import typer
import uvicorn
from pydantic import ValidationError

from mushroom_api.main import create_app
from mushroom_api.server import server_config

logger = logging.getLogger("mushroom_api")
app = typer.Typer(add_completion=False, help="Serve the Mushroom ID API.")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port to listen on")] = 8000,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error")] = "info",
) -> None:
    """Serve the API; settings come from API_* variables and MUSHROOM_STORAGE_URI."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        api = create_app()
    except ValidationError as exc:
        # The messages only: pydantic's full text repeats the input, secrets included.
        logger.error("invalid settings: %s", "; ".join(e["msg"] for e in exc.errors()))
        raise typer.Exit(code=2) from exc
    uvicorn.Server(server_config(api, api.state.settings, host, port, log_level)).run()


if __name__ == "__main__":
    app()
