"""The warm-transfer gateway: a Flask app that puts phone calls into LiveKit rooms.

``create_app()`` is the application factory (gunicorn: ``gateway:create_app()``).
"""

from __future__ import annotations

import logging

from dotenv import load_dotenv
from flask import Flask, jsonify, request

from gateway import config as config_module
from gateway.bootstrap import Services, for_environment

log = logging.getLogger("gateway")
# The twilio client logs every REST request and response at INFO: noise, and phone numbers.
logging.getLogger("twilio.http_client").setLevel(logging.WARNING)


def _has_nul(req) -> bool:
    body = req.get_data(cache=True)
    return b"\x00" in body or b"\\u0000" in body or b"%00" in body


def create_app(settings: config_module.Settings | None = None, *, services: Services | None = None) -> Flask:
    """Build the app. Background work (job runner, sandbox doubles) starts with the first
    request or ``services.start()``, so CLI commands and the gunicorn master start nothing."""
    if services is None:
        if settings is None:
            load_dotenv()
            settings = config_module.from_environment()
        services = for_environment(settings)
    settings = services.gw.settings

    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=settings.public_origin.startswith("https://"),
        MAX_CONTENT_LENGTH=256 * 1024,
    )
    app.extensions["gateway"] = services

    from gateway.web import hardening

    hardening.install(app, public_origin=settings.public_origin)
    _register_blueprints(app, services)
    _add_app_handlers(app, services)

    from gateway import cli, ops

    cli.register(app)
    ops.init_app(app)
    if settings.sandbox:
        log.warning("SANDBOX MODE: no Twilio or LiveKit credentials are set; every provider is a loopback double.")
    return app


def _register_blueprints(app: Flask, services: Services) -> None:
    from gateway.web import api, livekit_hooks, openapi, twilio_hooks, web_calls

    app.register_blueprint(twilio_hooks.bp)
    app.register_blueprint(web_calls.bp)
    app.register_blueprint(livekit_hooks.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(openapi.bp)

    from gateway.web.console import init_console

    init_console(app)
    if services.sandbox_controls is not None:  # sandbox mode (bootstrap decided): its routes exist only then
        from gateway.web import sandbox as sandbox_controls

        app.register_blueprint(sandbox_controls.bp)

    from gateway.web import board

    app.register_blueprint(board.bp)

    from gateway.web import integrations

    app.register_blueprint(integrations.bp)


def _add_app_handlers(app: Flask, services: Services) -> None:
    """The request guard (which also starts background work on the first request), /healthz and JSON errors."""
    sandbox = services.gw.settings.sandbox

    @app.before_request
    def _guard_and_start():
        # Refuse before any handler runs: Werkzeug only enforces MAX_CONTENT_LENGTH when a
        # body is read, and NUL characters cannot be stored (PostgreSQL refuses them).
        if request.content_length is not None and request.content_length > app.config["MAX_CONTENT_LENGTH"]:
            return jsonify(error="request body too large"), 413
        if "\x00" in request.path or b"%00" in request.query_string or _has_nul(request):
            return jsonify(error="NUL characters are not allowed"), 400
        services.start()

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok", sandbox=sandbox)

    @app.errorhandler(413)
    def too_large(_exc):
        return jsonify(error="request body too large"), 413

    @app.errorhandler(404)
    def not_found(_exc):
        return jsonify(error="not found"), 404
