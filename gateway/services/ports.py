"""The ports the services depend on: provider interfaces, and the listener between services.

Every collaborator a service uses is a constructor argument typed by one of these (or by
another service); ``gateway.bootstrap`` is the one place that wires them together.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from gateway.adapters.store import Store
from gateway.config import Settings

if TYPE_CHECKING:
    from gateway.adapters.store.models import Leg, Transfer
    from gateway.services.uow import UnitOfWork


class Telephony(Protocol):
    def place_call(
        self, *, to: str, url: str, status_callback: str, timeout_s: int, machine_detection: bool = False
    ) -> str: ...
    def redirect(self, call_sid: str, url: str) -> None: ...
    def hangup(self, call_sid: str) -> None: ...
    def send_sms(self, *, to: str, body: str, status_callback: str | None = None) -> str: ...
    def start_transcription(self, call_sid: str, *, name: str, status_callback_url: str) -> str: ...
    def stop_transcription(self, call_sid: str, name: str) -> None: ...


class Rooms(Protocol):
    def create_room(
        self, name: str, *, metadata: dict[str, Any], empty_timeout_s: int = 300, departure_timeout_s: int = 20
    ) -> Any: ...
    def delete_room(self, name: str) -> None: ...
    def list_rooms(self) -> list[Any]: ...  # the provider's room objects
    def list_participants(self, room: str) -> list[Any]: ...
    def remove_participant(self, room: str, identity: str) -> None: ...
    def move_participant(self, room: str, identity: str, destination: str) -> None: ...
    def join_token(self, *, identity: str, name: str, room: str, ttl_s: int = 600) -> str: ...
    def listen_token(self, *, identity: str, name: str, room: str, ttl_s: int) -> str: ...
    def caller_token(self, *, identity: str, name: str, room: str, ttl_s: int = 60) -> str: ...
    def close(self) -> None: ...  # at shutdown (the adapter's event loop)


class Summarizer(Protocol):
    def complete_json(self, messages: list[dict[str, Any]], *, timeout_s: float) -> dict[str, Any]: ...


class ProviderErrors(Protocol):
    """Counts a provider call that failed for good (``Metrics.provider_error``)."""

    def __call__(self, provider: str, kind: str) -> None: ...


class LegOutcomes(Protocol):
    """What the caller's and the agents' legs tell the transfer process manager.

    The leg and caller services call these when something happens to a leg (or a caller) that
    belongs to a transfer; ``TransferEvents`` implements them. Typed here, and handed to those
    services as a constructor argument, so the dependency is visible and not an import cycle.
    All run inside the caller's unit of work (``uow``).
    """

    def involves(self, uow: UnitOfWork, leg: Leg) -> bool: ...
    def on_target_accepted(self, uow: UnitOfWork, leg: Leg) -> None: ...
    def on_target_joined(self, uow: UnitOfWork, leg: Leg) -> None: ...
    def on_target_failed(self, uow: UnitOfWork, leg: Leg) -> None: ...
    def on_agent_left(self, uow: UnitOfWork, leg: Leg) -> bool: ...
    def on_caller_hangup(self, uow: UnitOfWork, transfer: Transfer) -> None: ...


class LiveKitHealth:
    """This process's memory of LiveKit failing moments ago (a consult room could not be made):
    the voice webhook then apologises at once instead of bridging a caller into nothing."""

    DOWN_FOR_S = 30

    def __init__(self) -> None:
        self.down_until = 0.0

    def failed(self) -> None:
        self.down_until = time.time() + self.DOWN_FOR_S

    def recovered(self) -> None:
        self.down_until = 0.0

    @property
    def down(self) -> bool:
        return self.down_until > time.time()


class Dest(StrEnum):
    """Where Twilio goes next: one of our webhooks, named by what it is for, never by its path.

    The services name these (a reply's ``Webhook``, a redirect job); ``web/twilio_hooks.py``
    maps each to the view that answers it (``ENDPOINTS``) and ``web/urls.py`` builds the URL.
    """

    # The caller's call.
    MENU = "menu"  # the caller's choice of team (a key or a name)
    BRIDGE = "bridge"  # into the call's room (<Dial><Sip>)
    HOLD = "hold"  # music while a transfer is under way
    QUEUE = "queue"  # a team's waiting line
    QUEUE_CHOICE = "queue_choice"  # a key or words from a waiting caller
    APOLOGY = "apology"  # nobody can take the call (voicemail when offered)
    GOODBYE = "goodbye"  # the agent ended the call
    VOICEMAIL = "voicemail"  # the recording's callback
    DIAL_ACTION = "dial_action"  # the caller's <Dial> ended
    SIP_STATUS = "sip_status"  # the caller's <Sip> leg's progress
    TRANSCRIPTION = "transcription"  # real-time transcription callbacks
    SMS_STATUS = "sms_status"  # delivery of the summary's SMS
    # A caller we call back (services.callbacks).
    CALLBACK_ANSWER = "callback_answer"  # they picked up: greeting, then the bridge
    CALLBACK_STATUS = "callback_status"  # the dial's final status
    # An agent's phone leg.
    LEG_ANSWER = "leg_answer"  # answered: the whisper, or the bridge
    LEG_GATHER = "leg_gather"  # the key the agent pressed
    LEG_BRIDGE = "leg_bridge"  # into a room (<Dial><Sip>)
    LEG_DIAL_ACTION = "leg_dial_action"  # the leg's <Dial> ended
    LEG_STATUS = "leg_status"  # the leg's call progress


class Urls(Protocol):
    """Absolute public URLs (PUBLIC_BASE_URL) of the destinations Twilio is sent to."""

    @property
    def origin(self) -> str: ...
    def __call__(self, dest: Dest, **query: Any) -> str: ...
    def destination(self, name: str) -> Dest:
        """A destination by its name, or by the path a job stored by an earlier release names."""
        ...


@dataclass
class Gateway:
    """The settings, the store and the provider adapters every service is built over."""

    settings: Settings
    store: Store
    telephony: Telephony
    rooms: Rooms
    summarizer: Summarizer | None
    urls: Urls

    def room_name(self, token: str) -> str:
        """The room LiveKit's Callee dispatch rule picks for a SIP URI whose user is ``token``."""
        return f"{self.settings.livekit_room_prefix}_{token}"

    def room_token(self, room: str) -> str:
        return room[len(self.settings.livekit_room_prefix) + 1 :]
