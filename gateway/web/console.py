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
from gateway.web.streams import EventStreams, Stream, Tick, jittered, presence_of, sse

log = logging.getLogger(__name__)

bp = Blueprint("console", __name__, template_folder="../templates")

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
SOURCE_ENTRY = "console/main.js"
BUNDLE_ENTRY = "vendor/console/main.js"
STYLESHEET = "console/console.css"
CSRF_HEADER, CSRF_VALUE = "X-Requested-With", "console"
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


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


def send_asset(filename: str, folder: str) -> Response:
    """A page's static file (the console's, the board's, the caller page's): only from its own
    folder and its bundle's. Versioned URLs (?v=mtime) may be cached for long; the page never is."""
    if not filename.startswith((f"{folder}/", f"vendor/{folder}/")):
        raise api.ApiError(404, "not found")
    max_age = 86400 if request.args.get("v") else 0
    return send_from_directory(STATIC_DIR, filename, max_age=max_age)


def page_policy(
    livekit_url: str, *, media: str = "", frame_ancestors: str = "'none'", form_action: str = "'self'"
) -> str:
    """The Content-Security-Policy of a page that runs livekit-client: our own scripts and styles,
    media from the microphone and the configured LiveKit only (``media``: one more origin to play)."""
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"media-src 'self' blob: mediastream:{' ' + media if media else ''}; "
        f"connect-src 'self' {' '.join(_livekit_origins(livekit_url))}; worker-src 'self' blob:; "
        f"object-src 'none'; base-uri 'none'; frame-ancestors {frame_ancestors}; form-action {form_action}"
    )


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
    response.headers["Content-Security-Policy"] = page_policy(settings.livekit_url)
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
    return send_asset(filename, "console")


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
_sse = sse  # the SSE framing, under its old name


def _presence(services) -> list[dict]:
    return presence_of(services)


def _offers_key(offers: list[dict]) -> str:
    """Offers without their ticking wait time: a change worth sending."""
    return json.dumps([{k: v for k, v in o.items() if k != "waiting_s"} for o in offers], sort_keys=True)


def _resume_point(services) -> tuple[int, bool]:
    raw = request.headers.get("Last-Event-ID") or request.args.get("after") or ""
    if raw.strip().isdigit():
        return int(raw.strip()), True
    return services.views.last_event_id(), False


class ConsoleStream(Stream):
    """An agent's console feed: timeline entries of the calls the agent may view (with ids, so a
    browser resumes), offers and presence as snapshots when they change, a heartbeat when idle."""

    def __init__(self, hub: EventStreams, services, agent_id: str, sid: str | None, after: int, resumed: bool):
        super().__init__(hub, agent_id)
        self.services = services
        # A cookie stream ends when its session does (sign-out, reset, removal); a Bearer stream when
        # the credential changes.
        self.sid = sid
        self.checks_credential = sid is None
        self.fingerprint = services.agents.fingerprint(agent_id) if sid is None else None
        self.after, self.floor, self.resumed = after, after, resumed
        self.seen: set[int] = set()
        self.offers_key: str | None = None
        self.presence_key: str | None = None
        self.retry_ms = hub.retry_ms

    def refresh(self) -> list[str]:
        """What is new for this agent: its timeline entries (by the access rule) and its offers."""
        chunks = []
        views = self.services.views
        for entry in views.events_for_agent(self.agent_id, max(self.floor, self.after - self.hub.lookback)):
            if entry["id"] in self.seen:
                continue
            self.seen.add(entry["id"])
            self.after = max(self.after, entry["id"])
            chunks.append(_sse("timeline", entry, entry["id"]))
        if len(self.seen) > 4 * self.hub.lookback:
            self.seen = {i for i in self.seen if i > self.after - self.hub.lookback}
        offers = views.offers(self.agent_id)
        key = _offers_key(offers)
        if key != self.offers_key:
            self.offers_key = key
            chunks.append(_sse("offers", {"offers": offers}))
        return chunks

    def presence_chunk(self, agents: list[dict] | None, key: str | None, tick: Tick | None = None) -> list[str]:
        if agents is None or key == self.presence_key:
            return []
        self.presence_key = key
        return [tick.presence_event() if tick is not None else _sse("presence", {"agents": agents})]

    def first(self) -> str:
        # With an id, so even a browser that has had no timeline entry yet resumes from here.
        ready = _sse("ready", {"agent": self.agent_id, "last_id": self.after, "resumed": self.resumed}, self.after)
        recent = self.hub.recent_presence()
        if recent is None:
            agents = _presence(self.services)
            recent = agents, json.dumps(agents, sort_keys=True)
        chunks = [f"retry: {self.retry_ms}\n\n", ready, *self.refresh()]
        chunks += self.presence_chunk(*recent)
        return "".join(chunks)

    def on_tick(self, tick: Tick) -> str:
        if tick.sessions is not None and tick.fingerprints is not None:
            if self.sid is not None and self.sid not in tick.sessions:
                self.finish()
                return _sse("signed_out", {"reason": "your session ended; sign in again"})
            if self.sid is None and tick.fingerprints.get(self.agent_id) != self.fingerprint:
                self.finish()
                return _sse("signed_out", {"reason": "your credential changed; sign in again"})
        chunks = []
        if self.dirty or self.agent_id in tick.concerned:
            self.dirty = False
            chunks += self.refresh()
        chunks += self.presence_chunk(tick.presence, tick.presence_key, tick)
        if not chunks and tick.now - self.last_write >= self.hub.heartbeat_s:
            chunks.append(": heartbeat\n\n")
        if tick.now - self.started >= self.hub.max_age_s:
            self.finish()
        return "".join(chunks)


@bp.get("/api/events")
@api.agent_required
def events():
    hub = streams()
    if hub.refusing():
        return jsonify(error="the event stream is restarting; retry shortly"), 503, {"Retry-After": "1"}
    services = svc()
    agent_id = g.agent["id"]
    sid = None if api.bearer() else session.get("sid")
    after, resumed = _resume_point(services)
    mode = hub.reserve(agent_id, detached=hub.detachable(request.environ))
    if mode == "refused":
        return (
            jsonify(error=f"too many open event streams for this agent (max {hub.per_agent} per worker)"),
            429,
            {"Retry-After": "5"},
        )
    stream = ConsoleStream(hub, services, agent_id, sid, after, resumed)
    headers = {"Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no"}
    if mode == "brief":
        # Over the budget: what is new now, then the stream ends and the browser's EventSource comes
        # back after `retry` (with Last-Event-ID): polling, holding no thread meanwhile.
        stream.retry_ms = jittered(hub.brief_retry_ms)
        body = stream.first() + _sse("brief", {"retry_ms": stream.retry_ms})
        return Response(body, mimetype="text/event-stream", headers=headers)
    try:
        return hub.respond(stream, mode, services, headers, on_close=lambda: hub.release(agent_id, mode))
    except Exception:
        hub.release(agent_id, mode)
        raise


# An inline icon: the browser's automatic /favicon.ico request gets a real answer, not a 404.
FAVICON_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><circle cx="8" cy="8" r="7" fill="#1d5fd1"/>'
    '<path d="M5 4.5h2l1 2.5-1.2 1a6 6 0 0 0 2.2 2.2l1-1.2 2.5 1v2a1 1 0 0 1-1 1A8 8 0 0 1 4 5.5a1 1 0 0 1 1-1z" '
    'fill="#fff"/></svg>'
)


@bp.get("/favicon.ico")
def favicon():
    return Response(FAVICON_SVG, mimetype="image/svg+xml", headers={"Cache-Control": "public, max-age=86400"})
