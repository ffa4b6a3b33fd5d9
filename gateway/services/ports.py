"""The ports the services depend on, and the container handing them out.

Adapters (real, or the sandbox doubles behind real adapters) are wired in one place:
``gateway.bootstrap``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlencode

from gateway.adapters.store import Store
from gateway.config import Settings


class Telephony(Protocol):
    def place_call(
        self, *, to: str, url: str, status_callback: str, timeout_s: int, machine_detection: bool = False
    ) -> str: ...
    def redirect(self, call_sid: str, url: str) -> None: ...
    def hangup(self, call_sid: str) -> None: ...
    def send_sms(self, *, to: str, body: str, status_callback: str | None = None) -> str: ...


class Rooms(Protocol):
    def create_room(
        self, name: str, *, metadata: dict, empty_timeout_s: int = 300, departure_timeout_s: int = 20
    ) -> Any: ...
    def delete_room(self, name: str) -> None: ...
    def list_rooms(self) -> list: ...
    def list_participants(self, room: str) -> list: ...
    def remove_participant(self, room: str, identity: str) -> None: ...
    def move_participant(self, room: str, identity: str, destination: str) -> None: ...
    def join_token(self, *, identity: str, name: str, room: str, ttl_s: int = 600) -> str: ...


class Summarizer(Protocol):
    def complete_json(self, messages: list[dict], *, timeout_s: float) -> dict: ...


class Urls:
    """Absolute public URLs for Twilio callbacks, built from PUBLIC_BASE_URL."""

    def __init__(self, origin: str):
        self.origin = origin.rstrip("/")

    def __call__(self, path: str, **query: Any) -> str:
        url = self.origin + path
        clean = {k: v for k, v in query.items() if v is not None}
        return url + ("?" + urlencode(clean) if clean else "")


@dataclass
class Gateway:
    settings: Settings
    store: Store
    telephony: Telephony
    rooms: Rooms
    summarizer: Summarizer | None
    urls: Urls
    runner: Any = None  # JobRunner, set by bootstrap
    extras: dict = field(default_factory=dict)

    def room_name(self, token: str) -> str:
        """The room LiveKit's Callee dispatch rule picks for a SIP URI whose user is ``token``."""
        return f"{self.settings.livekit_room_prefix}_{token}"

    def room_token(self, room: str) -> str:
        return room[len(self.settings.livekit_room_prefix) + 1 :]
