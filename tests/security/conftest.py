"""Fixtures of the security suite: a bare app behind a public https origin."""

from __future__ import annotations

import pytest

from gateway import create_app
from gateway.bootstrap import build
from gateway.config import Settings

PUBLIC = "https://gw.example.com"


@pytest.fixture
def https_app(database_url, monkeypatch):
    """An app (no doubles, no jobs) whose public origin is https; env is read when it is made."""
    made = []

    def factory(**env):
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        settings = Settings(
            database_url=database_url,
            public_base_url=PUBLIC,
            secret_key="test-secret",
            run_jobs=False,
            livekit_url="wss://acme-a1b2.livekit.cloud",
        )
        services = build(settings)
        made.append(services)
        return create_app(services=services)

    yield factory
    for services in made:
        services.stop()
        services.gw.store.engine.dispose()
