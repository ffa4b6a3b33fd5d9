"""Operations: provisioning, doctor, readiness, metrics, structured logs, proxy handling.

``init_app(app)`` wires it all into an app made by ``create_app``; calling it twice is harmless.
"""

from __future__ import annotations

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
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
