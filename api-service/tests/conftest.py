"""Shared fixtures: a tiny real TFLite bundle, settings in tmp_path, test photos, a live server."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from mushroom_api.config import Settings
from mushroom_api.main import create_app
from mushroom_common.bundle import BundleMetadata

sys.path.insert(0, str(Path(__file__).parent))

from mushroom_api_testkit import (
    BundleFactory,
    PhotoFactory,
    build_tiny_tflite,
    make_bundle,
    photo_bytes,
    publish_champion,
    serve_in_thread,
)


@pytest.fixture(scope="session")
def tiny_tflite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model, built once per test session."""
    path = tmp_path_factory.mktemp("tiny-model") / "model.tflite"
    build_tiny_tflite(path)
    return path


@pytest.fixture
def bundle_factory(tiny_tflite: Path) -> BundleFactory:
    """make_bundle with the session's tiny model."""

    def factory(bundle_dir: Path, **kwargs: Any) -> BundleMetadata:
        return make_bundle(tiny_tflite, bundle_dir, **kwargs)

    return factory


@pytest.fixture
def publish() -> Callable[[Path, Path, BundleMetadata], None]:
    """publish_champion as a fixture."""
    return publish_champion


@pytest.fixture
def publish_new_champion(
    settings: Settings, tmp_path: Path, bundle_factory: BundleFactory
) -> Callable[[str], None]:
    """Build a tiny bundle of a version under tmp_path/build and make it the settings' champion."""

    def publish(version: str) -> None:
        bundle = tmp_path / "build" / version
        metadata = bundle_factory(bundle, version=version)
        publish_champion(Path(str(settings.storage_uri)), bundle, metadata)

    return publish


@pytest.fixture
def demo_dir(tmp_path: Path, bundle_factory: BundleFactory) -> Path:
    """A fallback (demo) bundle in tmp_path."""
    path = tmp_path / "models" / "demo"
    bundle_factory(path, name="demo", version="demo-1")
    return path


@pytest.fixture
def settings(tmp_path: Path, demo_dir: Path) -> Settings:
    """Settings that keep everything in tmp_path."""
    return Settings(
        env="development",
        storage_uri=str(tmp_path / "storage"),
        model_name="mushroom",
        fallback_bundle_dir=demo_dir,
        model_cache_dir=tmp_path / "cache",
        frontend_dir=None,
        admin_token="test-admin-token",
        rate_limit_per_minute=0,
        reload_poll_seconds=0,
    )


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    """The app with the tiny demo bundle as fallback."""
    return create_app(settings)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    """A test client with the lifespan run (model loaded)."""
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def photo() -> PhotoFactory:
    """photo_bytes as a fixture."""
    return photo_bytes


@pytest.fixture
def live_server(app: FastAPI) -> Iterator[str]:
    """A real uvicorn server on 127.0.0.1 in a thread; yields its base URL."""
    with serve_in_thread(app, start_timeout_s=30) as url:
        yield url
