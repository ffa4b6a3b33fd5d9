"""The console's event stream (GET /api/events) and its guard rails, over real HTTP, no browser."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time

import pytest
import requests

from gateway.web.console import init_console

CALLER = "+15557654321"


class Stream:
    """A minimal Server-Sent Events reader on its own thread."""

    def __init__(self, url: str, headers: dict):
        self.response = requests.get(url, headers=headers, stream=True, timeout=10)
        self.events: list[dict] = []
        self.comments: list[str] = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        event: dict = {}
        try:
            for raw in self.response.iter_lines(decode_unicode=True):
                if raw is None:
                    continue
                if raw == "":
                    if "data" in event:
                        event["data"] = json.loads(event["data"])
                        with self.lock:
                            self.events.append(event)
                    event = {}
                elif raw.startswith(":"):
                    with self.lock:
                        self.comments.append(raw[1:].strip())
                else:
                    name, _, value = raw.partition(":")
                    event[name] = value[1:] if value.startswith(" ") else value
        except (requests.RequestException, AttributeError):
            pass

    def of(self, kind: str) -> list[dict]:
        with self.lock:
            return [e for e in self.events if e.get("event") == kind]

    def wait(self, predicate, timeout: float = 8.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"stream: timed out; got {self.events}")

    def close(self) -> None:
        # The socket first: closing the response alone waits for the reader thread's blocked read to
        # return, which can take the whole read timeout (10 s) on a quiet stream.
        with contextlib.suppress(AttributeError, OSError):
            self.response.raw._fp.fp.raw._sock.shutdown(socket.SHUT_RDWR)
        self.response.close()


@pytest.fixture
def hub(world):
    streams = init_console(world.app)
    assert init_console(world.app) is streams  # idempotent
    yield streams
    streams.shutdown()


def _open(world, agent, **headers) -> Stream:
    return Stream(world.url + "/api/events", {"Authorization": f"Bearer {agent.credential}", **headers})


def test_stream_sends_snapshots_timeline_with_ids_and_resumes(world, hub):
    alice = world.add_agent("alice")
    stream = _open(world, alice)
    try:
        ready = stream.wait(lambda: stream.of("ready"))[0]
        assert ready["id"] == str(ready["data"]["last_id"]) and ready["data"]["resumed"] is False
        assert stream.wait(lambda: stream.of("presence"))[0]["data"]["agents"][0]["id"] == "alice"
        assert stream.wait(lambda: stream.of("offers"))[0]["data"] == {"offers": []}

        world.call(CALLER)
        ringing = stream.wait(lambda: [e for e in stream.of("timeline") if e["data"]["kind"] == "agent_ringing"])[0]
        assert ringing["id"] == str(ringing["data"]["id"])
        offers = stream.wait(lambda: [e for e in stream.of("offers") if e["data"]["offers"]])[0]
        assert offers["data"]["offers"][0]["caller"] == CALLER
    finally:
        stream.close()

    # Reconnect with Last-Event-ID before the ringing entry: it comes again, nothing earlier does.
    resumed = _open(world, alice, **{"Last-Event-ID": str(int(ringing["id"]) - 1)})
    try:
        assert resumed.wait(lambda: resumed.of("ready"))[0]["data"]["resumed"] is True
        first = resumed.wait(lambda: resumed.of("timeline"))[0]
        assert first["data"]["kind"] == "agent_ringing"
    finally:
        resumed.close()


def test_heartbeat_drop_and_refusal(world, hub):
    alice = world.add_agent("alice")
    hub.heartbeat_s = 0.2
    stream = _open(world, alice)
    try:
        stream.wait(lambda: stream.comments.count("heartbeat") >= 2)
        hub.drop(refuse_for_s=1.0)
        stream.thread.join(timeout=5)
        assert not stream.thread.is_alive(), "the dropped stream ended"
        reply = requests.get(
            world.url + "/api/events", headers={"Authorization": f"Bearer {alice.credential}"}, timeout=5
        )
        assert reply.status_code == 503 and reply.headers["Retry-After"] == "1"
    finally:
        stream.close()


def test_reset_credential_ends_the_stream_with_signed_out(world, hub):
    alice = world.add_agent("alice")
    hub.auth_check_s = 0.2
    stream = _open(world, alice)
    try:
        stream.wait(lambda: stream.of("ready"))
        world.services.agents.reset_secret("alice")
        assert "credential changed" in stream.wait(lambda: stream.of("signed_out"))[0]["data"]["reason"]
    finally:
        stream.close()


def test_stream_needs_a_signed_in_agent(world, hub):
    assert requests.get(world.url + "/api/events", timeout=5).status_code == 401


def test_console_config_and_page(world, hub):
    alice = world.add_agent("alice")
    anonymous = requests.get(world.url + "/console/config", timeout=5).json()
    assert anonymous["agent"] is None and anonymous["media"] == "sandbox" and anonymous["sandbox"] is True
    assert anonymous["livekit_url"].startswith("ws://127.0.0.1:")
    assert alice.get("/console/config").json()["agent"]["id"] == "alice"
    page = requests.get(world.url + "/console", timeout=5)
    assert page.status_code == 200 and "Sign in" in page.text
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert requests.get(world.url + "/console/assets/console/console.css", timeout=5).status_code == 200
    assert requests.get(world.url + "/console/assets/console/..%2f..%2fweb%2fconsole.py", timeout=5).status_code == 404
    assert requests.get(world.url + "/console/assets/templates/console.html", timeout=5).status_code == 404


def test_sandbox_rtc_proxy_only_joins_with_your_own_token(world, hub):
    alice = world.add_agent("alice")
    bob = world.add_agent("bob", status="offline")
    call = world.call(CALLER)
    offer = alice.wait_offer()
    token = alice.post(f"/api/calls/{offer['call_id']}/accept").json()
    assert bob.post("/console/sandbox/rtc/join", {"token": token["token"]}).status_code == 403
    joined = alice.post("/console/sandbox/rtc/join", {"token": token["token"]})
    assert joined.status_code == 200 and joined.json()["room"] == token["room"]
    call.wait_current("bridged", timeout=8)
    assert alice.post("/console/sandbox/rtc/join", {"token": "not-a-jwt"}).status_code == 403
    left = alice.post("/console/sandbox/rtc/leave", {"room": token["room"]})
    assert left.status_code == 200 and left.json() == {"ok": True}
    assert alice.get("/console/sandbox/rtc/leave").status_code == 405
    # Leaving again (already out, as after the server moved the agent) is not an error, as in LiveKit.
    again = alice.post("/console/sandbox/rtc/leave", {"room": token["room"]})
    assert again.status_code == 200 and again.json() == {"ok": True, "already_left": True}
    icon = requests.get(world.url + "/favicon.ico", timeout=5)
    assert icon.status_code == 200 and icon.headers["Content-Type"].startswith("image/svg+xml")


def test_sandbox_call_places_a_simulated_call(world, hub):
    alice = world.add_agent("alice")
    bob = world.add_agent("bob", status="offline")
    reply = bob.post("/console/sandbox/call", {"from": "+15550001234"})  # pressed by Bob, who is offline
    assert reply.status_code == 201 and reply.json()["from"] == "+15550001234"
    assert reply.json()["ringing"] == [{"id": "alice", "name": "Alice"}]  # the console says who is rung
    assert alice.wait_offer()["caller"] == "+15550001234"
    assert alice.post("/console/sandbox/call", {"from": "12345"}).status_code == 400
