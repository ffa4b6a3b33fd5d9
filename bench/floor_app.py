"""The durable floor: the least any gateway must do per call if it commits the call before answering.

``POST /twilio/voice``: the Twilio signature check (twilio's ``RequestValidator``, against
PUBLIC_BASE_URL + path, as the gateway does), ONE ``INSERT … ON CONFLICT (call_sid) DO NOTHING`` of
(CallSid, From, To) with raw psycopg (autocommit, a prepared statement, a connection of its own per request
in flight), and a ``<Dial answerOnBridge><Sip>`` answer built with twilio's ``VoiceResponse``. No routing,
no jobs, no ORM. Connections are reused, at most FLOOR_DB_CONNECTIONS (16) per worker: one per gthread
thread (45 seen) next to the gateway's pool filled PostgreSQL's max_connections=100.

Served by the very same gunicorn config as the gateway and the bare app (``gunicorn --config
gunicorn.conf.py "bench.floor_app:create_app()"``), so floor/bare is what durability itself costs on this
machine and gateway/floor is how far the gateway is from what a durable design can do here.
Env: DATABASE_URL, PUBLIC_BASE_URL, TWILIO_AUTH_TOKEN (the gateway's own values).
"""

from __future__ import annotations

import os
import queue
import threading

import psycopg
from flask import Flask, Response, request
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import Dial, VoiceResponse

from bench.bare_app import _NoBackgroundWork

TABLE = "floor_calls"
INSERT = f"INSERT INTO {TABLE} (call_sid, from_number, to_number) VALUES (%s, %s, %s) ON CONFLICT (call_sid) DO NOTHING"
SIP_HOST = "sip.bench.invalid"


def _dsn(url: str) -> str:
    """psycopg takes a libpq URL: no SQLAlchemy driver suffix."""
    for prefix in ("postgresql+psycopg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


def create_app() -> Flask:
    dsn = _dsn(os.environ["DATABASE_URL"])
    origin = os.environ["PUBLIC_BASE_URL"].rstrip("/")
    validator = RequestValidator(os.environ["TWILIO_AUTH_TOKEN"])
    with psycopg.connect(dsn) as conn:  # one transaction: both workers run this at once
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (TABLE,))
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {TABLE} (call_sid text PRIMARY KEY, from_number text, to_number text)"
        )
    idle: queue.LifoQueue = queue.LifoQueue()
    may_open = threading.BoundedSemaphore(int(os.environ.get("FLOOR_DB_CONNECTIONS", "16")))

    def checkout() -> psycopg.Connection:
        try:
            return idle.get_nowait()
        except queue.Empty:
            pass
        if may_open.acquire(blocking=False):
            try:
                return psycopg.connect(dsn, autocommit=True)
            except Exception:
                may_open.release()
                raise
        return idle.get(timeout=10)

    app = Flask(__name__)
    app.extensions["gateway"] = _NoBackgroundWork()

    @app.post("/twilio/voice")
    def voice():
        if not validator.validate(origin + request.path, request.form, request.headers.get("X-Twilio-Signature", "")):
            return Response("invalid Twilio signature\n", status=403, mimetype="text/plain")
        sid = request.form.get("CallSid", "")
        conn = checkout()
        try:
            conn.execute(INSERT, (sid, request.form.get("From", ""), request.form.get("To", "")), prepare=True)
        except Exception:
            conn.close()
            may_open.release()
            raise
        idle.put(conn)
        dial = Dial(answer_on_bridge=True, timeout=130)
        dial.sip(f"sip:call_{sid}@{SIP_HOST};transport=tcp", username="gateway", password="x")
        return Response(str(VoiceResponse().append(dial)), mimetype="text/xml")

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    return app
