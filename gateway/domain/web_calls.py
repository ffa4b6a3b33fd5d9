"""Web callers: rules for a call placed from the caller page (``GET /call``) instead of a phone.

Plain Python: who a web caller's LiveKit identity is, what the page shows for each call state,
and the signed context a website may pass (HMAC-SHA256 with a shared secret and an expiry).

The context format is portable on purpose (any backend language can make it in three lines):
``<payload>.<signature>`` where ``payload`` is the base64url (unpadded) JSON object and
``signature`` the hex HMAC-SHA256 of that base64url text with ``WEB_CALL_CONTEXT_SECRET``. The
JSON carries ``exp`` (Unix seconds). Anything unsigned, forged, expired or malformed is ignored:
the call goes ahead without it, and nothing in it is trusted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from typing import Any

from gateway.domain import calls as C
from gateway.domain.agents import E164
from gateway.domain.caller_id import callable_number, mask_caller

CHANNEL_PHONE, CHANNEL_WEB = "phone", "web"
CHANNELS = (CHANNEL_PHONE, CHANNEL_WEB)
# A web call's placeholder CallSid: it has no Twilio leg (until a callback dials the caller's phone).
WEB_SID_PREFIX = "web:"


def on_the_page(channel: str | None, twilio_sid: str | None) -> bool:
    """The caller is on the caller page (moved by its state, not by Twilio): a web call, until a
    callback it asked for dials the caller's phone (from then on a phone leg, moved by Twilio REST)."""
    return channel == CHANNEL_WEB and (twilio_sid or "").startswith(WEB_SID_PREFIX)


IDENTITY_PREFIX = "webcaller-"
_IDENTITY = re.compile(r"^webcaller-(?P<call>[A-Za-z0-9_]{1,40})-(?P<gen>\d{1,6})$")

JOIN_TTL_S = 60  # a web caller's token only has to live until the page has joined
JOIN_GRACE_S = 15  # after the token expired unjoined, the call is given up (its room deleted)
STATUS_POLL_S = 1.0  # how often the page asks where the caller is
ACCESS_MAX_AGE_S = 4 * 3600  # the page's per-call access token (status, join, hang up)
REJOIN_SECRET_BYTES = 32

# What a website may tell us about the caller, and how long each field may be.
CONTEXT_FIELDS = {"customer_id": 64, "name": 80, "email": 120, "page": 300, "order": 64, "note": 500}
CONTEXT_MAX_LEN = 4096
CONTEXT_MAX_LIFETIME_S = 24 * 3600  # an ``exp`` further away than this is not a short-lived grant


def identity(call_id: str, gen: int) -> str:
    """The LiveKit identity of a web caller's token for one bridge generation of a call."""
    return f"{IDENTITY_PREFIX}{call_id}-{gen}"


def parse_identity(value: str) -> tuple[str, int] | None:
    found = _IDENTITY.match(value or "")
    return (found["call"], int(found["gen"])) if found else None


def is_web_identity(value: str) -> bool:
    return (value or "").startswith(IDENTITY_PREFIX)


# ------------------------------------------------------------------ rejoining
LEFT = "web caller left"  # the end reason when a caller who left did not come back in time
GONE, ENDED_ALREADY = "gone", "ended"


def new_rejoin_secret() -> str:
    """The page's secret for getting back into its call: kept in the page's sessionStorage only."""
    return secrets.token_urlsafe(REJOIN_SECRET_BYTES)


def secret_digest(secret: str) -> str:
    """What is stored of a rejoin secret (a 256-bit random value needs no slow hash)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def secret_matches(secret: object, digest: str | None) -> bool:
    if not isinstance(secret, str) or not secret or len(secret) > 200 or not digest:
        return False
    return hmac.compare_digest(secret_digest(secret).encode("ascii"), digest.encode("ascii"))


def rejoin_refusal(call_state: str, away_s: float | None, grace_s: float) -> str | None:
    """Why a page may not get back into its call (None: it may). ``away_s``: seconds since the
    caller's page left the call's room, None while it is still there or never joined."""
    if call_state in (C.ENDED, C.VOICEMAIL):
        return ENDED_ALREADY
    if away_s is not None and away_s > grace_s:
        return GONE
    return None


# ------------------------------------------------------------------ signed context
def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def sign_context(payload: dict[str, Any], secret: str, *, ttl_s: int = 300, now: float | None = None) -> str:
    """What a website's backend does (README's recipe): the payload with ``exp``, signed."""
    body = dict(payload)
    body.setdefault("exp", int((now if now is not None else time.time()) + ttl_s))
    encoded = _b64(json.dumps(body, separators=(",", ":"), sort_keys=True).encode("utf-8"))
    signature = hmac.new(secret.encode("utf-8"), encoded.encode("ascii"), hashlib.sha256).hexdigest()
    return f"{encoded}.{signature}"


def verify_context(token: Any, secret: str, *, now: float | None = None) -> tuple[dict[str, str] | None, str]:
    """(the verified facts, "verified") or (None, why it was ignored)."""
    if token in (None, ""):
        return None, "none"
    if not secret:
        return None, "context signing is not configured (WEB_CALL_CONTEXT_SECRET)"
    if not isinstance(token, str) or len(token) > CONTEXT_MAX_LEN or token.count(".") != 1:
        return None, "malformed"
    encoded, signature = token.split(".")
    expected = hmac.new(secret.encode("utf-8"), encoded.encode("ascii", "replace"), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode("ascii"), signature.encode("ascii", "replace")):
        return None, "bad signature"
    try:
        body = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    except ValueError:
        return None, "malformed"
    if not isinstance(body, dict):
        return None, "malformed"
    exp = body.get("exp")
    moment = now if now is not None else time.time()
    if not isinstance(exp, (int, float)) or isinstance(exp, bool):
        return None, "no expiry"
    if exp <= moment:
        return None, "expired"
    if exp > moment + CONTEXT_MAX_LIFETIME_S:
        return None, "expiry too far ahead"
    facts = {
        name: " ".join(str(body[name]).split())[:limit]
        for name, limit in CONTEXT_FIELDS.items()
        if isinstance(body.get(name), (str, int)) and not isinstance(body.get(name), bool) and str(body[name]).strip()
    }
    return (facts or None), ("verified" if facts else "empty")


# ------------------------------------------------------------------ the page's states
QUEUED, CONNECTING, RINGING, CONNECTED, ON_HOLD, ENDED = (
    "queued",
    "connecting",
    "ringing",
    "connected",
    "on_hold",
    "ended",
)
CALLBACK = "callback"  # the caller chose to be called back: the page's part is over, the call is not

HOLD_ANNOUNCEMENT = "Please hold: we are bringing in a colleague who can help."
RINGING_ANNOUNCEMENT = "Calling an agent for you."
CONNECTING_ANNOUNCEMENT = "Connecting your call."


def page_state(call_state: str, caller_in_room: bool) -> str:
    """What the caller page shows for a call state (``caller_in_room``: the page is in the call's room)."""
    if call_state == C.QUEUED:
        return QUEUED
    if call_state == C.ON_HOLD:
        return ON_HOLD
    if call_state == C.CONNECTED:
        return CONNECTED if caller_in_room else CONNECTING
    if call_state == C.BRIDGING:
        return RINGING if caller_in_room else CONNECTING
    return ENDED


# ------------------------------------------------------------------ call me back instead
# A waiting web caller may leave a phone number instead of waiting on the page: their queue entry
# becomes a callback keeping its place, exactly as a phone caller's (domain/queues.py CALLBACK).
CALLBACK_NUMBER_INVALID = (
    "enter your phone number in international format: a + then the country code and number, like +15551234567"
)
CALLBACK_NOT_WAITING = "a callback can only be asked for while the call is waiting in line"


def callback_number(value: object) -> str | None:
    """The number a web caller typed, if we can dial it: the E.164 rule (and not a withheld
    spelling, which no one answers). Spaces, dashes, dots and brackets between digits are allowed,
    as people write numbers; anything else is refused, never guessed at."""
    if not isinstance(value, str) or len(value) > 40:
        return None
    compact = re.sub(r"[\s().-]", "", value)
    return callable_number(compact) if E164.match(compact) else None


def callback_confirmation(number: str | None) -> str:
    """What the page says once the callback is arranged (the number masked, as everywhere else)."""
    return (
        f"We'll call you at {mask_caller(number)} when it's your turn. "
        "You keep your place in line, so you can close this page now."
    )


def called_back_message(number: str | None) -> str:
    return f"We called you back at {mask_caller(number)}: your call goes on by phone."


NOBODY_REASONS = ("nobody staffed", "queue timeout", "nobody answered", "no agent after transfer", "nobody available")


def ending_message(end_reason: str | None) -> str:
    """Why the call ended, in the caller's words."""
    reason = end_reason or ""
    if reason == C.AGENT_ENDED:
        return "The agent ended the call. Thank you for calling."
    if reason.startswith("caller") or reason == "web caller hung up":
        return "You ended the call."
    if reason == LEFT:
        return "Your connection was lost and did not come back in time, so the call ended. Please call again."
    if reason == "web caller never joined":
        return "Your browser could not connect the call's audio. Check your connection and try again."
    if any(reason.startswith(word) for word in NOBODY_REASONS) or "voicemail" in reason:
        return "Sorry, nobody could take your call right now. Please try again later."
    return "The call has ended."
