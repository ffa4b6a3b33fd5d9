"""What every response carries and every failure looks like, whatever blueprint served it.

- Security headers: ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY`` and a CSP
  ``frame-ancestors 'none'`` (no page of ours may be framed: clickjacking), ``Referrer-Policy``,
  and HSTS when the public origin is https. Pages that set their own CSP (the console) keep it.
- A 405 says which methods the path takes (``Allow``), as HTTP requires.
- An unexpected error is a JSON 500, never the framework's HTML page (TwiML endpoints answer
  their apology before it comes to that).
"""

from __future__ import annotations

import logging

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from gateway.web.throttle import Throttle

log = logging.getLogger(__name__)
HSTS_MAX_AGE_S = 31_536_000  # one year
# JSON and plain-text replies need no active content at all.
DEFAULT_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"


def install(app: Flask, *, public_origin: str) -> None:
    app.extensions["throttle"] = Throttle()
    https = public_origin.startswith("https://")

    @app.after_request
    def _headers(response):
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("Content-Security-Policy", DEFAULT_CSP)
        if https:
            headers.setdefault("Strict-Transport-Security", f"max-age={HSTS_MAX_AGE_S}; includeSubDomains")
        return response

    @app.errorhandler(405)
    def _not_allowed(exc: MethodNotAllowed):
        allowed = sorted(exc.valid_methods or [])
        return jsonify(error="method not allowed", allowed=allowed), 405, {"Allow": ", ".join(allowed)}

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        if isinstance(exc, HTTPException):
            return jsonify(error=exc.description or exc.name), exc.code
        log.exception("unexpected error on %s %s", request.method, request.path)
        return jsonify(error="internal error"), 500
