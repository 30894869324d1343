"""`python -m mushroom_api.openapi_export <path>`: write the OpenAPI schema without serving."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer

from mushroom_api.config import Settings
from mushroom_api.main import create_app

logger = logging.getLogger(__name__)


def export(
    path: Annotated[Path, typer.Argument(help="where to write the OpenAPI JSON")],
) -> None:
    """Write the API's OpenAPI schema as JSON."""
    app = create_app(Settings(env="development", frontend_dir=None))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(app.openapi(), indent=2, sort_keys=False) + "\n", "utf-8")
    logging.basicConfig(level=logging.INFO)
    logger.info("wrote %s", path)


if __name__ == "__main__":
    typer.run(export)
