"""The ops blueprint: /readyz, /metrics, the https redirect for browser pages, webhook timing.

/healthz (in create_app) says the process is up; /readyz says it can take calls now.
"""

from __future__ import annotations

import hmac
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from flask import Blueprint, Response, current_app, jsonify, redirect, request
from werkzeug.wrappers import Response as BaseResponse

from gateway.adapters.twilio_client import ProviderError
from gateway.ops import checks, observability
from gateway.ops.provision import DISPATCH_RULE_NAME

log = logging.getLogger(__name__)
bp = Blueprint("ops", __name__)

# A probe answers within a second, whatever hangs: a load balancer's check gives up soon after.
PROBE_S = 0.8
WARNINGS = "_warnings"  # the database probe's findings that do not decide readiness
# Provider webhooks and probes must never be redirected: Twilio and LiveKit do not follow
# redirects for a POST, and a probe wants the plain answer.
NO_REDIRECT = ("/twilio/", "/livekit/", "/healthz", "/readyz", "/metrics")
# The database and LiveKit are asked at once, each on a thread of its own: a locked SQLite file
# or a LiveKit that does not answer makes /readyz say 503 after PROBE_S, not after their timeouts.
_probes = ThreadPoolExecutor(max_workers=6, thread_name_prefix="readyz")


def _services():
    return current_app.extensions["gateway"]


@bp.before_app_request
def _redirect_to_https() -> BaseResponse | None:
    """A browser that reached the proxy over plain http is sent to the https origin. Only
    when a proxy is trusted: then ProxyFix has set the scheme from X-Forwarded-Proto."""
    origin = _services().gw.settings.public_origin
    if (
        request.method in ("GET", "HEAD")
        and origin.startswith("https://")
        and current_app.extensions["ops"].trusted_proxy_hops > 0
        and request.headers.get("X-Forwarded-Proto")
        and request.scheme == "http"
        and not request.path.startswith(NO_REDIRECT)
    ):
        target = origin + request.full_path.rstrip("?")
        return redirect(target, code=301)
    return None


bp.before_app_request(observability.start_timer)
bp.after_app_request(observability.observe_webhook)


def _database_ready(store) -> dict:
    try:
        schema = checks.schema(store)
    except Exception as exc:
        log.warning("readyz: database unreachable: %s", exc)
        return {
            "database": {"ok": False, "detail": type(exc).__name__},
            "migrations": {"ok": False, "detail": "database unreachable"},
        }
    results = {"database": {"ok": True}, "migrations": {"ok": schema.current, "detail": schema.describe()}}
    try:
        webhooks = checks.livekit_webhooks(store)
    except Exception as exc:  # a database hiccup here is not a readiness verdict
        log.warning("readyz: webhook check failed: %s", exc)
    else:
        if not webhooks.ok:
            # Reported, not fatal: every instance shares the cause, and calls still connect through
            # the ListParticipants fallback; taking them all out of rotation would drop every caller.
            results[WARNINGS] = {"livekit_webhooks": webhooks.describe()}
    return results


def _livekit_ready(rooms) -> dict:
    try:
        rooms.list_rooms()
    except ProviderError as exc:
        return {"livekit": {"ok": False, "detail": exc.kind}}
    return {"livekit": {"ok": True}}


NOT_PROVISIONED = (
    "not provisioned: LiveKit has no {rule!r} dispatch rule, so a caller's SIP leg reaches no room the gateway "
    "watches (ringback until a timeout); run `flask --app gateway provision` once with these credentials"
)


def _provisioned(rooms) -> dict:
    """The dispatch rule provision makes, by name: without it no call can reach an agent."""
    try:
        names = rooms.dispatch_rule_names()
    except ProviderError as exc:
        return {"provisioning": {"ok": False, "detail": exc.kind}}
    if DISPATCH_RULE_NAME not in names:
        return {"provisioning": {"ok": False, "detail": NOT_PROVISIONED.format(rule=DISPATCH_RULE_NAME)}}
    return {"provisioning": {"ok": True}}


@bp.get("/readyz")
def readyz():
    gw = _services().gw
    deadline = time.monotonic() + PROBE_S
    probes = {
        ("database", "migrations"): _probes.submit(_database_ready, gw.store),
        ("livekit",): _probes.submit(_livekit_ready, gw.rooms),
        ("provisioning",): _probes.submit(_provisioned, gw.rooms),
    }
    results: dict = {}
    for names, future in probes.items():
        try:
            results.update(future.result(timeout=max(0.0, deadline - time.monotonic())))
        except FutureTimeout:
            results.update({name: {"ok": False, "detail": f"no answer within {PROBE_S:g} s"} for name in names})
    warnings = results.pop(WARNINGS, {})
    ready = all(r["ok"] for r in results.values())
    return jsonify(status="ready" if ready else "not ready", checks=results, warnings=warnings), 200 if ready else 503


@bp.get("/metrics")
def metrics():
    token = current_app.extensions["ops"].metrics_token
    if token:
        presented = request.headers.get("Authorization", "")
        if not hmac.compare_digest(presented.encode(), f"Bearer {token}".encode()):
            return (
                jsonify(error="metrics need Authorization: Bearer <METRICS_TOKEN>"),
                401,
                {"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
    body, content_type = observability.exposition(_services().gw.store, _services().board)
    return Response(body, content_type=content_type)
