"""The public URLs of the destinations the services name (``services.ports.Dest``).

Built by Flask's routing from the Twilio blueprint's endpoint names (what ``url_for`` does),
on a routing table of their own: the services build URLs in job threads and CLI commands,
outside any request, and always for PUBLIC_BASE_URL (what Twilio calls and signs).
"""

from __future__ import annotations

import functools
from typing import Any

from flask import Flask
from werkzeug.routing import MapAdapter

from gateway.services.ports import Dest
from gateway.web import twilio_hooks


@functools.cache
def _routes() -> MapAdapter:
    routes = Flask(__name__)  # only a routing table: no configuration, never serves
    routes.register_blueprint(twilio_hooks.bp)
    return routes.url_map.bind("gateway.invalid")


class PublicUrls:
    """``Urls`` (services/ports.py): a destination and its query -> an absolute public URL."""

    def __init__(self, origin: str):
        self._origin = origin.rstrip("/")
        self._dest_of = {endpoint: dest for dest, endpoint in twilio_hooks.ENDPOINTS.items()}

    @property
    def origin(self) -> str:
        return self._origin

    def __call__(self, dest: Dest, **query: Any) -> str:
        clean = {k: v for k, v in query.items() if v is not None}
        return self._origin + _routes().build(twilio_hooks.ENDPOINTS[dest], clean, method="POST")

    def destination(self, name: str) -> Dest:
        try:
            return Dest(name)
        except ValueError:
            pass
        endpoint, _ = _routes().match(name, method="POST")  # e.g. "/twilio/bridge" in an older job
        return self._dest_of[str(endpoint)]
