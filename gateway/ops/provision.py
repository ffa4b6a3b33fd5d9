"""Idempotent provisioning: the LiveKit SIP trunk(s) and dispatch rule, the Twilio number's webhooks.

Every step reads what exists, compares it with what the gateway needs and changes only the
difference, so a second run reports "unchanged" and writes nothing. ``dry_run`` only reads.
The first failure stops the run, and the report says which steps were done and which not;
running again after fixing the cause is safe.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from livekit import api

from gateway.config import Settings
from gateway.domain import calls as C
from gateway.ops.providers import describe_error, run_livekit, telephony
from gateway.ops.settings import OpsSettings

INBOUND_TRUNK_NAME = "gateway"
OUTBOUND_TRUNK_NAME = "gateway-outbound"
DISPATCH_RULE_NAME = "gateway-callee"
# SIP headers the TwiML adds to the INVITE, surfaced as participant attributes.
HEADER_ATTRIBUTES = {"X-GW-Leg": "gw.leg", "X-GW-Call": "gw.call"}
NEW_TRUNK = "(trunk to be created)"
# LiveKit ends a SIP call still ringing after the trunk's ringing timeout (3 min by default) with
# 486. The gateway holds a caller in that state for up to QUEUE_TIMEOUT_S, so the trunk must wait
# longer than the gateway does: the gateway's own queue timer always decides first.
RINGING_MARGIN_S = 30
NO_TRUNK_AUTH = (
    "LIVEKIT_SIP_USERNAME/LIVEKIT_SIP_PASSWORD and LIVEKIT_SIP_ALLOWED_ADDRESSES are all unset; LiveKit refuses "
    'an inbound trunk with neither ("for security, one of the fields must be set"). Set the username and '
    "password (Twilio sends them with <Sip>) and run provision again"
)

CREATED, UPDATED, UNCHANGED, SKIPPED = "created", "updated", "unchanged", "skipped"
WOULD_CREATE, WOULD_UPDATE = "would create", "would update"
FAILED, NOT_RUN = "FAILED", "not run"
DONE = (CREATED, UPDATED, UNCHANGED, SKIPPED, WOULD_CREATE, WOULD_UPDATE)


@dataclass
class StepResult:
    step: str
    outcome: str
    detail: str = ""

    def line(self) -> str:
        return f"  {self.step:<26} {self.outcome:<13} {self.detail}".rstrip()


@dataclass
class Report:
    dry_run: bool
    results: list[StepResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.outcome in DONE for r in self.results)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def outcome(self, step: str) -> str | None:
        return next((r.outcome for r in self.results if r.step == step), None)

    def summary(self) -> str:
        if self.ok:
            return (
                "dry run: nothing was changed; run without --dry-run to apply"
                if self.dry_run
                else "provisioning complete"
            )
        done = [r.step for r in self.results if r.outcome in DONE and r.outcome != SKIPPED]
        not_done = [r.step for r in self.results if r.outcome not in DONE]
        failed = next(r.step for r in self.results if r.outcome == FAILED)
        return (
            f"provisioning stopped at {failed}. done: {', '.join(done) or 'nothing'}. "
            f"not done: {', '.join(not_done)}. Fix the cause and run provision again (it is safe to repeat)."
        )


class _StepFailed(Exception):
    """A step cannot go on for a reason that is not a provider error (e.g. the number is missing)."""


def _normal(value: Any) -> Any:
    """A comparable form: maps as dicts, lists order-free, messages by value."""
    if isinstance(value, Message):
        return value
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, Sequence) and not isinstance(value, str):
        return sorted(value)
    return value


def _differences(actual: Message, desired: dict, *, skip: tuple[str, ...] = ()) -> list[str]:
    return [
        name for name, want in desired.items() if name not in skip and _normal(getattr(actual, name)) != _normal(want)
    ]


_M = TypeVar("_M", bound=Message)


def _merged(actual: _M, desired: dict[str, Any]) -> _M:
    """``actual`` with the desired fields set; fields we do not manage are kept as they are."""
    merged = type(actual)()
    merged.CopyFrom(actual)
    for name in ("created_at", "updated_at"):
        if name in merged.DESCRIPTOR.fields_by_name:
            merged.ClearField(name)
    for name, want in desired.items():
        current = getattr(merged, name)
        if isinstance(want, Message):
            current.CopyFrom(want)
        elif isinstance(want, Mapping):
            current.clear()
            current.update(want)
        elif isinstance(want, Sequence) and not isinstance(want, str):
            del current[:]
            current.extend(want)
        else:
            setattr(merged, name, want)
    return merged


def _password_unreported(actual: api.SIPInboundTrunkInfo | api.SIPOutboundTrunkInfo, desired: dict[str, Any]) -> bool:
    """Whether LiveKit hid the trunk's password in the listing (a username but no password):
    then the password cannot be compared, only re-sent with another change."""
    return bool(actual.auth_username) and not actual.auth_password and bool(desired.get("auth_password"))


def ringing_timeout_s(settings: Settings) -> int:
    """The inbound trunk's ringing timeout: longer than the gateway keeps a caller waiting."""
    return int(settings.queue_timeout_s) + RINGING_MARGIN_S


def catch_all_conflicts(trunks, ours: str = INBOUND_TRUNK_NAME) -> list:
    """Other inbound trunks that, like ours, accept any number and any caller. LiveKit allows one
    such trunk per project (livekit/protocol ValidateTrunks: "Conflicting inbound SIP Trunks"), and
    when two exist anyway every INVITE fails (MatchTrunk: "Multiple default SIP Trunks matched")."""
    return [t for t in trunks if t.name != ours and not t.numbers and not t.allowed_numbers]


def describe_catch_all(others) -> str:
    names = ", ".join(f"{t.sip_trunk_id} ({t.name or 'unnamed'})" for t in others)
    return (
        f"another catch-all inbound trunk exists in this LiveKit project: {names}. LiveKit allows one trunk "
        "without numbers per project, and this gateway needs it: its SIP URIs name a room, not a phone "
        "number. Delete that trunk (lk sip inbound delete <id>; LiveKit's Twilio quick-start makes one), or "
        "give it the numbers it serves, or use a separate LiveKit project; then run provision again"
    )


def number_routing(number) -> str | None:
    """Why Twilio would not send this number's calls to its voice URL, or None."""
    trunk, app = getattr(number, "trunk_sid", None), getattr(number, "voice_application_sid", None)
    if trunk:
        return f"it is attached to Elastic SIP trunk {trunk}"
    if app:
        return f"it is attached to TwiML app {app}"
    return None


class _Provisioner:
    def __init__(self, settings: Settings, ops: OpsSettings, dry_run: bool, take_over_number: bool = False):
        self.settings, self.ops, self.dry_run = settings, ops, dry_run
        self.take_over_number = take_over_number
        self.trunk_id: str | None = None

    def steps(self) -> list[tuple[str, Callable]]:
        return [
            ("LiveKit inbound trunk", self.inbound_trunk),
            ("LiveKit outbound trunk", self.outbound_trunk),
            ("LiveKit dispatch rule", self.dispatch_rule),
            ("Twilio number webhooks", self.twilio_number),
        ]

    # ------------------------------------------------------------- LiveKit
    def inbound_desired(self) -> dict:
        s = self.settings
        ringing = Duration()
        ringing.FromSeconds(ringing_timeout_s(s))
        return {
            "numbers": [],  # the SIP user is a room token, not a phone number
            "allowed_addresses": list(self.ops.sip_allowed_addresses),
            "auth_username": s.livekit_sip_username or "",
            "auth_password": s.livekit_sip_password or "",
            "headers_to_attributes": HEADER_ATTRIBUTES,
            "ringing_timeout": ringing,
        }

    async def inbound_trunk(self, lk: api.LiveKitAPI) -> tuple[str, str]:
        desired = self.inbound_desired()
        if not (desired["auth_username"] or desired["allowed_addresses"]):
            raise _StepFailed(NO_TRUNK_AUTH)
        listing = await lk.sip.list_inbound_trunk(api.ListSIPInboundTrunkRequest())
        actual = next((t for t in listing.items if t.name == INBOUND_TRUNK_NAME), None)
        others = catch_all_conflicts(listing.items)
        if others:
            raise _StepFailed(describe_catch_all(others))
        note = f" (ringing timeout {ringing_timeout_s(self.settings)} s)"
        if actual is None:
            if self.dry_run:
                return WOULD_CREATE, f"{INBOUND_TRUNK_NAME!r}{note}"
            trunk = await lk.sip.create_inbound_trunk(
                api.CreateSIPInboundTrunkRequest(trunk=api.SIPInboundTrunkInfo(name=INBOUND_TRUNK_NAME, **desired))
            )
            self.trunk_id = trunk.sip_trunk_id
            return CREATED, f"{INBOUND_TRUNK_NAME!r} {trunk.sip_trunk_id}{note}"
        self.trunk_id = actual.sip_trunk_id
        hidden = _password_unreported(actual, desired)
        changed = _differences(actual, desired, skip=("auth_password",) if hidden else ())
        if hidden:
            note += " (LiveKit does not report the password, so it was not compared)"
        return await self._apply(
            changed,
            actual.sip_trunk_id,
            note,
            lambda: lk.sip.update_inbound_trunk(actual.sip_trunk_id, _merged(actual, desired)),
        )

    async def outbound_trunk(self, lk: api.LiveKitAPI) -> tuple[str, str]:
        if not self.ops.outbound_address:
            return SKIPPED, "LIVEKIT_OUTBOUND_ADDRESS is not set"
        # Field values by name, of the field's own type (set by _merged, compared by _differences).
        desired: dict[str, Any] = {
            "address": self.ops.outbound_address,
            "numbers": [self.settings.twilio_phone_number],
            "auth_username": self.ops.outbound_username or "",
            "auth_password": self.ops.outbound_password or "",
        }
        listing = await lk.sip.list_outbound_trunk(api.ListSIPOutboundTrunkRequest())
        actual = next((t for t in listing.items if t.name == OUTBOUND_TRUNK_NAME), None)
        if actual is None:
            if self.dry_run:
                return WOULD_CREATE, f"{OUTBOUND_TRUNK_NAME!r} to {self.ops.outbound_address}"
            trunk = await lk.sip.create_outbound_trunk(
                api.CreateSIPOutboundTrunkRequest(trunk=api.SIPOutboundTrunkInfo(name=OUTBOUND_TRUNK_NAME, **desired))
            )
            return CREATED, f"{OUTBOUND_TRUNK_NAME!r} {trunk.sip_trunk_id} to {self.ops.outbound_address}"
        hidden = _password_unreported(actual, desired)
        changed = _differences(actual, desired, skip=("auth_password",) if hidden else ())
        return await self._apply(
            changed,
            actual.sip_trunk_id,
            "",
            lambda: lk.sip.update_outbound_trunk(actual.sip_trunk_id, _merged(actual, desired)),
        )

    async def dispatch_rule(self, lk: api.LiveKitAPI) -> tuple[str, str]:
        # Field values by name, of the field's own type (set by _merged, compared by _differences).
        desired: dict[str, Any] = {
            "rule": api.SIPDispatchRule(
                dispatch_rule_callee=api.SIPDispatchRuleCallee(
                    room_prefix=self.settings.livekit_room_prefix, randomize=False
                )
            ),
            "trunk_ids": [self.trunk_id or NEW_TRUNK],
            # The caller's room is made by this rule when the caller's SIP leg arrives, with these
            # settings: no CreateRoom per call (one LiveKit API call and one webhook fewer per call).
            "room_config": api.RoomConfiguration(
                empty_timeout=C.ROOM_EMPTY_TIMEOUT_S, departure_timeout=C.ROOM_DEPARTURE_TIMEOUT_S
            ),
        }
        listing = await lk.sip.list_dispatch_rule(api.ListSIPDispatchRuleRequest())
        actual = next((r for r in listing.items if r.name == DISPATCH_RULE_NAME), None)
        what = f"Callee, rooms {self.settings.livekit_room_prefix}_<token>"
        if actual is None:
            if self.dry_run:
                return WOULD_CREATE, f"{DISPATCH_RULE_NAME!r} ({what})"
            rule = await lk.sip.create_dispatch_rule(
                api.CreateSIPDispatchRuleRequest(
                    dispatch_rule=api.SIPDispatchRuleInfo(name=DISPATCH_RULE_NAME, **desired)
                )
            )
            return CREATED, f"{DISPATCH_RULE_NAME!r} {rule.sip_dispatch_rule_id} ({what})"
        changed = _differences(actual, desired)
        return await self._apply(
            changed,
            actual.sip_dispatch_rule_id,
            "",
            lambda: lk.sip.update_dispatch_rule(actual.sip_dispatch_rule_id, _merged(actual, desired)),
        )

    async def _apply(self, changed: list[str], ident: str, note: str, update: Callable) -> tuple[str, str]:
        if not changed:
            return UNCHANGED, f"{ident}{note}"
        if self.dry_run:
            return WOULD_UPDATE, f"{ident}: {', '.join(changed)}{note}"
        await update()
        return UPDATED, f"{ident}: {', '.join(changed)}{note}"

    # -------------------------------------------------------------- Twilio
    async def twilio_number(self, _lk: api.LiveKitAPI) -> tuple[str, str]:
        origin = self.settings.public_origin
        # Field values by name, of the field's own type (set by _merged, compared by _differences).
        desired: dict[str, Any] = {
            "voice_url": f"{origin}/twilio/voice",
            "voice_method": "POST",
            "status_callback": f"{origin}/twilio/status",
            "status_callback_method": "POST",
            "voice_fallback_url": f"{origin}/twilio/fallback",
            "voice_fallback_method": "POST",
        }
        phone = self.settings.twilio_phone_number
        twilio = telephony(self.settings)
        numbers = twilio.numbers(phone)
        if not numbers:
            raise _StepFailed(
                f"{phone} is not a phone number of Twilio account {self.settings.twilio_account_sid}; "
                "buy or port it there, or fix TWILIO_PHONE_NUMBER"
            )
        number = numbers[0]
        elsewhere = number_routing(number)
        if elsewhere and not self.take_over_number:
            # Twilio ignores the voice URL of such a number: setting it would report success while
            # no call ever reached the gateway.
            raise _StepFailed(
                f"{phone} {number.sid}: {elsewhere}, so Twilio ignores its voice URL and no call would reach "
                "this gateway. Detach it in the Twilio console, or run provision --take-over-number to "
                "detach it here (calls then stop going to that trunk or app)"
            )
        if elsewhere:
            desired.update(trunk_sid="", voice_application_sid="")
        changed = [name for name, want in desired.items() if (getattr(number, name, None) or "") != want]
        if not changed:
            return UNCHANGED, f"{phone} {number.sid} -> {origin}/twilio/voice"
        if not self.dry_run:
            twilio.client.incoming_phone_numbers(number.sid).update(**desired)
        detail = f"{phone} {number.sid}: {', '.join(changed)}"
        if elsewhere:
            detail += f" (was: {elsewhere}; detached)"
        return (WOULD_UPDATE if self.dry_run else UPDATED), detail


def provision(
    settings: Settings,
    dry_run: bool = False,
    out: Callable[[str], Any] = print,
    ops: OpsSettings | None = None,
    take_over_number: bool = False,
) -> Report:
    """Bring LiveKit and the Twilio number in line with ``settings``; one printed line a step.
    ``take_over_number`` detaches the number from an Elastic SIP trunk or TwiML app."""
    ops = ops or OpsSettings.from_env(os.environ)
    provisioner = _Provisioner(settings, ops, dry_run, take_over_number)
    report = Report(dry_run=dry_run)
    out(
        f"Provisioning for {settings.public_origin} (LiveKit {settings.livekit_url}, "
        f"Twilio number {settings.twilio_phone_number})" + (" - dry run, nothing will be changed" if dry_run else "")
    )

    async def run_steps(lk: api.LiveKitAPI) -> None:
        for name, step in provisioner.steps():
            if not report.ok:
                result = StepResult(name, NOT_RUN)
            else:
                try:
                    result = StepResult(name, *await step(lk))
                except Exception as exc:  # any failure stops the run with its reason
                    reason = str(exc) if isinstance(exc, _StepFailed) else describe_error(exc)
                    result = StepResult(name, FAILED, reason)
            report.results.append(result)
            out(result.line())

    try:
        run_livekit(settings, run_steps, timeout_s=10.0)
    except Exception as exc:  # no client at all, e.g. LIVEKIT_URL is empty: the next step fails with it
        for name, _ in provisioner.steps()[len(report.results) :]:
            result = StepResult(name, FAILED if report.ok else NOT_RUN, describe_error(exc) if report.ok else "")
            report.results.append(result)
            out(result.line())
    out(report.summary())
    return report
