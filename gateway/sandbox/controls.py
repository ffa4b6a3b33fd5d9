"""What the console's sandbox controls ask of the loopback doubles: a simulated caller dials the
gateway's number, and a browser joins or leaves a room of the LiveKit double (which has no
WebRTC). Built by ``gateway.bootstrap`` in sandbox mode only; ``web/sandbox.py`` serves it.

The doubles run in this process (``python -m gateway``: ``Sandbox``) or in another one on
loopback (the tests, a second gateway): then they are reached by their ``/_sim`` HTTP API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import requests

from gateway.config import Settings

if TYPE_CHECKING:
    from gateway.sandbox.runtime import Sandbox


class SandboxUnreachable(Exception):
    """A double did not answer, or refused (the message says which and why)."""


class SandboxControls:
    def __init__(self, settings: Settings, sandbox: Sandbox | None = None):
        self.settings, self.sandbox = settings, sandbox

    def place_call(self, from_: str) -> str:
        """A simulated caller dials the gateway's number; the call's sid."""
        to = self.settings.twilio_phone_number
        simulator = self.sandbox.twilio if self.sandbox is not None else None
        if simulator is not None:
            return str(simulator.place_inbound_call(from_=from_, to=to).sid)
        try:
            reply = requests.post(
                self.settings.twilio_api_base_url + "/_sim/calls", json={"from": from_, "to": to}, timeout=5
            )
        except requests.RequestException as exc:
            raise SandboxUnreachable(f"the Twilio simulator is unreachable: {exc}") from None
        if reply.status_code != 201:
            raise SandboxUnreachable(f"the Twilio simulator refused the call: {reply.text[:200]}")
        return str(reply.json()["sid"])

    def rtc_join(self, token: str) -> tuple[dict[str, Any], int]:
        return self._livekit("/_sim/rtc/join", {"token": token})

    def rtc_leave(self, room: str, identity: str) -> tuple[dict[str, Any], int]:
        return self._livekit("/_sim/rtc/leave", {"room": room, "identity": identity})

    def _livekit(self, path: str, payload: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """The LiveKit double's answer (JSON) and status."""
        url = self.settings.livekit_url.rstrip("/") + path
        try:
            reply = requests.post(url, json=payload, timeout=5)
        except requests.RequestException as exc:
            raise SandboxUnreachable(f"the sandbox LiveKit is unreachable: {exc}") from None
        try:
            data = reply.json()
        except ValueError:
            data = {"error": reply.text[:200]}
        return data, reply.status_code
