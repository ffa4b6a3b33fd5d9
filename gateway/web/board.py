"""The supervisor's board: the page (/board), its figures and live picture (/api/supervisor/…),
the day's CSV export, its event stream, and listen-in.

Every endpoint here is for supervisors (and admins): an agent signed in gets 403 with what to do
about it. The board's live updates use the console's event-stream machinery (``snapshot_stream``
is the one place that knows it), so a change of that machinery changes one function here.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

from flask import Blueprint, Response, current_app, g, jsonify, render_template, request, session, url_for

from gateway.domain import access
from gateway.services.errors import ServiceError
from gateway.web import api
from gateway.web import console as console_web
from gateway.web.openapi import NOT_A_SUPERVISOR

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
    livekit = " ".join(console_web._livekit_origins(svc().gw.settings.livekit_url))
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"media-src 'self' blob: mediastream:; connect-src 'self' {livekit}; worker-src 'self' blob:; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


@bp.get("/board/assets/<path:filename>")
def asset(filename):
    if not filename.startswith(("board/", "vendor/board/")):
        raise api.ApiError(404, "not found")
    from flask import send_from_directory

    return send_from_directory(console_web.STATIC_DIR, filename, max_age=86400 if request.args.get("v") else 0)


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
def snapshot_stream(
    owner: str,
    read: Callable[[], dict],
    event: str,
    *,
    key: Callable[[dict], object] = lambda s: s,
    still_allowed: Callable[[], str | None] = lambda: None,
    every_s: float = 1.0,
) -> Response:
    """Server-sent events of ``read()``'s snapshot: sent at the start, whenever its ``key`` changes,
    and at least every heartbeat (its clocks move on). ``still_allowed()`` is asked every few seconds:
    a reason (signed out, no longer a supervisor) ends the stream with a ``signed_out`` event.
    Held and released through the console's stream budget (EventStreams), so boards count
    against the same per-worker and per-agent caps as consoles, and end when it drops them."""
    hub = console_web.streams()
    if hub.refusing():
        return jsonify(error="the event stream is restarting; retry shortly"), 503, {"Retry-After": "1"}  # type: ignore[return-value]
    generation = hub.generation
    mode = hub.reserve(owner)
    if mode == "refused":
        return (  # type: ignore[return-value]
            jsonify(error=f"too many open event streams for this agent (max {hub.per_agent} per worker)"),
            429,
            {"Retry-After": "5"},
        )
    brief = mode == "brief"

    def generate() -> Iterator[str]:
        last = None
        started = last_write = last_auth = time.monotonic()
        yield f"retry: {hub.brief_retry_ms if brief else hub.retry_ms}\n\n"
        while True:
            now = time.monotonic()
            if now - last_auth >= hub.auth_check_s:
                last_auth = now
                reason = still_allowed()
                if reason:
                    yield console_web._sse("signed_out", {"reason": reason})
                    return
            snapshot = read()
            changed = json.dumps(key(snapshot), sort_keys=True, default=str)
            if changed != last or now - last_write >= hub.heartbeat_s:
                last = changed
                last_write = now
                yield console_web._sse(event, snapshot)
            if brief or now - started >= hub.max_age_s or not hub.sleep(every_s, generation):
                return

    response = Response(
        generate(),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no"},
    )
    if not brief:
        released: list[bool] = []

        def release() -> None:
            if not released:
                released.append(True)
                hub.release(owner)

        response.call_on_close(release)
    return response


@bp.get("/api/supervisor/events")
@supervisor_required
def events():
    """The board as server-sent events: a ``board`` event (live picture and figures, as
    /api/supervisor/board) at the start and whenever anything on it changes."""
    board_service, agents, agent_id = svc().board, svc().agents, g.agent["id"]
    sid = None if api.bearer() else session.get("sid")
    fingerprint = agents.fingerprint(agent_id)

    def still_allowed() -> str | None:
        # As the console's stream: a cookie stream ends with its session, a Bearer one when the
        # credential changes; and a board ends when its viewer is no longer a supervisor.
        agent = agents.session_agent(sid) if sid is not None else agents.get(agent_id)
        if agent is None or (sid is None and agents.fingerprint(agent_id) != fingerprint):
            return "your session ended; sign in again"
        if not access.may_see_board(access.Actor.of(agent)):
            return NOT_A_SUPERVISOR
        return None

    return snapshot_stream(
        agent_id,
        lambda: {"live": board_service.live(), "figures": board_service.recent_figures()},
        "board",
        key=_steady,
        still_allowed=still_allowed,
    )


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
