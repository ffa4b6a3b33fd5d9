"""Loopback LiveKit double: a real HTTP server speaking LiveKit's server API.

What it models, so the gateway can be tested end to end without a LiveKit
project:

* The Twirp server API (``/twirp/livekit.RoomService/*`` and
  ``/twirp/livekit.SIP/*``) with protobuf bodies, exactly as the official
  ``livekit.api.LiveKitAPI`` client sends them (JSON bodies work too). Auth is
  LiveKit's: a malformed, badly signed or expired JWT gets a plain-text 401
  from the auth layer; a valid token without the method's grant gets a Twirp
  ``unauthenticated`` error (HTTP 401), and so does a request with no token
  at all (it passes the auth layer and fails the grant check). MoveParticipant/ForwardParticipant are
  LiveKit Cloud only: a self-hosted server (``cloud=False``) answers them with a plain error whose
  message is "not implemented" (Twirp ``internal``, HTTP 500), not Twirp's ``unimplemented`` code.
* Trunk validation as livekit/protocol does it: an inbound trunk with neither auth credentials,
  allowed addresses nor numbers is refused ("for security, one of the fields must be set", from
  ``SIPInboundTrunkInfo.Validate``), and a second catch-all inbound trunk (no numbers, no allowed
  numbers) conflicts with the first (``ValidateTrunks``: "Conflicting inbound SIP Trunks"). If two
  catch-alls exist anyway (``seed_inbound_trunk`` bypasses the check, as trunks made before the
  check did), every INVITE fails with 503 (``MatchTrunk``: "Multiple default SIP Trunks matched").
* Rooms and participants, including the empty/departure timeouts that close a
  room nobody is in, and duplicate identities replacing the older participant.
* SIP ingress as Twilio's ``<Dial><Sip>`` drives it (``POST /_sim/sip/invite``):
  trunk matching and credentials, dispatch rules naming the room, the
  caller joining as a SIP participant with LiveKit's ``sip.*`` attributes, and
  the answer semantics (ringing until someone else is in the room, 486 on a
  ringing timeout or a removal while ringing, BYE when an answered call is
  removed or its room deleted).
* Browser joins (``POST /_sim/rtc/join``) validated the way the server
  validates a client's access token. A participant whose token has the ``hidden`` grant is in the
  room (ListParticipants and webhooks, which are server-side, include it) but never shown to the
  other participants' clients (``seen_by``, ``GET /_sim/rooms/<room>/seen-by/<identity>``), and, like
  any participant that cannot publish, does not make a ringing SIP call answered.
* Signed webhooks delivered in order from one sender thread, with LiveKit's
  retry policy (connection errors, 429 and 5xx). Webhooks are server configuration, not API
  (self-hosted ``webhook:`` in the server config, LiveKit Cloud in the project settings):
  ``webhooks_configured = False`` models a server that sends none, and ``webhook_signing_key``
  one that signs them with another API key than the one the gateway holds.
* Fault and latency injection for fault tests and benchmarks.

What it deliberately does not model: media of any kind (no tracks, no audio,
so "answered" is decided by presence alone, and MutePublishedTrack always
finds no track), the WebRTC signalling protocol, egress/ingress/agents,
outbound SIP calls and REFER transfers (CreateSIPParticipant and
TransferSIPParticipant answer ``unimplemented`` once their grants check out),
dispatch-rule PINs, conflicting-rule validation, ``max_participants``
enforcement and multi-region failover.

SIP session ``sip_status_code`` is the final answer LiveKit gave the INVITE:
null while ringing, 200 once answered, 486 when it ended while ringing
(ringing timeout or removal), 487 when the caller cancelled while ringing.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import queue
import secrets
import string
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote

import jwt
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from livekit.api import AccessToken, TokenVerifier
from livekit.api.access_token import Claims, SIPGrants, VideoGrants
from livekit.protocol import models as proto_models
from livekit.protocol import room as proto_room
from livekit.protocol import sip as proto_sip
from livekit.protocol import webhook as proto_webhook
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

DEFAULT_EMPTY_TIMEOUT = 300  # LiveKit's default when CreateRoom says 0
DEFAULT_DEPARTURE_TIMEOUT = 20
DEFAULT_RINGING_TIMEOUT = 180.0  # inbound trunk default: 3 minutes
REAPER_TICK = 0.05
HANG_SECONDS = 30.0  # longer than any client timeout the gateway uses
WEBHOOK_MAX_RETRIES = 4
WEBHOOK_HTTP_TIMEOUT = 5.0
WEBHOOK_TOKEN_TTL = datetime.timedelta(minutes=5)

# Twirp's error code -> HTTP status mapping.
TWIRP_HTTP_STATUS = {
    "canceled": 408,
    "unknown": 500,
    "invalid_argument": 400,
    "malformed": 400,
    "deadline_exceeded": 408,
    "not_found": 404,
    "bad_route": 404,
    "already_exists": 409,
    "permission_denied": 403,
    "unauthenticated": 401,
    "resource_exhausted": 429,
    "failed_precondition": 412,
    "aborted": 409,
    "out_of_range": 400,
    "unimplemented": 501,
    "internal": 500,
    "unavailable": 503,
    "dataloss": 500,
}

_KIND = proto_models.ParticipantInfo.Kind
_STATE = proto_models.ParticipantInfo.State
# What the UpdateSIP* RPCs update in place.
_Stored = TypeVar(
    "_Stored", proto_sip.SIPInboundTrunkInfo, proto_sip.SIPOutboundTrunkInfo, proto_sip.SIPDispatchRuleInfo
)
_LIST_UPDATE = "livekit.ListUpdate"


class TwirpError(Exception):
    """A Twirp error answer: JSON ``{"code","msg","meta"}`` with its HTTP status."""

    def __init__(self, code: str, msg: str, meta: dict | None = None, status: int | None = None):
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg
        self.meta = meta or {}
        self.status = status or TWIRP_HTTP_STATUS.get(code, 500)


class _PlainUnauthorized(Exception):
    """LiveKit's auth middleware rejects bad tokens with a plain-text 401, not Twirp JSON."""


# --- grants -----------------------------------------------------------------
# Each check gets the verified claims (None when no token was sent, which
# LiveKit lets through the auth layer and then refuses per method) and the request,
# whose message type depends on the RPC (hence Any): each check reads the fields its RPC's request has.

_M = TypeVar("_M", bound=Message)


def _video(c: Claims) -> VideoGrants:
    # TokenVerifier always fills both grants (empty when the token has none): an absent one grants nothing.
    return c.video or VideoGrants()


def _sip(c: Claims) -> SIPGrants:
    return c.sip or SIPGrants()


def _grant_room_create(c: Claims, req: Any) -> bool:
    return bool(_video(c).room_create)


def _grant_room_list(c: Claims, req: Any) -> bool:
    return bool(_video(c).room_list)


def _grant_room_admin(c: Claims, req: Any) -> bool:
    return bool(_video(c).room_admin) and _video(c).room == req.room


def _grant_forward(c: Claims, req: Any) -> bool:
    return _grant_room_admin(c, req) and _video(c).destination_room == req.destination_room


def _grant_sip_admin(c: Claims, req: Any) -> bool:
    return bool(_sip(c).admin)


def _grant_sip_call(c: Claims, req: Any) -> bool:
    return bool(_sip(c).call)


def _grant_sip_transfer(c: Claims, req: Any) -> bool:
    return bool(_sip(c).call) and bool(_video(c).room_admin) and _video(c).room == req.room_name


@dataclass(frozen=True)
class _Rpc:
    service: str
    request: type[Message]
    grant: Callable[[Claims, Any], bool]


_ROOM_SVC = "livekit.RoomService"
_SIP_SVC = "livekit.SIP"
_RPCS = {
    "CreateRoom": _Rpc(_ROOM_SVC, proto_room.CreateRoomRequest, _grant_room_create),
    "ListRooms": _Rpc(_ROOM_SVC, proto_room.ListRoomsRequest, _grant_room_list),
    "DeleteRoom": _Rpc(_ROOM_SVC, proto_room.DeleteRoomRequest, _grant_room_create),
    "UpdateRoomMetadata": _Rpc(_ROOM_SVC, proto_room.UpdateRoomMetadataRequest, _grant_room_admin),
    "ListParticipants": _Rpc(_ROOM_SVC, proto_room.ListParticipantsRequest, _grant_room_admin),
    "GetParticipant": _Rpc(_ROOM_SVC, proto_room.RoomParticipantIdentity, _grant_room_admin),
    "RemoveParticipant": _Rpc(_ROOM_SVC, proto_room.RoomParticipantIdentity, _grant_room_admin),
    "UpdateParticipant": _Rpc(_ROOM_SVC, proto_room.UpdateParticipantRequest, _grant_room_admin),
    "MutePublishedTrack": _Rpc(_ROOM_SVC, proto_room.MuteRoomTrackRequest, _grant_room_admin),
    "UpdateSubscriptions": _Rpc(_ROOM_SVC, proto_room.UpdateSubscriptionsRequest, _grant_room_admin),
    "SendData": _Rpc(_ROOM_SVC, proto_room.SendDataRequest, _grant_room_admin),
    "MoveParticipant": _Rpc(_ROOM_SVC, proto_room.MoveParticipantRequest, _grant_forward),
    "ForwardParticipant": _Rpc(_ROOM_SVC, proto_room.ForwardParticipantRequest, _grant_forward),
    "CreateSIPInboundTrunk": _Rpc(_SIP_SVC, proto_sip.CreateSIPInboundTrunkRequest, _grant_sip_admin),
    "ListSIPInboundTrunk": _Rpc(_SIP_SVC, proto_sip.ListSIPInboundTrunkRequest, _grant_sip_admin),
    "UpdateSIPInboundTrunk": _Rpc(_SIP_SVC, proto_sip.UpdateSIPInboundTrunkRequest, _grant_sip_admin),
    "CreateSIPOutboundTrunk": _Rpc(_SIP_SVC, proto_sip.CreateSIPOutboundTrunkRequest, _grant_sip_admin),
    "ListSIPOutboundTrunk": _Rpc(_SIP_SVC, proto_sip.ListSIPOutboundTrunkRequest, _grant_sip_admin),
    "UpdateSIPOutboundTrunk": _Rpc(_SIP_SVC, proto_sip.UpdateSIPOutboundTrunkRequest, _grant_sip_admin),
    "DeleteSIPTrunk": _Rpc(_SIP_SVC, proto_sip.DeleteSIPTrunkRequest, _grant_sip_admin),
    "CreateSIPDispatchRule": _Rpc(_SIP_SVC, proto_sip.CreateSIPDispatchRuleRequest, _grant_sip_admin),
    "ListSIPDispatchRule": _Rpc(_SIP_SVC, proto_sip.ListSIPDispatchRuleRequest, _grant_sip_admin),
    "UpdateSIPDispatchRule": _Rpc(_SIP_SVC, proto_sip.UpdateSIPDispatchRuleRequest, _grant_sip_admin),
    "DeleteSIPDispatchRule": _Rpc(_SIP_SVC, proto_sip.DeleteSIPDispatchRuleRequest, _grant_sip_admin),
    "CreateSIPParticipant": _Rpc(_SIP_SVC, proto_sip.CreateSIPParticipantRequest, _grant_sip_call),
    "TransferSIPParticipant": _Rpc(_SIP_SVC, proto_sip.TransferSIPParticipantRequest, _grant_sip_transfer),
}


# --- helpers ----------------------------------------------------------------

_ALPHABET = string.ascii_letters + string.digits


def _validate_inbound_trunk(trunk: proto_sip.SIPInboundTrunkInfo) -> None:
    """livekit/protocol ``SIPInboundTrunkInfo.Validate``: some restriction must be set."""
    if not (trunk.auth_username or trunk.auth_password or trunk.allowed_addresses or trunk.numbers):
        raise TwirpError(
            "invalid_argument",
            "for security, one of the fields must be set: AuthUsername+AuthPassword, AllowedAddresses or Numbers",
        )


def _check_trunk_conflicts(trunk: proto_sip.SIPInboundTrunkInfo, existing) -> None:
    """livekit/protocol ``ValidateTrunks``: two trunks for the same numbers (or both catch-all,
    no numbers) with no AllowedNumbers to tell them apart conflict."""
    for other in existing:
        shared = set(trunk.numbers) & set(other.numbers) if trunk.numbers else set() if other.numbers else {""}
        if not shared:
            continue
        if not trunk.allowed_numbers and not other.allowed_numbers:
            numbers = json.dumps(sorted(trunk.numbers)) if trunk.numbers else "<any>"
            new = f'"{trunk.sip_trunk_id}"' if trunk.sip_trunk_id else '"<new>"'
            raise TwirpError(
                "invalid_argument",
                f'Conflicting inbound SIP Trunks: {new} and "{other.sip_trunk_id}", using the same number(s) '
                f"{numbers} without AllowedNumbers set",
            )


def _new_id(prefix: str, length: int = 12) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(length))


def _seconds(duration) -> float:
    return duration.seconds + duration.nanos / 1e9


def _parse_sip_uri(uri: str) -> tuple[str, dict[str, str]]:
    """Return (user part, URI headers) of ``sip:user[?h=v&..]@host[;params][?h=v]``."""
    rest = uri.split(":", 1)[1] if uri.lower().startswith(("sip:", "sips:")) else uri
    q = rest.find("?")
    if q == -1:
        head, query = rest, ""
    else:
        at = rest.find("@", q)
        if at == -1:
            head, query = rest[:q], rest[q + 1 :]
        else:  # headers written straight after the user part
            head, query = rest[:q] + rest[at:], rest[q + 1 : at]
    user = unquote(head.split("@", 1)[0].split(";", 1)[0])
    return user, dict(parse_qsl(query, keep_blank_values=True))


def _apply_list_update(values: list[str], update: proto_models.ListUpdate) -> list[str]:
    if update.set and (update.add or update.remove):
        raise TwirpError("invalid_argument", "ListUpdate: set cannot be combined with add/remove")
    if update.clear:
        return []
    if update.set:
        return list(update.set)
    values = [v for v in values if v not in update.remove]
    return values + [v for v in update.add if v not in values]


def _apply_update(info: Message, update: Message) -> None:
    """Apply an ``*Update`` message (only set fields) onto the matching ``*Info``."""
    for fd, value in update.ListFields():
        target = getattr(info, fd.name)
        if fd.message_type is not None and fd.message_type.full_name == _LIST_UPDATE:
            new = _apply_list_update(list(target), value)
            del target[:]
            target.extend(new)
        elif fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            target.clear()
            target.update(value)
        elif fd.message_type is not None:
            target.CopyFrom(value)
        else:
            setattr(info, fd.name, value)


def _json(data, status: int = 200) -> Response:
    return Response(json.dumps(data), status=status, mimetype="application/json")


def _unverified_claims(token: str) -> dict | None:
    try:
        return jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None


_DISCONNECT_REASONS = {
    "duplicate_identity": proto_models.DisconnectReason.DUPLICATE_IDENTITY,
    "removed": proto_models.DisconnectReason.PARTICIPANT_REMOVED,
    "room_deleted": proto_models.DisconnectReason.ROOM_DELETED,
    "bye": proto_models.DisconnectReason.CLIENT_INITIATED,
    "leave": proto_models.DisconnectReason.CLIENT_INITIATED,
    "ringing_timeout": proto_models.DisconnectReason.USER_UNAVAILABLE,
}


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs) -> None:
        """Per-request access logs would drown test output."""


@dataclass
class _Room:
    info: proto_models.Room
    participants: dict[str, proto_models.ParticipantInfo] = field(default_factory=dict)
    close_at: float | None = None  # monotonic deadline while empty


@dataclass
class _SipSession:
    session_id: str
    room: str
    identity: str
    participant_sid: str
    status: str  # ringing | active | hangup
    ring_deadline: float
    sip_status_code: int | None = None
    reason: str | None = None

    def as_dict(self) -> dict:
        return {
            "session_id": self.session_id,
            "status": self.status,
            "sip_status_code": self.sip_status_code,
            "room": self.room,
            "identity": self.identity,
            "participant_sid": self.participant_sid,
            "reason": self.reason,
        }


@dataclass
class _Fault:
    method: str
    status: int
    code: str
    count: int | None
    hang: bool
    msg: str
    meta: dict[str, str]


class FakeLiveKit:
    """In-process LiveKit server double on loopback; see the module docstring."""

    def __init__(
        self,
        api_key: str = "devkey",
        api_secret: str = "secret-at-least-32-chars-long-xxxxxxxx",
        webhook_url: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        cloud: bool = False,
        webhook_retry_base: float = 0.05,
    ):
        self.api_key = api_key
        self.api_secret = api_secret
        self.webhook_url = webhook_url
        # False: the server config has no webhook section (or the Cloud project no webhook URL).
        self.webhooks_configured = True
        # (key, secret) the server signs webhooks with, when not the gateway's own pair.
        self.webhook_signing_key: tuple[str, str] | None = None
        self.cloud = cloud
        self.webhook_retry_base = webhook_retry_base
        self._host = host
        self._port = port
        self._verifier = TokenVerifier(api_key, api_secret)

        self._lock = threading.RLock()
        self._rooms: dict[str, _Room] = {}
        self._sessions: dict[str, _SipSession] = {}
        self._inbound_trunks: dict[str, proto_sip.SIPInboundTrunkInfo] = {}
        self._outbound_trunks: dict[str, proto_sip.SIPOutboundTrunkInfo] = {}
        self._rules: dict[str, proto_sip.SIPDispatchRuleInfo] = {}
        self._faults: list[_Fault] = []
        self._latency: dict[str, float] = {}
        self._join_log: list[dict] = []
        self._twirp_log: list[dict] = []
        self._webhook_log: list[dict] = []

        self._stopping = threading.Event()
        self._wh_queue: queue.Queue = queue.Queue()
        self._wh_idle = threading.Condition()
        self._wh_pending = 0
        self._server: BaseWSGIServer | None = None
        self._threads: list[threading.Thread] = []
        self._lifecycle_lock = threading.Lock()  # stop() may race with itself (timers, fixtures)

    # --- lifecycle --------------------------------------------------------

    def start(self) -> FakeLiveKit:
        self._server = server = make_server(
            self._host, self._port, self._wsgi, threaded=True, request_handler=_QuietHandler
        )
        self._port = server.server_port
        for target, name in (
            (lambda: server.serve_forever(poll_interval=REAPER_TICK), "fake-livekit-http"),
            (self._reaper_loop, "fake-livekit-reaper"),
            (self._webhook_loop, "fake-livekit-webhooks"),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop serving (idempotent); wakes injected hangs and drops undelivered webhooks."""
        with self._lifecycle_lock:
            self._stopping.set()
            self._wh_queue.put(None)
            if self._server is not None:
                self._server.shutdown()
                self._server.server_close()
                self._server = None
            for thread in self._threads:
                thread.join(timeout=5)
            self._threads.clear()

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._port}"

    # --- Python-side accessors -------------------------------------------

    def rooms(self) -> dict:
        with self._lock:
            return {name: self._room_dict(room) for name, room in self._rooms.items()}

    def participants(self, room: str) -> list[dict]:
        """Participants of ``room``; an empty list when the room does not exist."""
        with self._lock:
            r = self._rooms.get(room)
            return [self._participant_dict(p) for p in r.participants.values()] if r else []

    def seen_by(self, room: str, identity: str) -> list[str]:
        """The other participants ``identity``'s client is told about (its participant list and
        ParticipantConnected events): everyone in the room but itself and hidden participants."""
        with self._lock:
            r = self._rooms.get(room)
            if r is None or identity not in r.participants:
                return []
            return sorted(i for i, p in r.participants.items() if i != identity and not p.permission.hidden)

    def join_log(self) -> list[dict]:
        with self._lock:
            return [dict(e) for e in self._join_log]

    def twirp_log(self) -> list[dict]:
        with self._lock:
            return [dict(e) for e in self._twirp_log]

    def webhook_log(self) -> list[dict]:
        with self._lock:
            return [dict(e) for e in self._webhook_log]

    def wait_webhooks_idle(self, timeout: float = 5) -> bool:
        """Block until every queued webhook was delivered or given up; False on timeout."""
        with self._wh_idle:
            return self._wh_idle.wait_for(lambda: self._wh_pending == 0, timeout=timeout)

    # --- fault injection ---------------------------------------------------

    def inject_fault(
        self,
        method: str = "CreateRoom",
        status: int = 503,
        code: str = "unavailable",
        count: int | None = 1,
        hang: bool = False,
        msg: str = "injected fault",
        meta: dict[str, str] | None = None,
    ) -> None:
        """Make the next ``count`` calls of ``method`` ("*" = any) fail; None = forever.
        ``hang`` first sleeps HANG_SECONDS so the client times out. ``meta`` is the Twirp
        error metadata, e.g. ``{"sip_status_code": "486"}`` for a SIP failure."""
        with self._lock:
            self._faults.append(_Fault(method, status, code, count, hang, msg, meta or {}))

    def inject_latency(self, seconds: float, method: str = "*") -> None:
        with self._lock:
            self._latency[method] = seconds

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._latency.clear()

    def _take_fault(self, method: str) -> tuple[_Fault | None, float]:
        with self._lock:
            delay = self._latency.get(method, self._latency.get("*", 0.0))
            for fault in self._faults:
                if fault.method in ("*", method):
                    if fault.count is not None:
                        fault.count -= 1
                        if fault.count <= 0:
                            self._faults.remove(fault)
                    return fault, delay
            return None, delay

    # --- HTTP routing ------------------------------------------------------

    def _wsgi(self, environ, start_response):
        request = Request(environ)
        path = request.path
        if path.startswith("/twirp/"):
            response = self._handle_twirp(request)
        elif path.startswith("/_sim/"):
            response = self._handle_sim(request)
        elif path == "/":
            response = Response("OK", mimetype="text/plain")
        else:
            response = Response("404 page not found", status=404, mimetype="text/plain")
        return response(environ, start_response)

    def _handle_sim(self, request: Request) -> Response:
        parts = request.path.strip("/").split("/")[1:]
        method = request.method
        body = request.get_json(silent=True) or {}
        if parts == ["sip", "invite"] and method == "POST":
            status, payload = self.sip_invite(body)
            return _json(payload, status)
        if len(parts) == 2 and parts[0] == "sip" and method == "GET":
            with self._lock:
                session = self._sessions.get(parts[1])
                found = session.as_dict() if session else None
            return _json(found, 200) if found else _json({"error": "unknown session"}, 404)
        if len(parts) == 3 and parts[0] == "sip" and parts[2] == "bye" and method == "POST":
            ended = self.sip_bye(parts[1])
            return _json(ended, 200) if ended else _json({"error": "unknown session"}, 404)
        if parts == ["rtc", "join"] and method == "POST":
            status, payload = self.rtc_join(body.get("token") or "", body.get("name"), body.get("room"))
            return _json(payload, status)
        if parts == ["rtc", "leave"] and method == "POST":
            ok = self.rtc_leave(body.get("room", ""), body.get("identity", ""))
            return _json({"ok": True}) if ok else _json({"error": "participant not found"}, 404)
        if len(parts) == 4 and parts[0] == "rooms" and parts[2] == "seen-by" and method == "GET":
            return _json({"participants": self.seen_by(unquote(parts[1]), unquote(parts[3]))})
        if parts == ["rooms"] and method == "GET":
            return _json(self.rooms())
        if parts == ["log"] and method == "GET":
            return _json({"joins": self.join_log(), "twirp": self.twirp_log(), "webhooks": self.webhook_log()})
        if parts == ["faults"] and method == "POST":
            if "latency" in body:
                self.inject_latency(float(body["latency"]), body.get("method", "*"))
            else:
                allowed = {"method", "status", "code", "count", "hang", "msg", "meta"}
                self.inject_fault(**{k: v for k, v in body.items() if k in allowed})
            return _json({"ok": True})
        if parts == ["faults"] and method == "DELETE":
            self.clear_faults()
            return _json({"ok": True})
        return _json({"error": "no such endpoint"}, 404)

    # --- Twirp -------------------------------------------------------------

    def _handle_twirp(self, request: Request) -> Response:
        service, _, method = request.path[len("/twirp/") :].partition("/")
        entry = {"method": method, "ok": False, "code": None, "status": 200}
        try:
            response = self._twirp(request, service, method)
        except TwirpError as err:
            entry.update(code=err.code, status=err.status)
            body: dict[str, object] = {"code": err.code, "msg": err.msg}
            if err.meta:
                body["meta"] = err.meta
            response = _json(body, err.status)
        except _PlainUnauthorized as err:
            entry.update(code="unauthenticated", status=401)
            response = Response(str(err), status=401, mimetype="text/plain")
        else:
            entry["ok"] = True
        with self._lock:
            self._twirp_log.append(entry)
        return response

    def _twirp(self, request: Request, service: str, method: str) -> Response:
        fault, delay = self._take_fault(method)
        if delay:
            self._stopping.wait(delay)
        if fault is not None:
            if fault.hang:
                self._stopping.wait(HANG_SECONDS)
            raise TwirpError(fault.code, fault.msg, fault.meta, status=fault.status)

        claims = self._authenticate(request.headers.get("Authorization"))
        rpc = _RPCS.get(method)
        if request.method != "POST" or rpc is None or rpc.service != service:
            raise TwirpError("bad_route", f"no handler for path {request.path!r}")
        as_json = request.mimetype == "application/json"
        if not as_json and request.mimetype != "application/protobuf":
            raise TwirpError("bad_route", f"unexpected Content-Type: {request.mimetype!r}")
        try:
            if as_json:
                req = json_format.Parse(request.get_data() or b"{}", rpc.request(), ignore_unknown_fields=True)
            else:
                req = rpc.request.FromString(request.get_data())
        except (DecodeError, json_format.ParseError) as err:
            raise TwirpError("malformed", f"failed to parse request: {err}") from err
        if claims is None or not rpc.grant(claims, req):
            raise TwirpError("unauthenticated", "permissions denied")

        result = getattr(self, f"_rpc_{method}")(req)
        if as_json:
            return Response(
                json_format.MessageToJson(result, preserving_proto_field_name=True, indent=None),
                mimetype="application/json",
            )
        return Response(result.SerializeToString(), mimetype="application/protobuf")

    def _authenticate(self, header: str | None) -> Claims | None:
        """LiveKit's auth layer: no header passes (claims None), a bad one is a plain 401."""
        if not header:
            return None
        if not header.startswith("Bearer "):
            raise _PlainUnauthorized("invalid authorization header. Must start with Bearer ")
        try:
            return self._verifier.verify(header[len("Bearer ") :])
        except (jwt.PyJWTError, ValueError) as err:
            raise _PlainUnauthorized(f"invalid token: {err}") from err

    # --- RoomService -------------------------------------------------------

    def _rpc_CreateRoom(self, req: proto_room.CreateRoomRequest) -> proto_models.Room:
        if not req.name:
            raise TwirpError("invalid_argument", "room name is required")
        with self._lock:
            room = self._rooms.get(req.name) or self._create_room_locked(
                req.name,
                empty_timeout=req.empty_timeout,
                departure_timeout=req.departure_timeout,
                max_participants=req.max_participants,
                metadata=req.metadata,
            )
            return self._room_proto(room)

    def _rpc_ListRooms(self, req: proto_room.ListRoomsRequest) -> proto_room.ListRoomsResponse:
        with self._lock:
            rooms = [self._room_proto(r) for name, r in self._rooms.items() if not req.names or name in req.names]
        return proto_room.ListRoomsResponse(rooms=rooms)

    def _rpc_DeleteRoom(self, req: proto_room.DeleteRoomRequest) -> proto_room.DeleteRoomResponse:
        with self._lock:
            self._close_room_locked(self._room_locked(req.room), "room_deleted")
        return proto_room.DeleteRoomResponse()

    def _rpc_UpdateRoomMetadata(self, req: proto_room.UpdateRoomMetadataRequest) -> proto_models.Room:
        with self._lock:
            room = self._room_locked(req.room)
            room.info.metadata = req.metadata
            return self._room_proto(room)

    def _rpc_ListParticipants(self, req: proto_room.ListParticipantsRequest) -> proto_room.ListParticipantsResponse:
        with self._lock:
            room = self._room_locked(req.room)
            return proto_room.ListParticipantsResponse(participants=list(room.participants.values()))

    def _rpc_GetParticipant(self, req: proto_room.RoomParticipantIdentity) -> proto_models.ParticipantInfo:
        with self._lock:
            return self._copy(self._participant_locked(req.room, req.identity))

    def _rpc_RemoveParticipant(self, req: proto_room.RoomParticipantIdentity) -> proto_room.RemoveParticipantResponse:
        with self._lock:
            self._participant_locked(req.room, req.identity)
            self._remove_participant_locked(self._rooms[req.room], req.identity, "removed")
        return proto_room.RemoveParticipantResponse()

    def _rpc_UpdateParticipant(self, req: proto_room.UpdateParticipantRequest) -> proto_models.ParticipantInfo:
        with self._lock:
            participant = self._participant_locked(req.room, req.identity)
            if req.metadata:
                participant.metadata = req.metadata
            if req.name:
                participant.name = req.name
            for key, value in req.attributes.items():
                if value:
                    participant.attributes[key] = value
                else:  # LiveKit deletes attributes set to ""
                    participant.attributes.pop(key, None)
            if req.HasField("permission"):
                participant.permission.CopyFrom(req.permission)
            participant.version += 1
            return self._copy(participant)

    def _rpc_MutePublishedTrack(self, req: proto_room.MuteRoomTrackRequest) -> proto_room.MuteRoomTrackResponse:
        with self._lock:
            self._participant_locked(req.room, req.identity)
        raise TwirpError("not_found", "track not found")  # no media, so no tracks

    def _rpc_UpdateSubscriptions(
        self, req: proto_room.UpdateSubscriptionsRequest
    ) -> proto_room.UpdateSubscriptionsResponse:
        with self._lock:
            self._participant_locked(req.room, req.identity)
        return proto_room.UpdateSubscriptionsResponse()

    def _rpc_SendData(self, req: proto_room.SendDataRequest) -> proto_room.SendDataResponse:
        with self._lock:
            self._room_locked(req.room)
        return proto_room.SendDataResponse()

    def _rpc_MoveParticipant(self, req: proto_room.MoveParticipantRequest) -> proto_room.MoveParticipantResponse:
        self._require_cloud("MoveParticipant")
        with self._lock:
            participant = self._copy(self._participant_locked(req.room, req.identity))
            session = self._session_for_locked(participant.sid)
            self._remove_participant_locked(self._rooms[req.room], req.identity, None)
            destination = self._rooms.get(req.destination_room) or self._create_room_locked(req.destination_room)
            participant.state = _STATE.ACTIVE
            if session is not None:
                session.room = destination.info.name
            self._join_locked(destination, participant)
        return proto_room.MoveParticipantResponse()

    def _rpc_ForwardParticipant(
        self, req: proto_room.ForwardParticipantRequest
    ) -> proto_room.ForwardParticipantResponse:
        """Forwarding keeps the participant in its room and adds a copy to the destination."""
        self._require_cloud("ForwardParticipant")
        with self._lock:
            copy = self._copy(self._participant_locked(req.room, req.identity))
            copy.sid = _new_id("PA_")
            destination = self._rooms.get(req.destination_room) or self._create_room_locked(req.destination_room)
            self._join_locked(destination, copy)
        return proto_room.ForwardParticipantResponse()

    def _require_cloud(self, method: str) -> None:
        # Self-hosted livekit-server returns a plain Go error here; Twirp wraps any non-Twirp error
        # as ``internal`` (HTTP 500) with the error's text, so the client sees "not implemented"
        # and no ``unimplemented`` code (provider-facts.md, "MoveParticipant and ForwardParticipant").
        if not self.cloud:
            raise TwirpError("internal", "not implemented")

    # --- SIP service -------------------------------------------------------

    def _rpc_CreateSIPInboundTrunk(self, req: proto_sip.CreateSIPInboundTrunkRequest) -> proto_sip.SIPInboundTrunkInfo:
        trunk = proto_sip.SIPInboundTrunkInfo()
        trunk.CopyFrom(req.trunk)
        _validate_inbound_trunk(trunk)
        with self._lock:
            _check_trunk_conflicts(trunk, self._inbound_trunks.values())
            return self.seed_inbound_trunk(trunk)

    def seed_inbound_trunk(self, trunk: proto_sip.SIPInboundTrunkInfo) -> proto_sip.SIPInboundTrunkInfo:
        """Store an inbound trunk without LiveKit's checks (one made by hand, or before a conflict
        check existed): how a project ends up with two catch-all trunks."""
        trunk = self._copy(trunk)
        trunk.sip_trunk_id = trunk.sip_trunk_id or _new_id("ST_")
        trunk.created_at.GetCurrentTime()
        trunk.updated_at.GetCurrentTime()
        with self._lock:
            self._inbound_trunks[trunk.sip_trunk_id] = trunk
        return trunk

    def _rpc_ListSIPInboundTrunk(
        self, req: proto_sip.ListSIPInboundTrunkRequest
    ) -> proto_sip.ListSIPInboundTrunkResponse:
        with self._lock:
            items = [t for t in self._inbound_trunks.values() if self._trunk_listed(t, req)]
        return proto_sip.ListSIPInboundTrunkResponse(items=items)

    def _rpc_UpdateSIPInboundTrunk(self, req: proto_sip.UpdateSIPInboundTrunkRequest) -> proto_sip.SIPInboundTrunkInfo:
        with self._lock:
            before = self._inbound_trunks.get(req.sip_trunk_id)
            updated = self._update_stored(self._inbound_trunks, req.sip_trunk_id, req, "sip_trunk_id", "SIP trunk")
            try:
                _validate_inbound_trunk(updated)
                others = [t for t in self._inbound_trunks.values() if t.sip_trunk_id != updated.sip_trunk_id]
                _check_trunk_conflicts(updated, others)
            except TwirpError:
                if before is not None:  # always: _update_stored refuses an unknown trunk first
                    self._inbound_trunks[req.sip_trunk_id] = before
                raise
            return updated

    def _rpc_CreateSIPOutboundTrunk(
        self, req: proto_sip.CreateSIPOutboundTrunkRequest
    ) -> proto_sip.SIPOutboundTrunkInfo:
        trunk = proto_sip.SIPOutboundTrunkInfo()
        trunk.CopyFrom(req.trunk)
        trunk.sip_trunk_id = _new_id("ST_")
        trunk.created_at.GetCurrentTime()
        trunk.updated_at.GetCurrentTime()
        with self._lock:
            self._outbound_trunks[trunk.sip_trunk_id] = trunk
        return trunk

    def _rpc_ListSIPOutboundTrunk(
        self, req: proto_sip.ListSIPOutboundTrunkRequest
    ) -> proto_sip.ListSIPOutboundTrunkResponse:
        with self._lock:
            items = [t for t in self._outbound_trunks.values() if self._trunk_listed(t, req)]
        return proto_sip.ListSIPOutboundTrunkResponse(items=items)

    def _rpc_UpdateSIPOutboundTrunk(
        self, req: proto_sip.UpdateSIPOutboundTrunkRequest
    ) -> proto_sip.SIPOutboundTrunkInfo:
        return self._update_stored(self._outbound_trunks, req.sip_trunk_id, req, "sip_trunk_id", "SIP trunk")

    def _rpc_DeleteSIPTrunk(self, req: proto_sip.DeleteSIPTrunkRequest) -> proto_sip.SIPTrunkInfo:
        trunk: proto_sip.SIPInboundTrunkInfo | proto_sip.SIPOutboundTrunkInfo
        with self._lock:
            if req.sip_trunk_id in self._inbound_trunks:
                trunk, kind = self._inbound_trunks.pop(req.sip_trunk_id), proto_sip.SIPTrunkInfo.TRUNK_INBOUND
            elif req.sip_trunk_id in self._outbound_trunks:
                trunk, kind = self._outbound_trunks.pop(req.sip_trunk_id), proto_sip.SIPTrunkInfo.TRUNK_OUTBOUND
            else:
                raise TwirpError("not_found", f"SIP trunk {req.sip_trunk_id!r} not found")
        return proto_sip.SIPTrunkInfo(
            sip_trunk_id=trunk.sip_trunk_id, kind=kind, name=trunk.name, metadata=trunk.metadata
        )

    def _rpc_CreateSIPDispatchRule(self, req: proto_sip.CreateSIPDispatchRuleRequest) -> proto_sip.SIPDispatchRuleInfo:
        rule = proto_sip.SIPDispatchRuleInfo()
        if req.HasField("dispatch_rule"):
            rule.CopyFrom(req.dispatch_rule)
        else:  # the older flat request form
            rule.rule.CopyFrom(req.rule)
            rule.trunk_ids.extend(req.trunk_ids)
            rule.hide_phone_number = req.hide_phone_number
            rule.inbound_numbers.extend(req.inbound_numbers)
            rule.name = req.name
            rule.metadata = req.metadata
            rule.attributes.update(req.attributes)
            rule.room_preset = req.room_preset
            if req.HasField("room_config"):
                rule.room_config.CopyFrom(req.room_config)
        if rule.rule.WhichOneof("rule") is None:
            raise TwirpError("invalid_argument", "dispatch rule type is required")
        rule.sip_dispatch_rule_id = _new_id("SDR_")
        rule.created_at.GetCurrentTime()
        rule.updated_at.GetCurrentTime()
        with self._lock:
            self._rules[rule.sip_dispatch_rule_id] = rule
        return rule

    def _rpc_ListSIPDispatchRule(
        self, req: proto_sip.ListSIPDispatchRuleRequest
    ) -> proto_sip.ListSIPDispatchRuleResponse:
        with self._lock:
            items = [
                r
                for r in self._rules.values()
                if (not req.dispatch_rule_ids or r.sip_dispatch_rule_id in req.dispatch_rule_ids)
                and (not req.trunk_ids or not r.trunk_ids or set(r.trunk_ids) & set(req.trunk_ids))
            ]
        return proto_sip.ListSIPDispatchRuleResponse(items=items)

    def _rpc_UpdateSIPDispatchRule(self, req: proto_sip.UpdateSIPDispatchRuleRequest) -> proto_sip.SIPDispatchRuleInfo:
        return self._update_stored(self._rules, req.sip_dispatch_rule_id, req, "sip_dispatch_rule_id", "dispatch rule")

    def _rpc_DeleteSIPDispatchRule(self, req: proto_sip.DeleteSIPDispatchRuleRequest) -> proto_sip.SIPDispatchRuleInfo:
        with self._lock:
            rule = self._rules.pop(req.sip_dispatch_rule_id, None)
        if rule is None:
            raise TwirpError("not_found", f"dispatch rule {req.sip_dispatch_rule_id!r} not found")
        return rule

    def _rpc_CreateSIPParticipant(self, req: proto_sip.CreateSIPParticipantRequest) -> proto_sip.SIPParticipantInfo:
        raise TwirpError("unimplemented", "outbound SIP calls are not modelled by FakeLiveKit")

    def _rpc_TransferSIPParticipant(
        self, req: proto_sip.TransferSIPParticipantRequest
    ) -> proto_sip.TransferSIPParticipantResponse:
        with self._lock:
            self._participant_locked(req.room_name, req.participant_identity)
        raise TwirpError("unimplemented", "SIP REFER transfers are not modelled by FakeLiveKit")

    @staticmethod
    def _trunk_listed(
        trunk: proto_sip.SIPInboundTrunkInfo | proto_sip.SIPOutboundTrunkInfo,
        req: proto_sip.ListSIPInboundTrunkRequest | proto_sip.ListSIPOutboundTrunkRequest,
    ) -> bool:
        return (not req.trunk_ids or trunk.sip_trunk_id in req.trunk_ids) and (
            not req.numbers or bool(set(trunk.numbers) & set(req.numbers))
        )

    def _update_stored(self, store: dict[str, _Stored], key: str, req: Any, id_field: str, what: str) -> _Stored:
        """UpdateSIP*: the ``replace`` form swaps the whole object, ``update`` sets given fields
        (``req`` is any of the three Update*Request messages, which share that shape)."""
        with self._lock:
            current = store.get(key)
            if current is None:
                raise TwirpError("not_found", f"{what} {key!r} not found")
            action = req.WhichOneof("action")
            if action is None:
                raise TwirpError("invalid_argument", "either replace or update is required")
            updated = type(current)()
            if action == "replace":
                updated.CopyFrom(req.replace)
                setattr(updated, id_field, key)
                updated.created_at.CopyFrom(current.created_at)
            else:
                updated.CopyFrom(current)
                _apply_update(updated, req.update)
            updated.updated_at.GetCurrentTime()
            store[key] = updated
            return updated

    # --- simulated SIP ingress ----------------------------------------------

    def sip_invite(self, invite: dict) -> tuple[int, dict]:
        """What Twilio's ``<Dial><Sip>`` does to LiveKit; returns (HTTP status, JSON body)."""
        uri = invite.get("uri")
        caller = invite.get("from")
        if not uri or not caller:
            return 400, {"error": "uri and from are required"}
        called, uri_headers = _parse_sip_uri(uri)
        headers = {**uri_headers, **(invite.get("headers") or {})}
        with self._lock:
            trunk = self._match_trunk_locked(called, caller, invite.get("username"), invite.get("password"))
            if isinstance(trunk, int):
                return trunk, {"sip_status_code": trunk}
            rule = self._match_rule_locked(trunk.sip_trunk_id, called, caller)
            if rule is None:
                return 404, {"sip_status_code": 404}
            room_name = self._dispatch_room_name(rule.rule, caller, called)
            # A room the rule creates takes the rule's room_config (timeouts, limit, metadata).
            config = rule.room_config
            room = self._rooms.get(room_name) or self._create_room_locked(
                room_name,
                empty_timeout=config.empty_timeout,
                departure_timeout=config.departure_timeout,
                max_participants=config.max_participants,
                metadata=config.metadata,
            )

            identity = f"sip_{caller}"
            answered = any(p.identity != identity for p in room.participants.values())
            status = "active" if answered else "ringing"
            call_id = _new_id("SCL_")
            attributes = dict(rule.attributes)
            attributes.update(
                {
                    "sip.callID": call_id,
                    "sip.trunkID": trunk.sip_trunk_id,
                    "sip.ruleID": rule.sip_dispatch_rule_id,
                    "sip.phoneNumber": caller,
                    "sip.trunkPhoneNumber": called,
                    "sip.callStatus": status,
                }
            )
            if invite.get("twilio_call_sid"):
                attributes["sip.twilio.callSid"] = invite["twilio_call_sid"]
            if invite.get("twilio_account_sid"):
                attributes["sip.twilio.accountSid"] = invite["twilio_account_sid"]
            by_lower = {name.lower(): value for name, value in headers.items()}
            for header, attribute in trunk.headers_to_attributes.items():
                if header.lower() in by_lower:
                    attributes[attribute] = by_lower[header.lower()]

            participant = self._new_participant(
                identity, name=f"Phone {caller}", kind=_KIND.SIP, metadata=rule.metadata, attributes=attributes
            )
            ringing = _seconds(trunk.ringing_timeout) if trunk.HasField("ringing_timeout") else 0
            session = _SipSession(
                session_id=call_id,
                room=room_name,
                identity=identity,
                participant_sid=participant.sid,
                status=status,
                ring_deadline=time.monotonic() + (ringing or DEFAULT_RINGING_TIMEOUT),
                sip_status_code=200 if answered else None,
            )
            self._sessions[call_id] = session
            self._join_locked(room, participant)
            return 200, {
                "session_id": call_id,
                "room": room_name,
                "identity": identity,
                "participant_sid": participant.sid,
                "status": session.status,
            }

    def sip_bye(self, session_id: str) -> dict | None:
        """The Twilio side hung up. Idempotent; None for an unknown session."""
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            if session.status != "hangup":
                room = self._rooms.get(session.room)
                if room is not None and session.identity in room.participants:
                    self._remove_participant_locked(room, session.identity, "bye")
                else:
                    self._end_session_locked(session, "bye")
            return session.as_dict()

    def _match_trunk_locked(self, called: str, caller: str, username, password):
        """The inbound trunk accepting this call, or the SIP status rejecting it."""
        candidates = [
            t
            for t in self._inbound_trunks.values()
            if (not t.numbers or called in t.numbers) and (not t.allowed_numbers or caller in t.allowed_numbers)
        ]
        candidates.sort(key=lambda t: not t.numbers)  # a trunk naming the number wins
        if not candidates:
            return 404
        if not candidates[0].numbers and len(candidates) > 1:
            # livekit/protocol MatchTrunk: "Multiple default SIP Trunks matched" -> the INVITE fails.
            return 503
        for trunk in candidates:
            if not trunk.auth_username or (trunk.auth_username == username and trunk.auth_password == password):
                return trunk
        return 401

    def _match_rule_locked(self, trunk_id: str, called: str, caller: str):
        rules = [
            r
            for r in self._rules.values()
            if (not r.trunk_ids or trunk_id in r.trunk_ids)
            and (not r.numbers or called in r.numbers)
            and (not r.inbound_numbers or caller in r.inbound_numbers)
        ]
        rules.sort(key=lambda r: not r.trunk_ids)  # a rule naming the trunk wins
        return rules[0] if rules else None

    @staticmethod
    def _dispatch_room_name(rule: proto_sip.SIPDispatchRule, caller: str, called: str) -> str:
        kind = rule.WhichOneof("rule")
        if kind == "dispatch_rule_direct":
            return rule.dispatch_rule_direct.room_name
        if kind == "dispatch_rule_individual":
            individual = rule.dispatch_rule_individual
            name = f"{individual.room_prefix}_{caller}"
            return name if individual.no_randomness else f"{name}_{_new_id('', 8)}"
        callee = rule.dispatch_rule_callee
        name = f"{callee.room_prefix}_{called}"
        return f"{name}_{_new_id('', 8)}" if callee.randomize else name

    # --- simulated browser participants -------------------------------------

    def rtc_join(self, token: str, name: str | None = None, room: str | None = None) -> tuple[int, dict]:
        """Validate a participant token like the server does on a client join.
        ``room``, when given, is the room the client means to join."""
        raw = _unverified_claims(token) or {}
        entry = {
            "identity": raw.get("sub"),
            "room": (raw.get("video") or {}).get("room") or room,
            "ok": False,
            "error": None,
            "grants": {"video": raw.get("video"), "sip": raw.get("sip")} if raw else None,
        }
        error = None
        try:
            claims = self._verifier.verify(token)
        except (jwt.PyJWTError, ValueError) as err:
            error = f"invalid token: {err}"
        else:
            video = _video(claims)
            if not video.room_join:
                error = "permissions denied: token lacks roomJoin"
            elif not video.room:
                error = "token names no room"
            elif room is not None and room != video.room:
                error = f"token is for room {video.room!r}, not {room!r}"
            elif not claims.identity:
                error = "token has no identity"
        if error is not None:
            entry["error"] = error
            with self._lock:
                self._join_log.append(entry)
            return 401, {"error": error}

        with self._lock:
            self._join_log.append({**entry, "ok": True})
            target = self._rooms.get(video.room) or self._create_room_locked(video.room)
            participant = self._new_participant(
                claims.identity,
                name=name or claims.name,
                kind=_KIND.STANDARD,
                metadata=claims.metadata,
                attributes=claims.attributes or {},
            )
            participant.permission.can_publish = video.can_publish
            participant.permission.can_subscribe = video.can_subscribe
            participant.permission.can_publish_data = video.can_publish_data
            participant.permission.hidden = bool(video.hidden)
            self._join_locked(target, participant)
            return 200, {"participant_sid": participant.sid, "identity": claims.identity, "room": target.info.name}

    def rtc_leave(self, room: str, identity: str) -> bool:
        with self._lock:
            r = self._rooms.get(room)
            if r is None or identity not in r.participants:
                return False
            self._remove_participant_locked(r, identity, "leave")
            return True

    # --- state transitions (all called with the lock held) --------------------

    def _create_room_locked(
        self,
        name: str,
        empty_timeout: int = 0,
        departure_timeout: int = 0,
        max_participants: int = 0,
        metadata: str = "",
    ) -> _Room:
        now = time.time()
        info = proto_models.Room(
            sid=_new_id("RM_"),
            name=name,
            empty_timeout=empty_timeout or DEFAULT_EMPTY_TIMEOUT,
            departure_timeout=departure_timeout or DEFAULT_DEPARTURE_TIMEOUT,
            max_participants=max_participants,
            creation_time=int(now),
            creation_time_ms=int(now * 1000),
            metadata=metadata,
        )
        room = _Room(info=info, close_at=time.monotonic() + info.empty_timeout)
        self._rooms[name] = room
        self._emit_locked("room_started", room)
        return room

    def _close_room_locked(self, room: _Room, reason: str) -> None:
        for identity in list(room.participants):
            self._remove_participant_locked(room, identity, reason)
        del self._rooms[room.info.name]
        self._emit_locked("room_finished", room)

    @staticmethod
    def _new_participant(
        identity: str, name: str, kind: proto_models.ParticipantInfo.Kind, metadata: str, attributes: dict
    ) -> proto_models.ParticipantInfo:
        now = time.time()
        participant = proto_models.ParticipantInfo(
            sid=_new_id("PA_"),
            identity=identity,
            name=name,
            kind=kind,
            state=_STATE.ACTIVE,
            metadata=metadata,
            joined_at=int(now),
            joined_at_ms=int(now * 1000),
        )
        participant.attributes.update(attributes)
        return participant

    def _join_locked(self, room: _Room, participant: proto_models.ParticipantInfo) -> None:
        """Add a participant (replacing a duplicate identity) and answer ringing calls."""
        if participant.identity in room.participants:
            self._remove_participant_locked(room, participant.identity, "duplicate_identity")
        room.participants[participant.identity] = participant
        room.close_at = None
        self._emit_locked("participant_joined", room, participant)
        if participant.permission.hidden or (
            participant.kind == _KIND.STANDARD and not participant.permission.can_publish
        ):
            return  # nobody the caller could hear: a ringing SIP call is not answered by it
        for session in self._sessions.values():
            if (
                session.status == "ringing"
                and session.room == room.info.name
                and any(p.sid != session.participant_sid for p in room.participants.values())
            ):
                session.status = "active"
                session.sip_status_code = 200
                self._set_call_status_locked(session, "active")

    def _remove_participant_locked(self, room: _Room, identity: str, reason: str | None) -> None:
        """Remove and announce a participant; ``reason`` None moves a call instead of ending it."""
        participant = room.participants[identity]
        session = self._session_for_locked(participant.sid)
        if session is not None and reason is not None:
            self._end_session_locked(session, reason)
        del room.participants[identity]
        left = self._copy(participant)
        left.state = _STATE.DISCONNECTED
        # As LiveKit reports it in participant_left: why the participant went away.
        left.disconnect_reason = _DISCONNECT_REASONS.get(reason or "", proto_models.DisconnectReason.UNKNOWN_REASON)
        if not room.participants:
            room.close_at = time.monotonic() + room.info.departure_timeout
        self._emit_locked("participant_left", room, left)

    def _end_session_locked(self, session: _SipSession, reason: str) -> None:
        if session.status == "ringing":
            session.sip_status_code = 487 if reason == "bye" else 486
        session.status = "hangup"
        session.reason = reason
        self._set_call_status_locked(session, "hangup")

    def _set_call_status_locked(self, session: _SipSession, status: str) -> None:
        room = self._rooms.get(session.room)
        participant = room.participants.get(session.identity) if room else None
        if participant is not None and participant.sid == session.participant_sid:
            participant.attributes["sip.callStatus"] = status

    def _session_for_locked(self, participant_sid: str) -> _SipSession | None:
        for session in self._sessions.values():
            if session.participant_sid == participant_sid and session.status != "hangup":
                return session
        return None

    def _room_locked(self, name: str) -> _Room:
        room = self._rooms.get(name)
        if room is None:
            raise TwirpError("not_found", "requested room does not exist")
        return room

    def _participant_locked(self, room: str, identity: str) -> proto_models.ParticipantInfo:
        participant = self._room_locked(room).participants.get(identity)
        if participant is None:
            raise TwirpError("not_found", "participant does not exist")
        return participant

    def _reaper_loop(self) -> None:
        """Ends calls nobody answered and closes rooms left empty past their timeout."""
        while not self._stopping.wait(REAPER_TICK):
            now = time.monotonic()
            with self._lock:
                for session in list(self._sessions.values()):
                    if session.status == "ringing" and session.ring_deadline <= now:
                        room = self._rooms.get(session.room)
                        if room is not None and session.identity in room.participants:
                            self._remove_participant_locked(room, session.identity, "ringing_timeout")
                        else:
                            self._end_session_locked(session, "ringing_timeout")
                for room in list(self._rooms.values()):
                    if room.close_at is not None and room.close_at <= now:
                        self._close_room_locked(room, "room_deleted")

    # --- snapshots ------------------------------------------------------------

    @staticmethod
    def _copy(message: _M) -> _M:
        copy = type(message)()
        copy.CopyFrom(message)
        return copy

    @staticmethod
    def _room_proto(room: _Room) -> proto_models.Room:
        info = FakeLiveKit._copy(room.info)
        info.num_participants = len(room.participants)
        return info

    @staticmethod
    def _participant_dict(p: proto_models.ParticipantInfo) -> dict:
        return {
            "identity": p.identity,
            "sid": p.sid,
            "kind": _KIND.Name(p.kind).lower(),
            "attributes": dict(p.attributes),
            "name": p.name,
            "metadata": p.metadata,
            "hidden": p.permission.hidden,
        }

    def _room_dict(self, room: _Room) -> dict:
        return {
            "sid": room.info.sid,
            "metadata": room.info.metadata,
            "empty_timeout": room.info.empty_timeout,
            "departure_timeout": room.info.departure_timeout,
            "participants": [self._participant_dict(p) for p in room.participants.values()],
        }

    # --- webhooks -------------------------------------------------------------

    def _emit_locked(self, event: str, room: _Room, participant: proto_models.ParticipantInfo | None = None) -> None:
        """Queue a webhook; queueing under the lock keeps events in state order."""
        url = self.webhook_url
        if not url or not self.webhooks_configured:
            return
        message = proto_webhook.WebhookEvent(
            event=event, id=_new_id("EV_"), created_at=int(time.time()), room=self._room_proto(room)
        )
        if participant is not None:
            message.participant.CopyFrom(participant)
        with self._wh_idle:
            self._wh_pending += 1
        self._wh_queue.put((url, message))

    def _webhook_loop(self) -> None:
        while True:
            item = self._wh_queue.get()
            if item is None:
                return
            try:
                if not self._stopping.is_set():
                    self._deliver(*item)
            finally:
                with self._wh_idle:
                    self._wh_pending -= 1
                    self._wh_idle.notify_all()

    def _deliver(self, url: str, event: proto_webhook.WebhookEvent) -> None:
        """POST one event as LiveKit does, retrying connection errors, 429 and 5xx."""
        body = json_format.MessageToJson(event, indent=None)
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        key, secret = self.webhook_signing_key or (self.api_key, self.api_secret)
        token = AccessToken(key, secret).with_ttl(WEBHOOK_TOKEN_TTL).with_sha256(digest).to_jwt()
        request = urllib.request.Request(
            url,
            data=body.encode(),
            method="POST",
            headers={"Content-Type": "application/webhook+json", "User-Agent": "LiveKit", "Authorization": token},
        )
        for attempt in range(WEBHOOK_MAX_RETRIES + 1):
            try:
                with urllib.request.urlopen(request, timeout=WEBHOOK_HTTP_TIMEOUT) as response:
                    status = response.status
            except urllib.error.HTTPError as err:
                status = err.code
            except OSError:
                status = None
            with self._lock:
                self._webhook_log.append(
                    {
                        "event": event.event,
                        "id": event.id,
                        "room": event.room.name,
                        "identity": event.participant.identity or None,
                        "status": status,
                        "attempt": attempt + 1,
                    }
                )
            retryable = status is None or status == 429 or status >= 500
            if not retryable or attempt == WEBHOOK_MAX_RETRIES:
                return
            if self._stopping.wait(self.webhook_retry_base * 2**attempt):
                return
