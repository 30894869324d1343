"""The last step: tell a running API to serve the new champion (`POST /admin/reload`)."""

from __future__ import annotations

import logging
import time

import httpx

from mushroom_pipeline.collect import PipelineError
from mushroom_pipeline.steps import StepOutcome

logger = logging.getLogger(__name__)


def served_model(client: httpx.Client) -> tuple[str, str] | None:
    """(name, version) the API serves now, or None when it has no model loaded."""
    response = client.get("/model")
    if response.status_code == 503:
        return None
    response.raise_for_status()
    body = response.json()
    return str(body["name"]), str(body["version"])


def reload_api(
    api_url: str, token: str, name: str, champion: str | None, timeout_s: float = 120.0
) -> StepOutcome:
    """Reload the API unless it already serves the champion.

    Args:
        api_url: the API's base URL, e.g. http://127.0.0.1:8000.
        token: the API's admin bearer token (API_ADMIN_TOKEN there).
        name: the registry name.
        champion: the champion version (None: nothing to serve, the step is skipped).
        timeout_s: timeout of the reload call.

    Returns:
        The step's outcome; `skipped` when the API already serves the champion.

    Raises:
        PipelineError: the API is unreachable, refuses the token, or serves something else after.
    """
    started = time.monotonic()
    if champion is None:
        logger.info("step reload    skipped: model %s has no champion", name)
        return StepOutcome(step="reload", key=None, status="skipped", outputs={"serving": None})
    wanted = (name, champion)
    try:
        with httpx.Client(base_url=api_url.rstrip("/"), timeout=timeout_s) as client:
            if served_model(client) == wanted:
                logger.info("step reload    skipped (already done: the API serves %s/%s)", *wanted)
                return StepOutcome(
                    step="reload",
                    key=None,
                    status="skipped",
                    outputs={"serving": f"{name}/{champion}", "api_url": api_url},
                )
            if not token:
                raise PipelineError(
                    "the API needs an admin token to reload: set PIPELINE_API_ADMIN_TOKEN "
                    "or pass --api-token"
                )
            logger.info("step reload    running: POST %s/admin/reload", api_url)
            response = client.post("/admin/reload", headers={"Authorization": f"Bearer {token}"})
            if response.status_code in (401, 403):
                raise PipelineError(f"the API refused the admin token ({response.status_code})")
            response.raise_for_status()
            body = response.json()
    except httpx.HTTPError as exc:
        raise PipelineError(f"could not reload the API at {api_url}: {exc}") from exc
    serving = (str(body.get("name")), str(body.get("version")))
    if serving != wanted:
        raise PipelineError(
            f"the API reloaded but serves {serving[0]}/{serving[1]}, not {name}/{champion}: "
            "is its API_MODEL_NAME the pipeline's model name?"
        )
    duration = time.monotonic() - started
    logger.info("step reload    done in %.1f s: the API serves %s/%s", duration, *serving)
    return StepOutcome(
        step="reload",
        key=None,
        status="done",
        outputs={"serving": f"{name}/{champion}", "api_url": api_url},
        duration_s=duration,
    )
