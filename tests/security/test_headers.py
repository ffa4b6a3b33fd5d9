"""Findings 10 and 12: forwarded headers only from configured proxies; security headers on every
response; a CSP naming only the configured LiveKit; 405 with Allow; an OpenAPI schema as strict as the API."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_response_carries_the_security_headers(https_app):
    client = https_app().test_client()

    for path in ("/healthz", "/api/me", "/openapi.json", "/console", "/no/such/page"):
        headers = client.get(path).headers
        assert headers["X-Content-Type-Options"] == "nosniff", path
        assert headers["X-Frame-Options"] == "DENY", path
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"], path
        assert headers["Strict-Transport-Security"].startswith("max-age="), path


def test_console_csp_allows_only_the_configured_livekit(https_app):
    csp = https_app().test_client().get("/console").headers["Content-Security-Policy"]
    connect = next(d for d in csp.split(";") if d.strip().startswith("connect-src")).split()[1:]

    assert sorted(connect) == sorted(["'self'", "wss://acme-a1b2.livekit.cloud", "https://acme-a1b2.livekit.cloud"])


def test_405_says_which_methods_are_allowed(https_app):
    reply = https_app().test_client().delete("/api/auth/login")

    assert reply.status_code == 405 and reply.headers["Allow"] == "OPTIONS, POST"
    assert reply.json["error"] == "method not allowed"


def test_openapi_refuses_the_empty_strings_the_api_refuses(https_app):
    paths = https_app().test_client().get("/openapi.json").json["paths"]
    login = paths["/api/auth/login"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    note = paths["/api/calls/{call_id}/notes"]["post"]["requestBody"]["content"]["application/json"]["schema"]

    assert login["properties"]["credential"]["minLength"] == 1
    assert note["properties"]["text"]["minLength"] == 1
    assert "429" in paths["/api/auth/login"]["post"]["responses"]


def test_forwarded_headers_from_an_unknown_peer_are_ignored(https_app):
    client = https_app(TRUSTED_PROXY_ADDRESSES="10.0.0.0/8").test_client()
    forged = {"X-Forwarded-Proto": "http", "X-Forwarded-For": "203.0.113.9"}

    from_anyone = client.get("/console", headers=forged, environ_base={"REMOTE_ADDR": "198.51.100.7"})
    from_router = client.get("/console", headers=forged, environ_base={"REMOTE_ADDR": "10.1.2.3"})

    assert from_anyone.status_code == 200  # its X-Forwarded-Proto was not believed: no redirect
    assert from_router.status_code == 301 and from_router.headers["Location"] == "https://gw.example.com/console"


def test_gunicorn_trusts_forwarded_headers_only_from_the_configured_proxies(monkeypatch):
    monkeypatch.delenv("TRUSTED_PROXY_ADDRESSES", raising=False)
    spec = importlib.util.spec_from_file_location("gunicorn_conf", ROOT / "gunicorn.conf.py")
    conf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conf)

    assert conf.forwarded_allow_ips == "127.0.0.1,::1"
