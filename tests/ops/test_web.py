"""/readyz, /metrics, the https redirect and ProxyFix, over HTTP."""

from __future__ import annotations

import time

import pytest
import requests
from werkzeug.middleware.proxy_fix import ProxyFix

from gateway import ops


@pytest.fixture
def live(world):
    ops.init_app(world.app)  # a no-op once create_app calls it
    return world


def test_readyz_is_ready_when_database_migrations_and_livekit_are(live):
    reply = requests.get(live.url + "/readyz", timeout=5)

    assert reply.status_code == 200
    body = reply.json()
    assert body["status"] == "ready"
    assert {name: check["ok"] for name, check in body["checks"].items()} == {
        "database": True,
        "migrations": True,
        "livekit": True,
        "provisioning": True,
    }


def test_readyz_is_503_when_livekit_fails_or_is_slow(live):
    live.livekit.inject_fault(method="ListRooms", status=503, code="unavailable")
    failing = requests.get(live.url + "/readyz", timeout=5)
    live.livekit.inject_latency(2.5, method="ListRooms")
    started = time.monotonic()
    slow = requests.get(live.url + "/readyz", timeout=5)

    assert failing.status_code == 503 and failing.json()["checks"]["livekit"] == {"ok": False, "detail": "unavailable"}
    assert slow.status_code == 503 and slow.json()["checks"]["livekit"]["detail"] == "no answer within 0.8 s"
    assert time.monotonic() - started < 2.5


def test_readyz_says_not_provisioned_until_provision_has_run(provider_settings):
    """A deployer who skipped provision learns it from /readyz, not from a caller hearing ringback."""
    from gateway import create_app
    from gateway.adapters.store import Store
    from gateway.bootstrap import build
    from gateway.ops.provision import provision
    from gateway.ops.settings import OpsSettings

    Store(provider_settings.database_url).migrate()
    services = build(provider_settings)
    try:
        client = create_app(services=services).test_client()
        before = client.get("/readyz")
        provision(provider_settings, out=lambda _line: None, ops=OpsSettings())
        after = client.get("/readyz")
    finally:
        services.stop()

    assert before.status_code == 503 and before.json["status"] == "not ready"
    detail = before.json["checks"]["provisioning"]["detail"]
    assert detail.startswith("not provisioned: ") and "flask --app gateway provision" in detail
    assert after.status_code == 200 and after.json["checks"]["provisioning"] == {"ok": True}


def test_metrics_expose_webhook_latency_rejections_and_provider_errors(live):
    requests.post(live.url + "/livekit/webhook", data="{}", headers={"Authorization": "forged"}, timeout=5)
    live.services.metrics.provider_error("twilio", "http_500")

    reply = requests.get(live.url + "/metrics", timeout=5)

    assert reply.status_code == 200 and reply.headers["Content-Type"].startswith("text/plain")
    text = reply.text
    assert 'gateway_webhook_duration_seconds_count{endpoint="/livekit/webhook",status="401"}' in text
    assert 'gateway_rejected_requests_total{reason="livekit_signature"}' in text
    assert 'gateway_provider_errors_total{kind="http_500",provider="twilio"}' in text
    assert "gateway_active_calls 0.0" in text and "gateway_store_up 1.0" in text


def test_metrics_token_is_enforced_when_set(make_app, monkeypatch):
    monkeypatch.setenv("METRICS_TOKEN", "scrape-me")
    client = make_app().test_client()

    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer scrape-me"}).status_code == 200


def test_plain_http_browser_pages_are_redirected_to_https(make_app):
    client = make_app().test_client()
    via_http = {"X-Forwarded-Proto": "http"}

    page = client.get("/console?tab=calls", headers=via_http)
    assert page.status_code == 301 and page.headers["Location"] == "https://gw.example.com/console?tab=calls"
    assert client.get("/console", headers={"X-Forwarded-Proto": "https"}).status_code != 301
    assert client.post("/console", headers=via_http).status_code != 301
    for path in ("/twilio/voice", "/livekit/webhook", "/healthz", "/readyz", "/metrics"):
        assert client.get(path, headers=via_http).status_code != 301, path


def test_no_redirect_when_the_public_url_is_http(make_app):
    client = make_app(public_base_url="http://127.0.0.1:5000").test_client()

    assert client.get("/console", headers={"X-Forwarded-Proto": "http"}).status_code != 301


def test_proxy_fix_trusts_the_configured_hops_and_init_app_is_idempotent(make_app, monkeypatch):
    monkeypatch.setenv("TRUSTED_PROXY_HOPS", "2")
    app = make_app()
    wrapped = app.wsgi_app

    ops.init_app(app)

    assert isinstance(wrapped, ProxyFix) and (wrapped.x_for, wrapped.x_proto, wrapped.x_host) == (2, 2, 2)
    assert app.wsgi_app is wrapped and not isinstance(wrapped.app, ProxyFix)
    assert {"provision", "doctor"} <= set(app.cli.commands)


def test_no_proxy_fix_with_zero_hops(make_app, monkeypatch):
    monkeypatch.setenv("TRUSTED_PROXY_HOPS", "0")

    assert not isinstance(make_app().wsgi_app, ProxyFix)


def test_readyz_reports_calls_that_reached_livekit_with_no_webhook_but_stays_ready(live):
    from .test_doctor import bridged_call

    bridged_call(live.store, "CA" + "3" * 32, seconds_ago=120)

    reply = requests.get(live.url + "/readyz", timeout=5)

    assert reply.status_code == 200 and reply.json()["status"] == "ready"
    warning = reply.json()["warnings"]["livekit_webhooks"]
    assert "no LiveKit webhook has arrived ever, though 1 call(s) were bridged" in warning
