"""The baseline: a bare Flask app answering ``POST /twilio/voice`` with a fixed TwiML document.

Served by the very same gunicorn config as the gateway (``gunicorn --config gunicorn.conf.py
"bench.bare_app:create_app()"``), so the ratio gateway/bare isolates the gateway's own work:
signature check, database transaction, routing and TwiML building.
"""

from __future__ import annotations

from flask import Flask, Response

TWIML = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Response><Dial answerOnBridge="true" timeout="130"><Sip username="gateway" password="x">'
    "sip:call_CA0@sip.bench.invalid;transport=tcp</Sip></Dial></Response>"
)


class _NoBackgroundWork:
    """gunicorn.conf.py starts and stops ``app.extensions["gateway"]`` in each worker."""

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


def create_app() -> Flask:
    app = Flask(__name__)
    app.extensions["gateway"] = _NoBackgroundWork()

    @app.post("/twilio/voice")
    def voice():
        return Response(TWIML, mimetype="text/xml")

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    return app
