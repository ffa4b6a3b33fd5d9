"""Operations: provisioning, doctor, readiness, metrics, structured logs, proxy handling.

``init_app(app)`` wires it all into an app made by ``create_app``; calling it twice is harmless.
"""

from __future__ import annotations

import ipaddress
import os

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from gateway.ops.settings import OpsSettings


def init_app(app: Flask, ops: OpsSettings | None = None) -> None:
    """Blueprint (/readyz, /metrics, https redirect, webhook timing), the provision and doctor
    commands, JSON logs, Prometheus, and ProxyFix for TRUSTED_PROXY_HOPS proxies."""
    if "ops" in app.extensions:
        return
    from gateway.ops import commands, observability, smoke_web, web

    ops = ops or OpsSettings.from_env(os.environ)
    app.extensions["ops"] = ops
    observability.install_logging(ops.log_level)
    if ops.prometheus_multiproc_dir:
        os.makedirs(ops.prometheus_multiproc_dir, exist_ok=True)
    app.register_blueprint(web.bp)
    app.register_blueprint(smoke_web.bp)
    commands.register(app)
    hops = ops.trusted_proxy_hops
    if hops:
        # Flask's documented way to wrap the app in WSGI middleware; mypy sees wsgi_app only as a method.
        app.wsgi_app = TrustedProxyFix(app.wsgi_app, hops, ops.trusted_proxy_addresses)  # type: ignore[method-assign]


class TrustedProxyFix(ProxyFix):
    """ProxyFix for requests whose peer is one of the configured proxies; from any other peer the
    X-Forwarded-* headers are dropped unread (anyone can send them: they would pick the address
    that logs and throttles see, and the scheme)."""

    FORWARDED = (
        "HTTP_X_FORWARDED_FOR",
        "HTTP_X_FORWARDED_PROTO",
        "HTTP_X_FORWARDED_HOST",
        "HTTP_X_FORWARDED_PORT",
        "HTTP_X_FORWARDED_PREFIX",
        "HTTP_FORWARDED",
    )

    def __init__(self, app, hops: int, addresses: tuple[str, ...]):
        super().__init__(app, x_for=hops, x_proto=hops, x_host=hops)
        self.any = "*" in addresses
        self.networks = [ipaddress.ip_network(a, strict=False) for a in addresses if a != "*"]

    def trusted(self, peer: str | None) -> bool:
        if self.any:
            return True
        try:
            address = ipaddress.ip_address(peer or "")
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    def __call__(self, environ, start_response):
        if self.trusted(environ.get("REMOTE_ADDR")):
            return super().__call__(environ, start_response)
        for name in self.FORWARDED:
            environ.pop(name, None)
        return self.app(environ, start_response)
