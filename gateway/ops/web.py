"""The ops blueprint: /readyz, /metrics, the https redirect for browser pages, webhook timing.

/healthz (in create_app) says the process is up; /readyz says it can take calls now.
"""

from __future__ import annotations

import hmac
import logging
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from flask import Blueprint, Response, current_app, jsonify, redirect, request
from werkzeug.wrappers import Response as BaseResponse

from gateway.adapters.twilio_client import ProviderError
from gateway.ops import checks, observability
from gateway.ops.provision import DISPATCH_RULE_NAME

log = logging.getLogger(__name__)
bp = Blueprint("ops", __name__)

LIVEKIT_PROBE_S = 2.0
# Provider webhooks and probes must never be redirected: Twilio and LiveKit do not follow
# redirects for a POST, and a probe wants the plain answer.
NO_REDIRECT = ("/twilio/", "/livekit/", "/healthz", "/readyz", "/metrics")
# LiveKitRooms waits up to the provider timeout; readiness answers after 2 s regardless.
_probes = ThreadPoolExecutor(max_workers=2, thread_name_prefix="readyz-livekit")


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


def _livekit_ready(rooms) -> dict:
    future = _probes.submit(rooms.list_rooms)
    try:
        future.result(timeout=LIVEKIT_PROBE_S)
    except FutureTimeout:
        return {"ok": False, "detail": f"no answer within {LIVEKIT_PROBE_S:g} s"}
    except ProviderError as exc:
        return {"ok": False, "detail": exc.kind}
    return {"ok": True}


NOT_PROVISIONED = (
    "not provisioned: LiveKit has no {rule!r} dispatch rule, so a caller's SIP leg reaches no room the gateway "
    "watches (ringback until a timeout); run `flask --app gateway provision` once with these credentials"
)


def _provisioned(rooms) -> dict:
    """The dispatch rule provision makes, by name: without it no call can reach an agent."""
    future = _probes.submit(rooms.dispatch_rule_names)
    try:
        names = future.result(timeout=LIVEKIT_PROBE_S)
    except FutureTimeout:
        return {"ok": False, "detail": f"no answer within {LIVEKIT_PROBE_S:g} s"}
    except ProviderError as exc:
        return {"ok": False, "detail": exc.kind}
    if DISPATCH_RULE_NAME not in names:
        return {"ok": False, "detail": NOT_PROVISIONED.format(rule=DISPATCH_RULE_NAME)}
    return {"ok": True}


@bp.get("/readyz")
def readyz():
    gw = _services().gw
    try:
        schema = checks.schema(gw.store)
    except Exception as exc:
        log.warning("readyz: database unreachable: %s", exc)
        results = {
            "database": {"ok": False, "detail": type(exc).__name__},
            "migrations": {"ok": False, "detail": "database unreachable"},
        }
    else:
        results = {"database": {"ok": True}, "migrations": {"ok": schema.current, "detail": schema.describe()}}
    results["livekit"] = _livekit_ready(gw.rooms)
    results["provisioning"] = _provisioned(gw.rooms)
    ready = all(r["ok"] for r in results.values())
    warnings = {}
    if results["database"]["ok"]:
        try:
            webhooks = checks.livekit_webhooks(gw.store)
        except Exception as exc:  # a database hiccup here is not a readiness verdict
            log.warning("readyz: webhook check failed: %s", exc)
        else:
            if not webhooks.ok:
                # Reported, not fatal: every instance shares the cause, and calls still connect through
                # the ListParticipants fallback; taking them all out of rotation would drop every caller.
                warnings["livekit_webhooks"] = webhooks.describe()
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
    body, content_type = observability.exposition(_services().gw.store)
    return Response(body, content_type=content_type)
