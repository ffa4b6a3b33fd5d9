"""The supervisor's board: the page (/board), its figures and live picture (/api/supervisor/…),
the day's CSV export, its event stream, and listen-in.

Every endpoint here is for supervisors (and admins): an agent signed in gets 403 with what to do
about it. The board's live updates are a stream on the consoles' machinery (web/streams.py: one
store poller per process, no request thread per stream under gthread), ``BoardStream``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cached_property
from typing import Any
from weakref import WeakKeyDictionary

from flask import Blueprint, Response, current_app, g, jsonify, render_template, request, session, url_for

from gateway.domain import access
from gateway.services.errors import ServiceError
from gateway.web import api
from gateway.web import console as console_web
from gateway.web.openapi import NOT_A_SUPERVISOR
from gateway.web.streams import EventStreams, Stream, Tick, jittered, sse

bp = Blueprint("board", __name__, template_folder="../templates")

BUNDLE_ENTRY = "vendor/board/main.js"
BUNDLE_STYLE = "vendor/board/main.css"
STYLESHEET = "board/board.css"
LISTEN_TOKEN_TTL_S = 60  # long enough to join; a listener in the room stays until it leaves or the call ends


def svc():
    return current_app.extensions["gateway"]


@bp.errorhandler(api.ApiError)
def _api_error(exc):
    return jsonify(error=str(exc)), exc.status, exc.headers


@bp.errorhandler(ServiceError)
def _refused(exc):
    return jsonify(error=str(exc)), api.status_of(exc)


def supervisor_required(view):
    """Signed in (Bearer or console session) as a supervisor or admin: 401 / 403 otherwise."""

    @api.agent_required
    def check(*args, **kwargs):
        if not access.may_see_board(access.Actor.of(g.agent)):
            raise api.ApiError(403, NOT_A_SUPERVISOR)
        return view(*args, **kwargs)

    check.__name__ = view.__name__
    check.__doc__ = view.__doc__
    return check


# ------------------------------------------------------------------- page
@bp.get("/board")
def page():
    agent = console_web._current_agent()
    supervisor = agent is not None and access.may_see_board(access.Actor.of(agent))
    built = (console_web.STATIC_DIR / BUNDLE_ENTRY).is_file()
    html = render_template(
        "board.html",
        agent=agent,
        supervisor=supervisor,
        bundled=built,
        message=NOT_A_SUPERVISOR,
        script_url=url_for("board.asset", filename=BUNDLE_ENTRY, v=console_web._asset_version(BUNDLE_ENTRY))
        if built
        else None,
        chart_style_url=url_for("board.asset", filename=BUNDLE_STYLE, v=console_web._asset_version(BUNDLE_STYLE))
        if built
        else None,
        style_url=url_for("board.asset", filename=STYLESHEET, v=console_web._asset_version(STYLESHEET)),
        console_style_url=url_for(
            "console.asset", filename=console_web.STYLESHEET, v=console_web._asset_version(console_web.STYLESHEET)
        ),
    )
    response = Response(html, status=200 if supervisor or agent is None else 403, mimetype="text/html")
    # Listen-in connects to the configured LiveKit only (as the console does) and plays its audio.
    response.headers["Content-Security-Policy"] = console_web.page_policy(svc().gw.settings.livekit_url)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


@bp.get("/board/assets/<path:filename>")
def asset(filename):
    return console_web.send_asset(filename, "board")


# ------------------------------------------------------------------- API
@bp.get("/api/supervisor/board")
@supervisor_required
def board():
    """The live picture and the day's figures in one reply (what the board page draws)."""
    return jsonify(live=svc().board.live(), figures=svc().board.figures())


@bp.get("/api/supervisor/figures")
@supervisor_required
def figures():
    return jsonify(figures=svc().board.figures())


@bp.get("/api/supervisor/export.csv")
@supervisor_required
def export():
    body = svc().board.export_csv()
    day = svc().board.local_date()
    return Response(
        body,
        mimetype="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="gateway-{day}.csv"',
            "Cache-Control": "no-store",
        },
    )


@bp.post("/api/supervisor/calls/<call_id>/listen")
@supervisor_required
def listen(call_id):
    """A LiveKit token to listen to a live call: its room only, subscribe only, hidden from the
    others, short-lived; recorded on the call's timeline."""
    return jsonify(svc().listen_in.listen(call_id, g.agent, ttl_s=LISTEN_TOKEN_TTL_S)), 201


# ----------------------------------------------------------- event stream
class _Read:
    """One read of the board, with what every open board compares and sends, worked out once."""

    def __init__(self, at: float, snapshot: dict):
        self.at, self.snapshot = at, snapshot
        # The snapshot without its ticking clocks: a board whose last event showed another sends this.
        self.steady = _steady(snapshot)

    @cached_property
    def event(self) -> str:
        """The ``board`` event, encoded once for every open board that sends it."""
        return sse("board", self.snapshot)


@dataclass
class _Feed:
    """The board as last read for every open board of one gateway (per process)."""

    shared: _Read | None = None
    live_dirty: bool = False
    figures_dirty: bool = False
    figures_at: float = 0.0


_FEEDS: WeakKeyDictionary[Any, _Feed] = WeakKeyDictionary()


class BoardStream(Stream):
    """A supervisor's board feed on the process's one notifier (web/streams.py), as the consoles':
    under gunicorn's gthread worker it holds no request thread. A ``board`` event (live picture and
    figures) at the start, whenever the store changed and the board with it, and every heartbeat
    (its clocks move on). It ends with ``signed_out`` when the session ends, the credential changes
    or the viewer is no longer a supervisor."""

    # One read of the board serves every open board of the process (same picture for all). However
    # often the store changes, the live picture is read again at most every ``refresh_s`` and the
    # day's figures (a read of today's rows) at most every ``figures_every_s``: a wall screen a
    # second behind is fine, a board read on every notifier tick under load takes time from the
    # webhooks. A change seen in between is read on the first tick once that time has passed.
    refresh_s = 1.0
    figures_every_s = 3.0

    def __init__(self, hub: EventStreams, services, agent_id: str, sid: str | None):
        super().__init__(hub, agent_id)
        self.services = services
        self.sid = sid
        self.checks_credential = sid is None
        self.fingerprint = services.agents.fingerprint(agent_id) if sid is None else None
        self.shown: dict | None = None  # the steady part of the last board sent
        self.retry_ms = hub.retry_ms

    def snapshot(self) -> dict:
        board = self.services.board
        return {"live": board.live(), "figures": board.recent_figures()}

    def _read_shared(self, tick: Tick, heartbeat: bool) -> _Read | None:
        board = self.services.board
        feed = _FEEDS.setdefault(board, _Feed())
        if tick.changed:
            feed.live_dirty = feed.figures_dirty = True
        shared = feed.shared
        live_due = shared is None or (tick.now - shared.at >= self.refresh_s and (feed.live_dirty or heartbeat))
        figures_due = feed.figures_dirty and tick.now - feed.figures_at >= self.figures_every_s
        if not (live_due or figures_due):
            return shared
        if figures_due or shared is None:
            figures = board.figures()
            feed.figures_dirty, feed.figures_at = False, tick.now
        else:
            figures = shared.snapshot["figures"]
        feed.live_dirty = False
        feed.shared = _Read(tick.now, {"live": board.live(), "figures": figures})
        return feed.shared

    def send(self, read: _Read) -> str:
        self.shown = read.steady
        return read.event

    def first(self) -> str:
        return f"retry: {self.retry_ms}\n\n" + self.send(_Read(time.monotonic(), self.snapshot()))

    def signed_out(self, tick: Tick) -> str | None:
        if tick.sessions is None or tick.fingerprints is None:
            return None  # not an auth tick
        if self.sid is not None and self.sid not in tick.sessions:
            return "your session ended; sign in again"
        if self.sid is None and tick.fingerprints.get(self.agent_id) != self.fingerprint:
            return "your credential changed; sign in again"
        agent = self.services.agents.get(self.agent_id)
        if agent is None or not access.may_see_board(access.Actor.of(agent)):
            return NOT_A_SUPERVISOR
        return None

    def on_tick(self, tick: Tick) -> str:
        reason = self.signed_out(tick)
        if reason:
            self.finish()
            return sse("signed_out", {"reason": reason})
        heartbeat = tick.now - self.last_write >= self.hub.heartbeat_s
        shared = self._read_shared(tick, heartbeat)
        if shared is None or not (shared.at == tick.now or heartbeat):
            return ""  # nothing read this tick: the board is as it was last sent
        if heartbeat or shared.steady != self.shown:
            return self.send(shared)
        return ""


@bp.get("/api/supervisor/events")
@supervisor_required
def events():
    """The board as server-sent events: a ``board`` event (live picture and figures, as
    /api/supervisor/board) at the start and whenever anything on it changes."""
    hub = console_web.streams()
    if hub.refusing():
        return jsonify(error="the event stream is restarting; retry shortly"), 503, {"Retry-After": "1"}
    services, agent_id = svc(), g.agent["id"]
    mode = hub.reserve(agent_id, detached=hub.detachable(request.environ))
    if mode == "refused":
        return (
            jsonify(error=f"too many open event streams for this agent (max {hub.per_agent} per worker)"),
            429,
            {"Retry-After": "5"},
        )
    stream = BoardStream(hub, services, agent_id, None if api.bearer() else session.get("sid"))
    headers = {"Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no"}
    if mode == "brief":
        # Over the budget: the board now, then the browser's EventSource comes back after `retry`.
        stream.retry_ms = jittered(hub.brief_retry_ms)
        return Response(stream.first(), mimetype="text/event-stream", headers=headers)
    try:
        return hub.respond(stream, mode, services, headers, on_close=lambda: hub.release(agent_id, mode))
    except Exception:
        hub.release(agent_id, mode)
        raise


TICKING = frozenset({"at", "now", "in_state_s", "waited_s", "elapsed_s", "longest_wait_s"})


def _steady(value):
    """A snapshot without its ticking clocks (the page counts them up between events) and without
    the waiting-callers series (it moves on every minute): what must change for an event now."""
    if isinstance(value, dict):
        return {
            k: _steady(v) for k, v in value.items() if k not in TICKING and not (k == "waiting" and isinstance(v, list))
        }
    if isinstance(value, list):
        return [_steady(v) for v in value]
    return value
