"""The agent console: the page, its assets and its event stream (the sandbox controls: web/sandbox.py).

``init_console(app)`` registers everything here (idempotent). The page itself is plain
ES modules under ``gateway/static/console/``; ``npm run build`` bundles them with
livekit-client into ``gateway/static/vendor/console/`` (used when present).

The event stream (``GET /api/events``) is Server-Sent Events fed from the store, not
from in-process signals: it polls the timeline (the event log) every half second, so
it works the same with several gunicorn workers or hosts. Each timeline entry is sent
with its id, so a reconnecting browser (``Last-Event-ID``, or ``?after=`` after a manual
reconnect) receives what it missed. Offers and presence are sent as snapshots whenever
they change, and once at the start of every connection.

CSRF: the session cookie is SameSite=Strict; in addition, every state-changing request
to ``/api/*`` or ``/console/*`` authenticated by that cookie must carry
``X-Requested-With: console`` (a header a cross-site form cannot set). Requests with
``Authorization: Bearer`` carry no ambient credential and are exempt.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    g,
    jsonify,
    render_template,
    request,
    send_from_directory,
    session,
    url_for,
)

from gateway.domain import access
from gateway.web import api
from gateway.web.throttle import STREAMS_PER_AGENT

log = logging.getLogger(__name__)

bp = Blueprint("console", __name__, template_folder="../templates")

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
SOURCE_ENTRY = "console/main.js"
BUNDLE_ENTRY = "vendor/console/main.js"
STYLESHEET = "console/console.css"
CSRF_HEADER, CSRF_VALUE = "X-Requested-With", "console"
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class EventStreams:
    """This process's open event streams, their timing, and the knobs tests turn.

    ``drop()`` closes every open stream at its next tick (the browser reconnects with
    Last-Event-ID); with ``refuse_for_s`` new streams are answered 503 for that long,
    as during a deploy or a router hiccup.
    """

    poll_s = 0.5  # timeline and offers: an incoming call shows within half a second
    presence_s = 1.5  # other agents' presence is less urgent (one query per stream per tick adds up)
    heartbeat_s = 15.0
    auth_check_s = 2.0
    max_age_s = 300.0  # streams end now and then; the browser resumes where it was
    retry_ms = 2000
    lookback = 100  # ids re-read on every poll: a transaction may commit a lower id late

    # Held streams per process. A held stream keeps a request thread for its whole life (gthread
    # workers), so they may take only part of a worker's threads: the rest stay free for Twilio's
    # and LiveKit's webhooks, however many consoles are open. gunicorn.conf.py sets it from the
    # thread count (threads minus the webhooks' reserve).
    max_open = 24
    per_agent = STREAMS_PER_AGENT  # one agent (one credential) cannot take the budget for itself
    brief_retry_ms = 4000  # a console over the budget is served brief streams and comes back after this

    def __init__(self):
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self.generation = 0
        self.refuse_until = 0.0
        self.open = 0
        self.by_agent: dict[str, int] = {}
        self.closed = False

    def reserve(self, agent_id: str) -> str:
        """'held' (a slot is taken: release it), 'brief' (over budget), or 'refused' (agent's cap)."""
        with self._lock:
            if self.by_agent.get(agent_id, 0) >= self.per_agent:
                return "refused"
            if self.open >= self.max_open:
                return "brief"
            self.open += 1
            self.by_agent[agent_id] = self.by_agent.get(agent_id, 0) + 1
            return "held"

    def release(self, agent_id: str) -> None:
        with self._lock:
            self.open -= 1
            left = self.by_agent.get(agent_id, 1) - 1
            if left > 0:
                self.by_agent[agent_id] = left
            else:
                self.by_agent.pop(agent_id, None)

    def drop(self, refuse_for_s: float = 0.0) -> None:
        with self._lock:
            self.generation += 1
            self.refuse_until = time.monotonic() + refuse_for_s
            self._wake.notify_all()

    def shutdown(self) -> None:
        """End every stream for good (tests' teardown, worker exit)."""
        with self._lock:
            self.closed = True
            self.generation += 1
            self._wake.notify_all()

    def refusing(self) -> bool:
        return self.closed or time.monotonic() < self.refuse_until

    def sleep(self, seconds: float, generation: int) -> bool:
        """Wait up to ``seconds``; False if the stream must end (dropped or shut down)."""
        with self._lock:
            if self.generation == generation:
                self._wake.wait(seconds)
            return self.generation == generation


def init_console(app: Flask) -> EventStreams:
    """Register the console on ``app`` once; later calls return the same EventStreams."""
    existing = app.extensions.get("console")
    if existing is not None:
        return existing
    streams = EventStreams()
    app.extensions["console"] = streams
    app.register_blueprint(bp)
    app.before_request(_csrf_guard)
    return streams


def svc():
    return current_app.extensions["gateway"]


def streams() -> EventStreams:
    return current_app.extensions["console"]


@bp.errorhandler(api.ApiError)
def _api_error(exc):
    return jsonify(error=str(exc)), exc.status, exc.headers


def _csrf_guard():
    if request.method not in STATE_CHANGING:
        return None
    if not request.path.startswith(("/api/", "/console/")):
        return None
    if request.headers.get("Authorization", "").startswith("Bearer "):
        return None
    if not session.get("sid"):
        return None  # no cookie session: nothing ambient for a forged request to use
    if request.headers.get(CSRF_HEADER) == CSRF_VALUE:
        return None
    return jsonify(error=f"missing {CSRF_HEADER}: {CSRF_VALUE} header on a cookie-authenticated request"), 403


def _current_agent() -> dict | None:
    """The signed-in agent by the API's own rules (Bearer or a still-valid cookie), or None."""
    try:
        api.agent_required(lambda: None)()
    except api.ApiError:
        return None
    return g.agent


def _asset_version(relative: str) -> str:
    try:
        return str(int((STATIC_DIR / relative).stat().st_mtime))
    except OSError:
        return "0"


def _livekit_origins(livekit_url: str) -> list[str]:
    """Where livekit-client may connect: the configured server only, in its WebSocket and HTTP forms
    (it validates over HTTP after a failed signal connection). Not every *.livekit.cloud host: a
    page that may talk to any LiveKit project can be made to send its media to someone else's."""
    parsed = urlparse(livekit_url)
    if not parsed.hostname:
        return []
    secure = parsed.scheme in ("https", "wss")
    netloc = parsed.netloc
    return [f"{'wss' if secure else 'ws'}://{netloc}", f"{'https' if secure else 'http'}://{netloc}"]


def bundle_built() -> bool:
    return (STATIC_DIR / BUNDLE_ENTRY).is_file()


# ------------------------------------------------------------------- page
@bp.get("/console")
def page():
    entry = BUNDLE_ENTRY if bundle_built() else SOURCE_ENTRY
    settings = svc().gw.settings
    agent = _current_agent()
    html = render_template(
        "console.html",
        agent=agent,
        sandbox=settings.sandbox,
        bundled=entry == BUNDLE_ENTRY,
        script_url=url_for("console.asset", filename=entry, v=_asset_version(entry)),
        style_url=url_for("console.asset", filename=STYLESHEET, v=_asset_version(STYLESHEET)),
    )
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"media-src 'self' blob: mediastream:; connect-src 'self' {' '.join(_livekit_origins(settings.livekit_url))}; "
        "worker-src 'self' blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


TRANSFER_ID = re.compile(r"^xfer_[0-9a-f]{16}$")


@bp.get("/t/<transfer_id>")
def transfer_link(transfer_id):
    """The short link in B's SMS: redirects to the transfer in the console.

    Access is checked as the console checks it: signed out, the console asks for the credential and
    then opens the transfer (whose API answers 403 to anyone not on the call); signed in as an agent
    who is not on the call, the link is not found, so it reveals nothing.
    """
    if not TRANSFER_ID.match(transfer_id):
        return Response("not found\n", status=404, mimetype="text/plain")
    agent = _current_agent()
    if agent is not None:
        transfer = svc().views.transfer(transfer_id)
        facts = svc().views.call_facts(transfer["call_id"]) if transfer else None
        if facts is None or not access.may(access.Actor.of(agent), access.Action.VIEW, facts):
            return Response("not found\n", status=404, mimetype="text/plain")
    response = Response(status=302)
    response.headers["Location"] = url_for("console.page", transfer=transfer_id)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


@bp.get("/console/assets/<path:filename>")
def asset(filename):
    if not filename.startswith(("console/", "vendor/console/")):
        raise api.ApiError(404, "not found")
    # Versioned URLs (?v=mtime) may be cached for long; the page itself is never cached.
    max_age = 86400 if request.args.get("v") else 0
    return send_from_directory(STATIC_DIR, filename, max_age=max_age)


@bp.get("/console/config")
def config():
    settings = svc().gw.settings
    return jsonify(
        agent=_current_agent(),
        livekit_url=svc().livekit_client_url,
        media="sandbox" if settings.sandbox else "livekit",
        sandbox=settings.sandbox,
        ring_timeout_s=settings.ring_timeout_s,
        bundled=bundle_built(),
    )


# ---------------------------------------------------------- event stream
def _sse(event: str, data, event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def _presence(services) -> list[dict]:
    return [
        {k: a[k] for k in ("id", "name", "status", "browser")}
        | {"phone": bool(a["phone"]), "not_responding": a["not_responding"] is not None}
        for a in services.agents.list()
    ]


def _offers_key(offers: list[dict]) -> str:
    """Offers without their ticking wait time: a change worth sending."""
    return json.dumps([{k: v for k, v in o.items() if k != "waiting_s"} for o in offers], sort_keys=True)


def _resume_point(services) -> tuple[int, bool]:
    raw = request.headers.get("Last-Event-ID") or request.args.get("after") or ""
    if raw.strip().isdigit():
        return int(raw.strip()), True
    return services.views.last_event_id(), False


@bp.get("/api/events")
@api.agent_required
def events():
    hub = streams()
    if hub.refusing():
        return jsonify(error="the event stream is restarting; retry shortly"), 503, {"Retry-After": "1"}
    services = svc()
    agent_id = g.agent["id"]
    fingerprint = services.agents.fingerprint(agent_id)
    # A cookie stream ends when its session does (sign-out, reset, removal); a Bearer stream when
    # the credential changes.
    sid = None if api.bearer() else session.get("sid")

    def still_signed_in() -> bool:
        if sid is not None:
            return services.agents.session_agent(sid) is not None
        return services.agents.fingerprint(agent_id) == fingerprint

    after, resumed = _resume_point(services)
    generation = hub.generation
    mode = hub.reserve(agent_id)
    if mode == "refused":
        return (
            jsonify(error=f"too many open event streams for this agent (max {hub.per_agent} per worker)"),
            429,
            {"Retry-After": "5"},
        )
    brief = mode == "brief"

    def generate() -> Iterator[str]:
        nonlocal after
        floor, seen = after, set()
        offers_key = presence_key = None
        started = last_write = last_auth = time.monotonic()
        last_presence = 0.0
        if brief:
            # Over the budget: what is new now, then the stream ends and the browser's EventSource
            # comes back after `retry` (with Last-Event-ID): polling, holding no thread meanwhile.
            retry = hub.brief_retry_ms + secrets.randbelow(hub.brief_retry_ms // 2 + 1)
            yield f"retry: {retry}\n\n"
        else:
            yield f"retry: {hub.retry_ms}\n\n"
        # With an id, so even a browser that has had no timeline entry yet resumes from here.
        yield _sse("ready", {"agent": agent_id, "last_id": after, "resumed": resumed}, after)
        while True:
            now = time.monotonic()
            if now - last_auth >= hub.auth_check_s:
                last_auth = now
                if not still_signed_in():
                    reason = "your session ended" if sid is not None else "your credential changed"
                    yield _sse("signed_out", {"reason": f"{reason}; sign in again"})
                    return
            chunks = []
            for entry in services.views.events_for_agent(agent_id, max(floor, after - hub.lookback)):
                if entry["id"] in seen:
                    continue
                seen.add(entry["id"])
                after = max(after, entry["id"])
                chunks.append(_sse("timeline", entry, entry["id"]))
            if len(seen) > 4 * hub.lookback:
                seen = {i for i in seen if i > after - hub.lookback}
            offers = services.views.offers(agent_id)
            key = _offers_key(offers)
            if key != offers_key:
                offers_key = key
                chunks.append(_sse("offers", {"offers": offers}))
            if now - last_presence >= hub.presence_s:
                last_presence = now
                agents = _presence(services)
                key = json.dumps(agents, sort_keys=True)
                if key != presence_key:
                    presence_key = key
                    chunks.append(_sse("presence", {"agents": agents}))
            if not chunks and now - last_write >= hub.heartbeat_s:
                chunks.append(": heartbeat\n\n")
            if chunks:
                last_write = now
                yield "".join(chunks)
            if brief:
                yield _sse("brief", {"retry_ms": retry})
                return
            if now - started >= hub.max_age_s:
                return
            if not hub.sleep(hub.poll_s, generation):
                return

    response = Response(
        generate(),
        mimetype="text/event-stream",
        headers={
            "Cache-Control": "no-cache, no-transform",
            "X-Accel-Buffering": "no",
        },
    )
    if not brief:
        # On close, whether the stream ran or the client left before its first byte.
        released: list[bool] = []

        def release() -> None:
            if not released:
                released.append(True)
                hub.release(agent_id)

        response.call_on_close(release)
    return response


# An inline icon: the browser's automatic /favicon.ico request gets a real answer, not a 404.
FAVICON_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><circle cx="8" cy="8" r="7" fill="#1d5fd1"/>'
    '<path d="M5 4.5h2l1 2.5-1.2 1a6 6 0 0 0 2.2 2.2l1-1.2 2.5 1v2a1 1 0 0 1-1 1A8 8 0 0 1 4 5.5a1 1 0 0 1 1-1z" '
    'fill="#fff"/></svg>'
)


@bp.get("/favicon.ico")
def favicon():
    return Response(FAVICON_SVG, mimetype="image/svg+xml", headers={"Cache-Control": "public, max-age=86400"})
