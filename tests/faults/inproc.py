"""An in-process gateway driven only through its HTTP surface with the Flask test client.

No job runner and no reachable provider (their URLs point at a closed port): every request
is answered from the database alone, which makes it fast enough for fuzzing and exact enough
for before/after snapshots. Webhooks are signed like Twilio (RequestValidator) and LiveKit
(JWT with the body's sha256) sign them.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from urllib.parse import urlencode

from google.protobuf import json_format
from livekit import api
from livekit.protocol import models as lk_models
from livekit.protocol import webhook as lk_webhook
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from gateway import create_app
from gateway.adapters.store.models import Call, Leg, Transfer
from gateway.bootstrap import build
from gateway.config import Settings

TOKEN = "fault-suite-auth-token"
ORIGIN = "https://gw.example.com"
LK_KEY, LK_SECRET = "lk-key", "lk-secret-" + "s" * 40
ADMIN = "admin-fault-token"
CALLER = "+15557654321"
NUMBER = "+15550100000"
SIP_KIND = lk_models.ParticipantInfo.Kind.SIP


def settings_for(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        public_base_url=ORIGIN,
        twilio_account_sid="AC" + "1" * 32,
        twilio_auth_token=TOKEN,
        twilio_phone_number=NUMBER,
        twilio_api_base_url="http://127.0.0.1:9",
        livekit_url="http://127.0.0.1:9",
        livekit_api_key=LK_KEY,
        livekit_api_secret=LK_SECRET,
        livekit_sip_host="sip.example",
        run_jobs=False,
        secret_key="x",
        admin_token=ADMIN,
        provider_timeout_s=0.5,
    )


def twilio_signature(url: str, form: dict, token: str = TOKEN) -> str:
    return RequestValidator(token).compute_signature(url, form)


def livekit_body(
    event: str,
    room: str,
    *,
    identity: str = "",
    kind: int = 0,
    attributes: dict | None = None,
    event_id: str = "EV_1",
) -> str:
    message = lk_webhook.WebhookEvent(event=event, id=event_id, created_at=1, room=lk_models.Room(name=room))
    if identity:
        message.participant.CopyFrom(
            lk_models.ParticipantInfo(identity=identity, kind=kind, attributes=attributes or {})
        )
    return json_format.MessageToJson(message, indent=None)


def livekit_auth(body: str, *, key: str = LK_KEY, secret: str = LK_SECRET, ttl_s: int = 300) -> str:
    import datetime

    digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
    return api.AccessToken(key, secret).with_ttl(datetime.timedelta(seconds=ttl_s)).with_sha256(digest).to_jwt()


@dataclass
class Harness:
    database_url: str
    app: object = None
    services: object = None
    client: object = None
    credentials: dict = field(default_factory=dict)

    def __post_init__(self):
        self.services = build(settings_for(self.database_url))
        self.app = create_app(services=self.services)
        self.client = self.app.test_client()

    @property
    def store(self):
        return self.services.gw.store

    def close(self) -> None:
        self.services.stop()
        self.store.engine.dispose()

    # ------------------------------------------------------------ requests
    def twilio(
        self, path: str, form: dict, *, query: dict | None = None, sign: bool = True, signature: str | None = None
    ):
        target = path + ("?" + urlencode(query) if query else "")
        headers = {}
        if signature is not None:
            headers["X-Twilio-Signature"] = signature
        elif sign:
            headers["X-Twilio-Signature"] = twilio_signature(ORIGIN + target, form)
        return self.client.post(target, data=form, headers=headers)

    def livekit(self, body: str, auth: str | None = None):
        return self.client.post(
            "/livekit/webhook",
            data=body,
            content_type="application/webhook+json",
            headers={"Authorization": livekit_auth(body) if auth is None else auth},
        )

    def api(self, method: str, path: str, agent: str | None = None, json_body=None, **kw):
        headers = {"Authorization": f"Bearer {self.credentials[agent]}"} if agent else {}
        return self.client.open(path, method=method, json=json_body, headers=headers, **kw)

    def add_agent(
        self, agent_id: str, *, phone: str | None = None, browser: bool = True, status: str = "available"
    ) -> str:
        self.credentials[agent_id] = self.services.agents.add(agent_id, agent_id.title(), phone, browser, status)
        return self.credentials[agent_id]

    # ------------------------------------------------------------- reading
    def call_by_sid(self, sid: str) -> Call:
        return self.store.read(lambda s: s.execute(select(Call).where(Call.twilio_sid == sid)).scalar_one())

    def legs(self, call_id: str) -> list[Leg]:
        return self.store.read(
            lambda s: list(s.execute(select(Leg).where(Leg.call_id == call_id).order_by(Leg.created_at)).scalars())
        )

    def transfers(self, call_id: str) -> list[Transfer]:
        return self.store.read(lambda s: list(s.execute(select(Transfer).where(Transfer.call_id == call_id)).scalars()))

    def snapshot(self, exclude: tuple = ()) -> dict:
        """Every row of calls, legs and transfers, every column (but ``exclude``)."""

        def read(s):
            out = {}
            for model in (Call, Leg, Transfer):
                cols = [c.name for c in model.__table__.columns if c.name not in exclude]
                rows = s.execute(select(model)).scalars()
                out[model.__tablename__] = sorted(tuple(str(getattr(r, c)) for c in cols) for r in rows)
            return out

        return self.store.read(read)

    # ------------------------------------------------------- building state
    def inbound_call(self, sid: str, caller: str = CALLER):
        form = {
            "CallSid": sid,
            "From": caller,
            "To": NUMBER,
            "CallStatus": "ringing",
            "AccountSid": "AC" + "1" * 32,
            "Direction": "inbound",
        }
        reply = self.twilio("/twilio/voice", form)
        assert reply.status_code == 200, reply.data
        return self.call_by_sid(sid)

    def joined(
        self,
        room: str,
        identity: str,
        *,
        kind: int = 0,
        attributes: dict | None = None,
        event_id: str | None = None,
    ):
        body = livekit_body(
            "participant_joined",
            room,
            identity=identity,
            kind=kind,
            attributes=attributes,
            event_id=event_id or f"EV_join_{room}_{identity}",
        )
        reply = self.livekit(body)
        assert reply.status_code == 204, reply.data
        return reply

    def connected_call(self, sid: str, agent: str, caller: str = CALLER) -> Call:
        """A caller talking to ``agent`` (browser): voice webhook, accept, both joined the room."""
        call = self.inbound_call(sid, caller)
        reply = self.api("POST", f"/api/calls/{call.id}/accept", agent)
        assert reply.status_code == 200, reply.data
        self.joined(call.room, agent)
        self.joined(call.room, f"sip_{caller}", kind=SIP_KIND, attributes={"sip.twilio.callSid": "CA" + "d" * 32})
        call = self.call_by_sid(sid)
        assert call.state == "connected", call.state
        return call

    def warm_transfer(self, call: Call, source: str, target: str) -> dict:
        reply = self.api(
            "POST", "/api/transfer/initiate", source, {"call_id": call.id, "target_agent_id": target, "mode": "warm"}
        )
        assert reply.status_code == 202, reply.data
        return reply.json["transfer"]


def json_dumps(value) -> str:
    return json.dumps(value, separators=(",", ":"))
