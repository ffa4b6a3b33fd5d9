"""Finding 3: console event streams cannot starve the call path, whatever the number of consoles.

Served as deployed (gunicorn gthread, one worker of six threads, two of them kept for webhooks):
twelve open consoles, then Twilio's signed voice webhook must still be answered at once. Before,
every stream held a thread for up to five minutes and the webhook waited behind them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
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
        env.update(
            TWILIO_ACCOUNT_SID=s.twilio_account_sid,
            TWILIO_AUTH_TOKEN=s.twilio_auth_token,
            TWILIO_PHONE_NUMBER=s.twilio_phone_number,
            TWILIO_API_BASE_URL=s.twilio_api_base_url,
            LIVEKIT_URL=s.livekit_url,
            LIVEKIT_API_KEY=s.livekit_api_key,
            LIVEKIT_API_SECRET=s.livekit_api_secret,
            LIVEKIT_SIP_HOST=s.livekit_sip_host,
            LIVEKIT_SIP_USERNAME=s.livekit_sip_username,
            LIVEKIT_SIP_PASSWORD=s.livekit_sip_password,
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
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _open_stream(url: str, credential: str, seen: list) -> requests.Response | None:
    """Open a stream and read it on a thread, as a console does; record its first event."""
    try:
        reply = requests.get(
            url + "/api/events", headers={"Authorization": f"Bearer {credential}"}, stream=True, timeout=(3, 30)
        )
    except requests.RequestException:
        seen.append("unanswered")
        return None

    def read():
        try:
            for line in reply.iter_lines(decode_unicode=True):
                if line and line.startswith("event:"):
                    seen.append(line.split(":", 1)[1].strip())
                    return
        except requests.RequestException:
            pass

    if reply.status_code == 200:
        threading.Thread(target=read, daemon=True).start()
    else:
        seen.append(reply.status_code)
    return reply


@pytest.fixture
def served(database_url):
    doubles = Doubles().start()
    store = Store(database_url)
    store.migrate()
    agents = AgentService(store)
    credentials = {name: agents.add(name, name.title(), None, True, "offline") for name in ("ann", "bob", "cat", "dan")}
    server = Gunicorn(database_url, doubles, GUNICORN_THREADS="6", WEBHOOK_THREADS_RESERVED="2")
    yield server, credentials
    server.stop()
    doubles.stop()
    store.engine.dispose()


def test_open_consoles_leave_the_voice_webhook_its_threads(served):
    from twilio.request_validator import RequestValidator

    server, credentials = served
    seen: list = []
    streams = [_open_stream(server.url, credential, seen) for credential in credentials.values() for _ in range(3)]
    fourth = requests.get(
        server.url + "/api/events",
        headers={"Authorization": f"Bearer {credentials['ann']}"},
        timeout=(3, 10),
        stream=True,
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
    finally:
        for stream in [*streams, fourth]:
            if stream is not None:
                stream.close()

    assert voice.status_code == 200 and "<Response>" in voice.text
    assert took < 3.0, f"the voice webhook waited {took:.1f} s behind the consoles' streams"
    assert fourth.status_code == 429 and int(fourth.headers["Retry-After"]) > 0  # an agent's fourth stream
    deadline = time.monotonic() + 10
    while seen.count("ready") < 12 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert seen.count("ready") == 12, seen  # every console was served (the extra ones briefly)
