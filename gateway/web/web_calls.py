"""Callers from the web: the caller page (``GET /call``), its button script, and the web-call API.

Who may call what:
- ``POST /api/web-calls``: anyone, from the gateway's own pages or an origin in WEB_CALL_ORIGINS
  (a browser's ``Origin`` is checked; CORS answers only those), within the per-address and global
  rate limits and WEB_CALLS_MAX live web calls. The reply carries the call's *access token* and
  its *rejoin secret*.
- ``POST /api/web-calls/<id>/rejoin``: only with the call's current rejoin secret (in the JSON body,
  never in a URL), from an allowed origin, within its own rate limits; the reply carries a new
  access token and the next rejoin secret (the one used is refused from then on).
- ``GET /api/web-calls/<id>``, ``POST …/join``, ``POST …/hangup``, ``POST …/callback`` (and, in
  sandbox mode, the media proxy ``/call/sandbox/rtc/*`` in web/sandbox.py):
  only with that call's access token (``Authorization: Bearer <access>``), signed by the gateway
  (SECRET_KEY) for that call id and valid four hours, and only until the call is rejoined: each
  rejoin answers a new one, and the tokens given before it are refused (403) from then on.
  ``…/callback`` is also rate-limited (per address and per call, every attempt counted) and only
  allowed while the call waits in line (409 otherwise).
- ``GET /call`` and ``GET /call/button.js``: public; ``/call`` may be framed only by the gateway
  itself and WEB_CALL_ORIGINS (CSP ``frame-ancestors``).
"""

from __future__ import annotations

import time

from flask import Blueprint, Response, current_app, jsonify, render_template, request, url_for
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from gateway.domain import web_calls as W
from gateway.services.errors import ServiceError
from gateway.services.web_calls import NobodyAvailable, TooManyWebCalls, WebCallers
from gateway.web import api
from gateway.web import throttle as limits
from gateway.web.console import STATIC_DIR, _asset_version, page_policy, send_asset

bp = Blueprint("web_calls", __name__)
CALL_BUNDLE = "vendor/call/main.js"
CALL_SOURCE = "call/main.js"
CALL_STYLE = "call/call.css"


def svc():
    return current_app.extensions["gateway"]


def web_callers() -> WebCallers:
    return svc().web_callers


@bp.errorhandler(api.ApiError)
def _api_error(exc):
    return _cors(jsonify(error=str(exc))), exc.status, getattr(exc, "headers", {})


@bp.errorhandler(TooManyWebCalls)
def _too_many(exc):
    return _cors(jsonify(error=str(exc))), 429, {"Retry-After": "30"}


@bp.errorhandler(NobodyAvailable)
def _nobody(exc):
    return _cors(jsonify(error=str(exc))), 503, {"Retry-After": "60"}


@bp.errorhandler(ServiceError)
def _refused(exc):
    return _cors(jsonify(error=str(exc))), api.status_of(exc)


# ------------------------------------------------------------------ origins
def allowed_origins() -> list[str]:
    settings = svc().gw.settings
    own = request.host_url.rstrip("/").lower()
    return list(dict.fromkeys([settings.public_origin.lower(), own, *settings.web_call_origins]))


def _origin_ok() -> bool:
    origin = request.headers.get("Origin")
    return origin is None or origin.lower() in allowed_origins()


def _cors(response: Response) -> Response:
    """CORS for an allowed origin only: a page elsewhere gets no readable answer."""
    origin = request.headers.get("Origin")
    if origin and origin.lower() in allowed_origins():
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
    return response


def _require_origin() -> None:
    if not _origin_ok():
        raise api.ApiError(
            403,
            f"web calls from {request.headers.get('Origin')} are not allowed: "
            "the site's origin must be listed in the gateway's WEB_CALL_ORIGINS",
        )


@bp.route("/api/web-calls", methods=["OPTIONS"])
@bp.route("/api/web-calls/<call_id>", methods=["OPTIONS"])
@bp.route("/api/web-calls/<call_id>/<action>", methods=["OPTIONS"])
def preflight(call_id: str | None = None, action: str | None = None):
    _require_origin()
    response = _cors(Response(status=204))
    response.headers["Access-Control-Allow-Methods"] = "GET, POST"
    response.headers["Access-Control-Allow-Headers"] = "Content-Type, Authorization"
    response.headers["Access-Control-Max-Age"] = "600"
    return response


# ------------------------------------------------------------------ access tokens
def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="web-call-access")


def access_token(call_id: str, generation: int = 0) -> str:
    """``generation``: how many times the call was rejoined when it was given (see authorized)."""
    return _serializer().dumps([call_id, generation])


def authorized(call_id: str) -> None:
    token = api.bearer()
    if not token:
        raise api.ApiError(401, "this web call's access token is required (Authorization: Bearer <access>)")
    try:
        granted = _serializer().loads(token, max_age=W.ACCESS_MAX_AGE_S)
    except SignatureExpired:
        raise api.ApiError(401, "this web call's access token has expired; place a new call") from None
    except BadSignature:
        raise api.ApiError(401, "invalid access token for this web call") from None
    # (A bare call id: a token given before tokens carried their generation, as the first one.)
    granted_id, generation = (granted, 0) if isinstance(granted, str) else (granted[0], granted[1])
    if granted_id != call_id:
        raise api.ApiError(403, "that access token is for another call")
    if generation != web_callers().access_generation(call_id):
        raise api.ApiError(
            403, "this page's access to the call was replaced: the call was rejoined from another page or tab"
        )


# ------------------------------------------------------------------ the API
@bp.post("/api/web-calls")
def create_web_call():
    _require_origin()
    settings = svc().gw.settings
    data = api.body()
    team = api.field(data, "team", required=False, max_len=40)
    context = data.get("context")
    checks = ((limits.WEB_CALLS_PER_ADDRESS, api.address()), (limits.WEB_CALLS_ALL, "all"))
    api.check_throttle(*checks)
    for limit, key in checks:
        api.throttles().hit(limit, key)
    facts, why = W.verify_context(context, settings.web_call_context_secret, now=time.time())
    reply = web_callers().create(team_id=team, facts=facts, context=why, origin=request.headers.get("Origin"))
    reply |= {
        "access": access_token(reply["call_id"], reply.pop("generation")),
        "livekit_url": svc().livekit_client_url,
        "media": "sandbox" if settings.sandbox else "livekit",
        "context": "verified" if facts else ("none" if why == "none" else "ignored"),
        "poll_s": W.STATUS_POLL_S,
    }
    return _cors(jsonify(reply)), 201


@bp.post("/api/web-calls/<call_id>/rejoin")
def web_call_rejoin(call_id):
    """The page is back for its call (reloaded, or its media connection dropped)."""
    _require_origin()
    settings = svc().gw.settings
    secret = api.field(api.body(), "secret", max_len=200)
    checks = ((limits.WEB_REJOINS_PER_ADDRESS, api.address()), (limits.WEB_REJOINS_PER_CALL, call_id[:40]))
    api.check_throttle(*checks)
    for limit, key in checks:
        api.throttles().hit(limit, key)
    reply = web_callers().rejoin(call_id, secret)
    reply |= {
        "access": access_token(reply["call_id"], reply.pop("generation")),
        "livekit_url": svc().livekit_client_url,
        "media": "sandbox" if settings.sandbox else "livekit",
        "poll_s": W.STATUS_POLL_S,
    }
    return _cors(jsonify(reply))


@bp.get("/api/web-calls/<call_id>")
def web_call_status(call_id):
    _require_origin()
    authorized(call_id)
    return _cors(jsonify(web_callers().status(call_id)))


@bp.post("/api/web-calls/<call_id>/join")
def web_call_join(call_id):
    _require_origin()
    authorized(call_id)
    reply = web_callers().join(call_id) | {"livekit_url": svc().livekit_client_url}
    return _cors(jsonify(reply))


@bp.post("/api/web-calls/<call_id>/hangup")
def web_call_hangup(call_id):
    _require_origin()
    authorized(call_id)
    return _cors(jsonify(web_callers().hangup(call_id)))


@bp.post("/api/web-calls/<call_id>/callback")
def web_call_callback(call_id):
    """The waiting caller would rather be called back at a phone number, keeping their place."""
    _require_origin()
    authorized(call_id)
    number = api.body().get("number")
    checks = ((limits.WEB_CALLBACKS_PER_ADDRESS, api.address()), (limits.WEB_CALLBACKS_PER_CALL, call_id[:40]))
    api.check_throttle(*checks)
    for limit, key in checks:
        api.throttles().hit(limit, key)
    return _cors(jsonify(web_callers().call_back(call_id, number)))


# ------------------------------------------------------------------ the page
def _bundle_built() -> bool:
    return (STATIC_DIR / CALL_BUNDLE).is_file()


@bp.get("/call")
def page():
    settings = svc().gw.settings
    entry = CALL_BUNDLE if _bundle_built() else CALL_SOURCE
    html = render_template(
        "call.html",
        sandbox=settings.sandbox,
        script_url=url_for("web_calls.asset", filename=entry, v=_asset_version(entry)),
        style_url=url_for("web_calls.asset", filename=CALL_STYLE, v=_asset_version(CALL_STYLE)),
    )
    response = Response(html, mimetype="text/html")
    ancestors = " ".join(["'self'", *settings.web_call_origins])
    music = _music_origin(settings.hold_music_url)
    response.headers["Content-Security-Policy"] = page_policy(
        settings.livekit_url, media=music, frame_ancestors=ancestors, form_action="'none'"
    )
    # (Browsers follow frame-ancestors when present; SAMEORIGIN is for those that only know this header.)
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    response.headers["Cache-Control"] = "no-store"
    response.headers["Permissions-Policy"] = "microphone=(self)"
    return response


@bp.get("/call/assets/<path:filename>")
def asset(filename):
    return send_asset(filename, "call")


def _music_origin(url: str) -> str:
    from urllib.parse import urlparse

    parsed = urlparse(url)
    return f"{parsed.scheme}://{parsed.netloc}" if parsed.scheme in ("http", "https") and parsed.netloc else ""


@bp.get("/call/button.js")
def button_script():
    """The embeddable "Call us" button: a website includes this script; it adds a button that opens
    the caller page in a dialog (an iframe this origin allows), passing the site's signed context."""
    origin = svc().gw.settings.public_origin
    body = render_template("call_button.js", gateway_origin=origin)
    response = Response(body, mimetype="text/javascript")
    response.headers["Cache-Control"] = "public, max-age=300"
    response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response
