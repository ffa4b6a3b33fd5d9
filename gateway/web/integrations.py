"""For integrators' back ends: the event webhooks' delivery log and replay over HTTP.

Who may call: ``ADMIN_TOKEN``, or an API key (``api-keys add``): any key reads the log, a write key
replays. The same operations as the CLI's ``webhooks log`` and ``webhooks replay``.
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from gateway.web import api

bp = Blueprint("integrations", __name__, url_prefix="/api/webhooks")

PAGE_MAX = 200
STATES = ("pending", "delivered", "failed")


def svc():
    return current_app.extensions["gateway"]


@bp.errorhandler(api.ApiError)
def _api_error(exc):
    return jsonify(error=str(exc)), exc.status, exc.headers


def _int_arg(name: str, default: int | None, low: int, high: int) -> int | None:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise api.ApiError(400, f"{name} must be a whole number from {low} to {high}")
    return int(raw)


@bp.get("/deliveries")
@api.admin_required
def deliveries():
    """Deliveries newest first, a page at a time: ``next_before`` asks for the page after this one."""
    limit = _int_arg("limit", 50, 1, PAGE_MAX)
    before = _int_arg("before", None, 1, 2**62)
    state = request.args.get("state")
    if state is not None and state not in STATES:
        raise api.ApiError(400, f"state must be one of {', '.join(STATES)}")
    call_id = request.args.get("call_id") or None
    assert limit is not None
    rows = svc().event_webhooks.log(call_id=call_id, state=state, limit=limit + 1, before=before)
    page, more = rows[:limit], len(rows) > limit
    return jsonify(deliveries=page, next_before=page[-1]["id"] if more else None)


@bp.post("/replay")
@api.admin_required
def replay():
    """Send chosen events again, same id and body (receivers deduplicate by X-Gateway-Event-Id)."""
    data = api.body()
    event_id = api.field(data, "event_id", required=False, max_len=40)
    call_id = api.field(data, "call_id", required=False, max_len=40)
    failed_only = api.field(data, "failed_only", required=False, kind=bool)
    if not (event_id or call_id or failed_only):
        raise api.ApiError(400, "choose what to replay: event_id, call_id or failed_only")
    queued = svc().event_webhooks.replay(event_id=event_id, call_id=call_id, failed_only=bool(failed_only))
    return jsonify(queued=queued), 202
