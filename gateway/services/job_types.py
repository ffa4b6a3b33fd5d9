"""Every kind of job: one frozen dataclass each, the fields its handler needs.

A service enqueues one (``store.enqueue(session, HoldCaller(call_id=…, transfer_id=…))``); the
outbox stores its ``kind`` and ``payload()`` (the ``jobs`` table's kind and JSON columns), and
the runner hands the handler registered for the class (``@handles(HoldCaller)`` on its method in
``work.py``, ``callbacks.py`` or ``event_webhooks.py``) the job decoded and validated again.

Rows stored by an earlier release still decode: fields it did not write take their defaults, keys
it wrote that are gone are ignored (and ``RedirectCaller``/``RedirectLeg`` accept the ``path`` it
stored before destinations had names).

A new job: a dataclass here (``kind``, its fields; ``urgent`` if a caller or agent waits on it),
a method with ``@handles(<it>)`` where its collaborators are, and ``store.enqueue`` where needed.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar, TypeVar

KINDS: dict[str, type[Job]] = {}


class InvalidJob(ValueError):
    """A stored payload that does not make a job of its kind (a field missing or of a wrong type)."""


@dataclass(frozen=True)
class Job:
    kind: ClassVar[str]
    urgent: ClassVar[bool] = False  # what a caller or agent hears next: the runner's urgent lane
    # Straight from the commit that stored it (this process leased it then): what the payload says
    # is still current, so a handler may skip reading it back. Not stored.
    fresh: bool = field(default=False, kw_only=True, compare=False)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            if cls.kind in KINDS:
                raise TypeError(f"two jobs of kind {cls.kind}")
            KINDS[cls.kind] = cls

    def payload(self) -> dict[str, Any]:
        """What the outbox stores (JSON)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "fresh"}

    @classmethod
    def decode(cls, payload: Mapping[str, Any]) -> typing.Self:
        """The job a stored payload (plus the runner's ``_fresh``) describes, validated."""
        hints = _hints(cls)
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name == "fresh":
                continue
            if f.name in payload:
                values[f.name] = _valid(cls.kind, f.name, payload[f.name], hints[f.name])
            elif f.default is MISSING and f.default_factory is MISSING:
                raise InvalidJob(f"{cls.kind}: no {f.name} in {dict(payload)}")
        return cls(**values, fresh=bool(payload.get("_fresh")))


def decode(kind: str, payload: Mapping[str, Any]) -> Job | None:
    """The job a stored row describes, or None for a kind no job class has."""
    job_type = KINDS.get(kind)
    return job_type.decode(payload) if job_type is not None else None


J = TypeVar("J", bound=Job)


def handles(job_type: type[J]) -> Callable[[Callable[[Any, J], None]], Callable[[Any, J], None]]:
    """Marks a method as the handler of ``job_type`` (registered by its object's ``register``)."""

    def mark(method: Callable[[Any, J], None]) -> Callable[[Any, J], None]:
        method.handles = job_type  # type: ignore[attr-defined]
        return method

    return mark


def handlers_of(obj: object) -> list[tuple[type[Job], Callable[[Any], None]]]:
    """(job class, bound handler) for each ``@handles`` method of ``obj``."""
    found = []
    for name in dir(type(obj)):
        job_type = getattr(getattr(type(obj), name), "handles", None)
        if job_type is not None:
            found.append((job_type, getattr(obj, name)))
    return found


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _valid(kind: str, name: str, value: Any, hint: Any) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return _valid(kind, name, value, option)
            except InvalidJob:
                continue
    elif origin is tuple and isinstance(value, list | tuple):
        return tuple(_valid(kind, name, item, args[0]) for item in value)
    elif hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    elif (
        hint is int
        and isinstance(value, int)
        and not isinstance(value, bool)
        or hint in (str, bool)
        and isinstance(value, hint)
    ):
        return value
    raise InvalidJob(f"{kind}: {name} is {value!r}, not {getattr(hint, '__name__', hint)}")


# ----------------------------------------------------------------- LiveKit
@dataclass(frozen=True)
class CreateRoom(Job):
    kind = "create_room"
    call_id: str
    room: str | None = None  # None: the call's room (a job stored before the dispatch rule made those)
    transfer_id: str | None = None


@dataclass(frozen=True)
class DeleteRoom(Job):
    kind = "delete_room"
    room: str
    call_id: str | None = None


@dataclass(frozen=True)
class RemoveParticipant(Job):
    kind = "remove_participant"
    room: str
    identity: str
    call_id: str | None = None  # set: a look at the room follows if LiveKit does not report the leave


@dataclass(frozen=True)
class MoveParticipant(Job):
    kind = "move_participant"
    room: str
    identity: str
    destination: str
    call_id: str | None = None


@dataclass(frozen=True)
class ReconcileRoom(Job):
    """A look at a room's participants, when a join or leave we expect is not reported."""

    kind = "reconcile_room"
    call_id: str
    room: str
    round: int = 0
    gone: str | None = None


# ------------------------------------------------------------------ Twilio
@dataclass(frozen=True)
class DialLeg(Job):
    kind = "dial_leg"
    urgent = True
    leg_id: str
    to: str | None = None  # the number and whether it is a transfer's: so a fresh job needs no read
    transfer: bool = False


@dataclass(frozen=True)
class HangupLeg(Job):
    kind = "hangup_leg"
    urgent = True
    leg_id: str


@dataclass(frozen=True)
class RedirectCaller(Job):
    kind = "redirect_caller"
    urgent = True
    call_id: str
    dest: str  # a Dest (services/ports.py), or the path a job of an earlier release stored
    gen: int | None = None  # a bridge: only if the caller has fetched no newer one meanwhile

    @classmethod
    def decode(cls, payload: Mapping[str, Any]) -> typing.Self:
        return super().decode(_named_dest(payload))


@dataclass(frozen=True)
class RedirectLeg(Job):
    kind = "redirect_leg"
    urgent = True
    leg_id: str
    dest: str  # a Dest, or an earlier release's path (as RedirectCaller)

    @classmethod
    def decode(cls, payload: Mapping[str, Any]) -> typing.Self:
        return super().decode(_named_dest(payload))


def _named_dest(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    if "dest" not in payload and "path" in payload:
        return {**payload, "dest": payload["path"]}
    return payload


@dataclass(frozen=True)
class HoldCaller(Job):
    kind = "hold_caller"
    urgent = True
    call_id: str
    transfer_id: str


@dataclass(frozen=True)
class StartTranscription(Job):
    kind = "start_transcription"
    call_id: str


@dataclass(frozen=True)
class DialCallback(Job):
    kind = "dial_callback"
    call_id: str
    attempt: int
    offer: int | None = None  # the entry's offer it belongs to (a later offer makes it moot)


@dataclass(frozen=True)
class DispatchTeam(Job):
    """Pair these teams' free members with their waiting callers (services.queues: run as the
    transaction that found nobody commits, for the other side of a race)."""

    kind = "dispatch_team"
    urgent = True  # a caller waits beside an agent who could take them
    teams: tuple[str, ...]


# ------------------------------------------------------------------ timers
@dataclass(frozen=True)
class RingTimeout(Job):
    kind = "ring_timeout"
    leg_ids: tuple[str, ...]
    call_id: str | None = None


@dataclass(frozen=True)
class WhisperTimeout(Job):
    kind = "whisper_timeout"
    leg_id: str
    phase: str
    call_id: str | None = None


@dataclass(frozen=True)
class QueueTimeout(Job):
    kind = "queue_timeout"
    call_id: str


@dataclass(frozen=True)
class IntroTimeout(Job):
    kind = "intro_timeout"
    transfer_id: str


@dataclass(frozen=True)
class ReturnTimeout(Job):
    """A caller returned to A after a failed transfer: A is not back in the room in time."""

    kind = "return_timeout"
    call_id: str
    leg_id: str
    transfer_id: str | None = None


@dataclass(frozen=True)
class WebJoinDeadline(Job):
    """A web caller's one-use join token ran out unused."""

    kind = "web_join_deadline"
    call_id: str
    gen: int


@dataclass(frozen=True)
class WebRejoinDeadline(Job):
    """A web caller left the call's room (``gen``: the token they were in it with): unless their
    page comes back for the call by now, the call ends."""

    kind = "web_rejoin_deadline"
    call_id: str
    gen: int


@dataclass(frozen=True)
class SummaryDeadline(Job):
    kind = "summary_deadline"
    transfer_id: str


# --------------------------------------------------------- summaries, data
@dataclass(frozen=True)
class Summarize(Job):
    kind = "summarize"
    transfer_id: str


@dataclass(frozen=True)
class SendSms(Job):
    kind = "send_sms"
    transfer_id: str
    to: str


@dataclass(frozen=True)
class PurgeCallData(Job):
    kind = "purge_call_data"
    call_id: str


@dataclass(frozen=True)
class DeliverEvents(Job):
    """Send a call's pending event webhooks to one URL, in order."""

    kind = "deliver_events"
    call_id: str
    url: str
