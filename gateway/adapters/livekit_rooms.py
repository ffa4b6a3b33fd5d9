"""LiveKit adapter: rooms and participants through livekit-api on one event loop per process.

livekit-api is asyncio-only. Each worker process gets one long-lived loop in a daemon
thread, started lazily after gunicorn forks (keyed by pid), with one aiohttp session;
synchronous callers submit coroutines to it and wait with a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import os
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from livekit import api

from gateway.adapters.twilio_client import ProviderError


class EventLoopThread:
    """One asyncio loop per process, in a daemon thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._pid != os.getpid() or self._loop is None or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="livekit-loop", daemon=True)
                thread.start()
                self._loop, self._pid = loop, os.getpid()
            return self._loop

    def run(self, coro_factory: Callable[[], Awaitable[Any]], timeout_s: float) -> Any:
        future = asyncio.run_coroutine_threadsafe(asyncio.wait_for(coro_factory(), timeout_s), self.loop())
        return future.result(timeout_s + 1)


def _not_implemented(exc: api.TwirpError) -> bool:
    """Twirp's ``unimplemented``, or self-hosted LiveKit's plain "not implemented" error for the
    Cloud-only methods (MoveParticipant, ForwardParticipant), which Twirp wraps as ``internal``/500
    (provider-facts.md): a final answer either way, never worth a retry."""
    code = getattr(exc, "code", "") or ""
    return code == "unimplemented" or "not implemented" in (getattr(exc, "message", "") or "").lower()


def _error(what: str, exc: BaseException) -> ProviderError:
    if isinstance(exc, api.TwirpError):
        status = getattr(exc, "status", 0) or 0
        code = getattr(exc, "code", "") or ""
        if _not_implemented(exc):
            return ProviderError("livekit", "unimplemented", f"{what}: {exc.message}", retryable=False)
        return ProviderError(
            "livekit",
            str(code or f"http_{status}"),
            f"{what}: {exc.message}",
            retryable=status >= 500 or code in ("unavailable", "internal"),
        )
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return ProviderError("livekit", "timeout", f"{what}: timed out", retryable=True)
    return ProviderError("livekit", "unreachable", f"{what}: {exc}", retryable=True)


def _is_not_found(exc: BaseException) -> bool:
    return isinstance(exc, api.TwirpError) and getattr(exc, "code", "") == "not_found"


class LiveKitRooms:
    """The small port the services use: rooms, participants, and join tokens."""

    def __init__(
        self, url: str, api_key: str, api_secret: str, *, timeout_s: float, runner: EventLoopThread | None = None
    ):
        self.url, self.api_key, self.api_secret, self.timeout_s = url, api_key, api_secret, timeout_s
        self.runner = runner or EventLoopThread()
        self._client: api.LiveKitAPI | None = None
        self._session: aiohttp.ClientSession | None = None
        self._client_pid: int | None = None

    async def _api(self) -> api.LiveKitAPI:
        # Made on the loop thread, once per process: one aiohttp session for all calls.
        if self._client is None or self._client_pid != os.getpid():
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))
            self._client = api.LiveKitAPI(self.url, self.api_key, self.api_secret, session=self._session)
            self._client_pid = os.getpid()
        return self._client

    def _call(self, what: str, make: Callable[[api.LiveKitAPI], Awaitable[Any]], *, missing_ok: bool = False) -> Any:
        async def go():
            return await make(await self._api())

        try:
            return self.runner.run(go, self.timeout_s)
        except Exception as exc:
            if missing_ok and _is_not_found(exc):
                return None
            raise _error(what, exc) from exc

    def close(self) -> None:
        """Close the aiohttp session (on shutdown)."""
        session, self._client, self._session = self._session, None, None
        if session is not None and self._client_pid == os.getpid():
            with contextlib.suppress(Exception):
                self.runner.run(session.close, 2.0)

    # ------------------------------------------------------------------ rooms
    def create_room(self, name: str, *, metadata: dict, empty_timeout_s: int = 300, departure_timeout_s: int = 20):
        request = api.CreateRoomRequest(
            name=name,
            empty_timeout=empty_timeout_s,
            departure_timeout=departure_timeout_s,
            metadata=json.dumps(metadata, separators=(",", ":")),
        )
        return self._call("create room", lambda c: c.room.create_room(request))

    def delete_room(self, name: str) -> None:
        self._call("delete room", lambda c: c.room.delete_room(api.DeleteRoomRequest(room=name)), missing_ok=True)

    def list_rooms(self) -> list:
        response = self._call("list rooms", lambda c: c.room.list_rooms(api.ListRoomsRequest()))
        return list(response.rooms)

    def dispatch_rule_names(self) -> list[str]:
        """Names of the project's SIP dispatch rules (readiness: has provision made ours?)."""
        response = self._call(
            "list dispatch rules", lambda c: c.sip.list_dispatch_rule(api.ListSIPDispatchRuleRequest())
        )
        return [rule.name for rule in response.items]

    def list_participants(self, room: str) -> list:
        response = self._call(
            "list participants",
            lambda c: c.room.list_participants(api.ListParticipantsRequest(room=room)),
            missing_ok=True,
        )
        return list(response.participants) if response is not None else []

    def remove_participant(self, room: str, identity: str) -> None:
        self._call(
            "remove participant",
            lambda c: c.room.remove_participant(api.RoomParticipantIdentity(room=room, identity=identity)),
            missing_ok=True,
        )

    def move_participant(self, room: str, identity: str, destination: str) -> None:
        self._call(
            "move participant",
            lambda c: c.room.move_participant(
                api.MoveParticipantRequest(room=room, identity=identity, destination_room=destination)
            ),
        )

    # ----------------------------------------------------------------- tokens
    def _token(self, *, identity: str, name: str, ttl_s: int, grants: api.VideoGrants) -> str:
        """A signed token for one participant; each kind below states its own grants."""
        return (
            api.AccessToken(self.api_key, self.api_secret)
            .with_identity(identity)
            .with_name(name)
            .with_ttl(datetime.timedelta(seconds=ttl_s))
            .with_grants(grants)
            .to_jwt()
        )

    def join_token(self, *, identity: str, name: str, room: str, ttl_s: int = 600) -> str:
        """A token for exactly one room: join, publish and subscribe; no admin grants."""
        grants = api.VideoGrants(room_join=True, room=room, can_publish=True, can_subscribe=True, can_publish_data=True)
        return self._token(identity=identity, name=name, ttl_s=ttl_s, grants=grants)

    def listen_token(self, *, identity: str, name: str, room: str, ttl_s: int) -> str:
        """A supervisor's token for one room: subscribe only (no audio, video or data of its own),
        hidden (the others are not told it is there: LiveKit's ``hidden`` grant), short-lived."""
        grants = api.VideoGrants(
            room_join=True, room=room, can_subscribe=True, can_publish=False, can_publish_data=False, hidden=True
        )
        return self._token(identity=identity, name=name, ttl_s=ttl_s, grants=grants)

    def caller_token(self, *, identity: str, name: str, room: str, ttl_s: int = 60) -> str:
        """A web caller's token: join one room, publish the microphone only, subscribe; no data
        messages to others, no admin grants; short-lived (the gateway issues it once per move)."""
        grants = api.VideoGrants(
            room_join=True,
            room=room,
            can_publish=True,
            can_publish_sources=["microphone"],
            can_subscribe=True,
            can_publish_data=False,
            can_update_own_metadata=False,
        )
        return self._token(identity=identity, name=name, ttl_s=ttl_s, grants=grants)

    def webhook_receiver(self) -> api.WebhookReceiver:
        return api.WebhookReceiver(api.TokenVerifier(self.api_key, self.api_secret))
