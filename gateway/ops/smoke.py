"""``doctor --call +1…``: one real call through every hop a real deployment depends on.

The gateway calls a phone the operator holds, as it calls an agent: Twilio requests the voice
webhook, the phone hears a whisper and is asked to press 1, the call is bridged by SIP into a
LiveKit room (same SIP host, trunk credentials and dispatch rule as every call), LiveKit sends its
webhook, and the test ends the call. Each hop is printed as it happens, from what the gateway's
own endpoints recorded (in the database, so any web process may have served them) and from what
Twilio's and LiveKit's APIs say; the first hop that does not happen gets the fix.

What it proves that ``doctor``'s one-request checks cannot: that Twilio reaches PUBLIC_BASE_URL
and its signatures validate there, that LiveKit accepts the SIP credentials and routes the call to
a room, and that LiveKit's webhooks reach the gateway signed with the key it holds.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from livekit.protocol.models import ParticipantInfo
from sqlalchemy import select

import twiml
from gateway.adapters.store import Store
from gateway.adapters.store.models import TimelineEntry
from gateway.ops import checks
from gateway.ops.providers import describe_error

TOKEN_PREFIX = "smoke-"
TIMELINE_PREFIX = "smoke:"
RING_S = 30  # how long the operator's phone rings
SIP_RING_S = 30  # how long the SIP bridge may ring in LiveKit (nobody else is in the room)
WEBHOOK_WAIT_S = 8.0  # after the SIP participant is in the room, how long a webhook may take
POLL_S = 0.25
FINAL_GRACE_S = 5.0  # after Twilio says the call is over, how long its status callback may take
FINAL = ("completed", "busy", "no-answer", "failed", "canceled")
_SIP_KIND = ParticipantInfo.Kind.SIP

ANNOUNCEMENT = (
    "This is a test call from your warm transfer gateway. It checks the path an agent's phone takes. "
    "Listen to this message to the end."
)
PROMPT = "Press 1 to test the bridge into LiveKit."
BRIDGING = "Bridging into a LiveKit room. You will hear ringing while the test checks the room."
ENDED = "Test complete. You can hang up now. Goodbye."

# (hop, what the operator reads), in the order they happen.
HOPS = [
    ("placed", "call placed"),
    ("answered", "phone answered"),
    ("voice_webhook", "voice webhook reached"),
    ("whisper_heard", "whisper heard"),
    ("key_pressed", "key pressed"),
    ("sip_bridge", "SIP bridge into the room"),
    ("livekit_webhook", "LiveKit webhook received"),
    ("hangup", "hang-up seen"),
]
LABEL = dict(HOPS)


def probe_of_room(room: str, prefix: str) -> str | None:
    """The probe id of a smoke-test room (``<prefix>_smoke-<id>``), None for any other room."""
    head = f"{prefix}_{TOKEN_PREFIX}"
    return room[len(head) :] if room.startswith(head) else None


def hop_url(origin: str, hop: str, **query: Any) -> str:
    """The public URL of one of the smoke call's webhooks (web: ``smoke_web``)."""
    return f"{origin.rstrip('/')}/twilio/smoke/{hop}?{urlencode(query)}"


def record_hop(store: Store, probe: str, hop: str, **detail: Any) -> None:
    """What a gateway endpoint saw, for the command to read (possibly in another process)."""
    store.run(lambda session: store.record(session, TIMELINE_PREFIX + probe, hop, **detail))


def recorded_hops(store: Store, probe: str) -> list[tuple[str, dict]]:
    return store.read(
        lambda s: [
            (kind, dict(detail or {}))
            for kind, detail in s.execute(
                select(TimelineEntry.kind, TimelineEntry.detail)
                .where(TimelineEntry.call_id == TIMELINE_PREFIX + probe)
                .order_by(TimelineEntry.id)
            ).all()
        ]
    )


@dataclass
class SmokeResult:
    seen: dict[str, tuple[float, str]] = field(default_factory=dict)  # hop -> (seconds, detail)
    failed: str | None = None
    fix: str = ""

    @property
    def ok(self) -> bool:
        return self.failed is None

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1


class _Run:
    """One smoke call, polled until it is over."""

    def __init__(self, services, phone: str, out: Callable[[str], Any], timeout_s: float):
        self.gw, self.phone, self.out, self.timeout_s = services.gw, phone, out, timeout_s
        self.probe = secrets.token_hex(5)
        self.room = f"{self.gw.settings.livekit_room_prefix}_{TOKEN_PREFIX}{self.probe}"
        self.result = SmokeResult()
        self.started = time.monotonic()
        self.sid: str | None = None
        self.twilio_status = "queued"
        self.dial: dict | None = None
        self.keys: str | None = None
        self.ending_at: float | None = None
        self.bridge_seen_at: float | None = None
        self._recorded = 0

    # ------------------------------------------------------------- hops
    def see(self, hop: str, detail: str = "") -> None:
        if hop in self.result.seen:
            return
        elapsed = time.monotonic() - self.started
        self.result.seen[hop] = (elapsed, detail)
        self.out(f"  +{elapsed:5.1f} s  {LABEL[hop]:<26} {detail}".rstrip())

    def run(self) -> SmokeResult:
        origin = self.gw.urls.origin
        self.out(f"Test call to {self.phone} (room {self.room}); answer it, listen, press 1 when asked.")
        try:
            self.sid = self.gw.telephony.place_call(
                to=self.phone,
                url=hop_url(origin, "answer", probe=self.probe),
                status_callback=hop_url(origin, "status", probe=self.probe),
                timeout_s=RING_S,
            )
        except Exception as exc:
            return self.fail("placed", f"Twilio refused the call: {describe_error(exc)}")
        self.see("placed", self.sid)
        deadline = self.started + self.timeout_s
        over_at = None
        while time.monotonic() < deadline:
            self.poll()
            if "hangup" in self.result.seen:
                break
            if self.twilio_status in FINAL:
                over_at = over_at or time.monotonic()
                if time.monotonic() - over_at > FINAL_GRACE_S:
                    break
            time.sleep(POLL_S)
        if "hangup" not in self.result.seen and self.twilio_status not in FINAL:
            self.end_call()  # out of time: do not leave the operator's phone on the line
        return self.verdict()

    def poll(self) -> None:
        hops = recorded_hops(self.gw.store, self.probe)
        for kind, detail in hops[self._recorded :]:
            self.recorded(kind, detail)
        self._recorded = len(hops)
        self.twilio_status = self.fetch_status() or self.twilio_status
        if self.twilio_status in ("in-progress", "completed"):
            self.see("answered", "(Twilio's call record)")
        if "key_pressed" in self.result.seen and "sip_bridge" not in self.result.seen:
            sip = [p for p in self.participants() if p.kind == _SIP_KIND]
            if sip:
                self.see("sip_bridge", f"{sip[0].identity} in {self.room} (LiveKit API)")
        if "sip_bridge" in self.result.seen and self.bridge_seen_at is None:
            self.bridge_seen_at = time.monotonic()
        bridged_long_enough = self.bridge_seen_at and time.monotonic() - self.bridge_seen_at > WEBHOOK_WAIT_S
        if self.ending_at is None and ("livekit_webhook" in self.result.seen or bridged_long_enough):
            self.end_call()

    def recorded(self, kind: str, detail: dict) -> None:
        if kind == "voice_webhook":
            self.see("answered", "(the voice webhook came first)")  # Twilio fetches it on answer
            self.see("voice_webhook", f"AnsweredBy={detail['answered_by']}" if detail.get("answered_by") else "")
        elif kind == "whisper_heard":
            self.see("whisper_heard")
        elif kind == "key_pressed":
            self.keys = detail.get("digits") or ""
            if self.keys == "1":
                self.see("key_pressed", "1")
        elif kind == "dial_ended":
            self.dial = detail
        elif kind == "livekit_webhook":
            # A participant_joined in the test's room also proves the SIP bridge, if the API poll
            # has not shown it yet.
            self.see("sip_bridge", f"{detail.get('identity')} in {self.room} (LiveKit webhook)")
            self.see("livekit_webhook", f"{detail.get('event')} {detail.get('identity') or ''}".strip())
        elif kind == "status":
            status = detail.get("status", "")
            if status in ("in-progress", "answered"):
                self.see("answered", "(status callback)")
            if status in FINAL:
                self.twilio_status = status
                if status == "completed":
                    self.see("hangup", "status callback: completed")

    def participants(self) -> list:
        try:
            return self.gw.rooms.list_participants(self.room)
        except Exception:
            return []

    def fetch_status(self) -> str | None:
        try:
            return self.gw.telephony.client.calls(self.sid).fetch().status
        except Exception:
            return None

    def end_call(self) -> None:
        self.ending_at = time.monotonic()
        try:
            if self.twilio_status in ("in-progress", "ringing", "queued"):
                self.gw.telephony.play(self.sid, twiml.goodbye(ENDED))
        except Exception:
            pass

    # ---------------------------------------------------------- verdict
    def fail(self, hop: str, fix: str) -> SmokeResult:
        self.result.failed, self.result.fix = hop, fix
        return self.report()

    def verdict(self) -> SmokeResult:
        for hop, _label in HOPS:
            if hop not in self.result.seen:
                return self.fail(hop, self.fix_for(hop))
        return self.report()

    def report(self) -> SmokeResult:
        for hop, label in HOPS:
            if hop in self.result.seen:
                continue
            mark = "FAILED" if hop == self.result.failed else "not reached"
            self.out(f"  {'':>8}  {label:<26} {mark}")
        if self.result.ok:
            self.out("every hop worked: this deployment can take real calls")
        else:
            self.out(f"first failing hop: {LABEL.get(self.result.failed or '', '?')}\nfix: {self.result.fix}")
        return self.result

    def fix_for(self, hop: str) -> str:
        origin = self.gw.settings.public_origin
        status = self.twilio_status
        if hop == "answered":
            if status == "failed":
                return (
                    f"Twilio could not place the call to {self.phone}: check the number, and the account's voice "
                    "geographic permissions (and, on a trial account, that the number is verified)"
                )
            return f"the phone did not answer (Twilio: {status}); answer within {RING_S} s and run the test again"
        if hop == "voice_webhook":
            return (
                f"Twilio did not reach {origin}/twilio/smoke/answer, or the gateway refused its signature: "
                "PUBLIC_BASE_URL must be this deployment's public https origin (the one Twilio calls), and behind "
                "a proxy TRUSTED_PROXY_HOPS must match; a 403 'invalid Twilio signature' in the app's log means "
                "the URLs differ. Twilio's console (Monitor > Errors) names the failed request"
            )
        if hop == "whisper_heard":
            return "the call ended during the announcement: stay on the line until you are asked to press 1"
        if hop == "key_pressed":
            if self.keys:
                return f"key {self.keys!r} was pressed: press 1 when asked"
            return "no key was pressed after the prompt: press 1 when asked (keypad tones must reach Twilio)"
        if hop == "sip_bridge":
            return self._sip_fix()
        if hop == "livekit_webhook":
            return checks.WEBHOOK_FIX.format(origin=origin)
        if hop == "hangup":
            return (
                f"Twilio's status callbacks did not reach {origin}/twilio/smoke/status (the call is {status}); "
                "the same URL problem as the voice webhook would cause this"
            )
        return ""

    def _sip_fix(self) -> str:
        code = (self.dial or {}).get("sip_code") or ""
        host = self.gw.settings.livekit_sip_host
        if code in ("401", "403", "407"):
            return (
                f"LiveKit refused the SIP credentials (SIP {code}): LIVEKIT_SIP_USERNAME/LIVEKIT_SIP_PASSWORD must "
                "be the inbound trunk's; run provision"
            )
        if code == "503":
            return "LiveKit answered 503: two catch-all inbound trunks match every call; run doctor for which"
        heard = f" (Twilio: {self.dial.get('status')}, SIP {code or 'no answer'})" if self.dial else ""
        return (
            f"no SIP participant reached room {self.room}{heard}: LIVEKIT_SIP_HOST ({host}) must be the "
            "project's SIP host (Project settings, 'SIP URI' without sip:), and provision must have made the "
            "inbound trunk and the dispatch rule; run doctor"
        )


def smoke_call(services, phone: str, *, out: Callable[[str], Any] = print, timeout_s: float = 120.0) -> SmokeResult:
    """Place the test call to ``phone`` and report every hop; see the module docstring."""
    return _Run(services, phone, out, timeout_s).run()
