"""Finding 3: console event streams cannot starve the call path, whatever the number of consoles.

Served as deployed (gunicorn gthread, one worker of six threads): open consoles, then Twilio's signed
voice webhook must still be answered. Streams hand their sockets to the worker's notifier and hold no
thread; with that turned off (CONSOLE_STREAM_DETACH=0) they hold one each, at most the threads minus
the webhooks' reserve (two here), and the consoles beyond get brief streams (short polling)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from gateway.adapters.store import Store
from gateway.config import Settings
from gateway.sandbox.runtime import Doubles
from gateway.services.agents import AgentService

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Gunicorn:
    def __init__(self, database_url: str, doubles: Doubles, **extra):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        s = doubles.settings(Settings(public_base_url=self.url, database_url=database_url))
        self.settings = s
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "LIVEKIT_", "DATABASE_"))}
        env.update(doubles.process_env(s))
        env.update(
            DATABASE_URL=database_url,
            PUBLIC_BASE_URL=self.url,
            SECRET_KEY="stream-test-secret",
            PORT=str(self.port),
            WEB_CONCURRENCY="1",
            PYTHONUNBUFFERED="1",
            **extra,
        )
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "gateway:create_app()"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "/healthz", timeout=1).ok:
                    return
            except requests.RequestException:
                time.sleep(0.2)
        self.stop()
        raise AssertionError("gunicorn did not start")

    def stop(self) -> None:
        # Gunicorn's quick shutdown (SIGINT): the worker ends its open streams and its background work
        # at once. SIGTERM would wait up to graceful_timeout for streams that hold a thread each.
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


class RawStream:
    """A console's event stream read from a plain socket, so a test can hold a hundred of them open."""

    def __init__(self, port: int, credential: str):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=15)
        self.sock.sendall(
            (
                f"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n"
                f"Authorization: Bearer {credential}\r\n\r\n"
            ).encode()
        )
        self.received = b""

    def until(self, needle: bytes, timeout: float = 15.0) -> bool:
        """Read until ``needle`` arrives (True) or the server ends the stream or goes quiet (False)."""
        deadline = time.monotonic() + timeout
        while needle not in self.received:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except OSError:
                return False
            if not data:
                return False
            self.received += data
        return True

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(params=["1", "0"], ids=["detached", "threads-and-polling"])
def served(database_url, request):
    doubles = Doubles().start()
    store = Store(database_url)
    store.migrate()
    agents = AgentService(store)
    credentials = {name: agents.add(name, name.title(), None, True, "offline") for name in ("ann", "bob", "cat", "dan")}
    server = Gunicorn(
        database_url, doubles, GUNICORN_THREADS="6", WEBHOOK_THREADS_RESERVED="2", CONSOLE_STREAM_DETACH=request.param
    )
    yield server, credentials
    server.stop()
    doubles.stop()
    store.engine.dispose()


def test_open_consoles_leave_the_voice_webhook_its_threads(served):
    from twilio.request_validator import RequestValidator

    server, credentials = served
    port = int(server.url.rsplit(":", 1)[1])
    consoles = []
    for credential in credentials.values():
        for _ in range(3):  # one after the other, as they come: Ann's three first
            consoles.append(RawStream(port, credential))
            assert consoles[-1].until(b"\r\n\r\n")  # answered (its head at least)
    fourth = requests.get(
        server.url + "/api/events", headers={"Authorization": f"Bearer {credentials['ann']}"}, timeout=(3, 10)
    )
    form = {"CallSid": "CA" + "5" * 32, "From": "+15557654321", "To": server.settings.twilio_phone_number}
    signature = RequestValidator(server.settings.twilio_auth_token).compute_signature(
        server.url + "/twilio/voice", form
    )
    started = time.monotonic()
    try:
        voice = requests.post(
            server.url + "/twilio/voice", data=form, headers={"X-Twilio-Signature": signature}, timeout=10
        )
        took = time.monotonic() - started
        assert voice.status_code == 200 and "<Response>" in voice.text
        assert took < 3.0, f"the voice webhook waited {took:.1f} s behind the consoles' streams"
        assert fourth.status_code == 429 and int(fourth.headers["Retry-After"]) > 0  # an agent's fourth stream
        assert all(console.until(b"event: ready") for console in consoles)  # every console was served
    finally:
        for console in consoles:
            console.close()


@pytest.fixture
def crowded(database_url):
    """Fifty agents with two consoles each, and Ann, the one agent a call can ring."""
    doubles = Doubles().start()
    store = Store(database_url)
    store.migrate()
    agents = AgentService(store)
    credentials = [agents.add(f"agent{i:02d}", f"Agent {i}", None, True, "offline") for i in range(49)]
    ann = agents.add("ann", "Ann", None, True, "available")
    server = Gunicorn(database_url, doubles, GUNICORN_THREADS="6", WEBHOOK_THREADS_RESERVED="2")
    yield server, [ann, *credentials]
    server.stop()
    doubles.stop()
    store.engine.dispose()


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


def test_a_hundred_open_consoles_hold_no_thread_share_one_poller_and_still_get_their_events(crowded):
    """A hundred consoles on a worker of six threads: the voice webhook is answered, Ann's consoles show
    the call ringing her, everyone's consoles show a colleague's new status, and the worker reads the
    store for all of them with one poller."""
    from twilio.request_validator import RequestValidator

    server, credentials = crowded
    port = int(server.url.rsplit(":", 1)[1])
    consoles = [RawStream(port, credential) for credential in credentials for _ in range(2)]
    try:
        assert all(console.until(b"event: ready") for console in consoles), "every console was served"

        caller = "+15557654321"
        form = {"CallSid": "CA" + "7" * 32, "From": caller, "To": server.settings.twilio_phone_number}
        signature = RequestValidator(server.settings.twilio_auth_token).compute_signature(
            server.url + "/twilio/voice", form
        )
        voice = requests.post(
            server.url + "/twilio/voice", data=form, headers={"X-Twilio-Signature": signature}, timeout=(3, 15)
        )
        assert voice.status_code == 200 and "<Response>" in voice.text

        anns = consoles[:2]
        assert all(c.until(caller.encode()) for c in anns), "Ann's consoles show the call ringing her"
        others = consoles[2:]
        assert not any(caller.encode() in c.received for c in others), "nobody else sees Ann's offer"

        # A colleague goes available: every console's presence says so.
        status = requests.post(
            server.url + "/api/agents/me/status",
            json={"status": "busy"},
            headers={"Authorization": f"Bearer {credentials[1]}"},
            timeout=10,
        )
        assert status.status_code == 200
        busy = b'"id":"agent00","name":"Agent 0","status":"busy"'
        assert all(c.until(busy) for c in consoles), "every console sees agent00 busy"

        metrics = requests.get(server.url + "/metrics", timeout=10).text
        assert _metric(metrics, 'gateway_console_streams{transport="socket"}') == 100
        assert _metric(metrics, "gateway_console_stream_pollers") == 1
    finally:
        for console in consoles:
            console.close()
