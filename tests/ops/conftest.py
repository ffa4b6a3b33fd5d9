"""Fixtures for the ops tests: loopback doubles with a phone number, and a bare app."""

from __future__ import annotations

import pytest

from gateway import create_app, ops
from gateway.bootstrap import build
from gateway.config import Settings
from gateway.sandbox.runtime import PHONE_NUMBER, Doubles

PUBLIC = "https://gw.example.com"


@pytest.fixture
def doubles():
    running = Doubles().start()
    running.twilio.add_number(PHONE_NUMBER)
    yield running
    running.stop()


@pytest.fixture
def provider_settings(doubles, database_url) -> Settings:
    """Settings pointing at the doubles as if they were real providers (not sandbox mode)."""
    base = Settings(database_url=database_url, public_base_url=PUBLIC, secret_key="test-secret", run_jobs=False)
    return doubles.settings(base).with_overrides(sandbox=False)


@pytest.fixture
def make_app(database_url):
    """An app without doubles; ``ops.init_app`` is called here until create_app does it."""
    made = []

    def factory(**overrides):
        settings = Settings(
            database_url=database_url, public_base_url=PUBLIC, secret_key="test-secret", run_jobs=False
        ).with_overrides(**overrides)
        services = build(settings)
        app = create_app(services=services)
        ops.init_app(app)
        made.append(services)
        return app

    yield factory
    for services in made:
        services.stop()
        services.gw.store.engine.dispose()


@pytest.fixture(autouse=True)
def _clean_ops_environment(monkeypatch):
    """The ops settings come from the environment: start every test from the defaults."""
    from gateway.ops.settings import OPS_VARIABLES

    for name, _required, _description in OPS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
