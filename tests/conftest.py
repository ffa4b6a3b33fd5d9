"""Shared fixtures: a fresh database per test (SQLite, or Postgres via TEST_DATABASE_URL),
and a whole world on loopback — the gateway served over HTTP plus the sandbox doubles."""

from __future__ import annotations

import os
import threading
import time

import pytest
import requests
from werkzeug.serving import WSGIRequestHandler, make_server

from gateway import create_app
from gateway.adapters.store import Store
from gateway.bootstrap import build
from gateway.config import Settings, normalise_database_url
from gateway.sandbox.runtime import PHONE_NUMBER, Doubles


def pytest_configure(config):
    """TEST_DATABASE_SIBLING=name: this run uses ``<db>_<name>`` on TEST_DATABASE_URL's Postgres server
    (created if missing) instead of ``<db>``, so that two runs can go on side by side (scripts/test.sh)."""
    url, sibling = os.environ.get("TEST_DATABASE_URL"), os.environ.get("TEST_DATABASE_SIBLING")
    if url and sibling and normalise_database_url(url).startswith("postgresql"):
        from tests.faults._db import sibling_database

        os.environ["TEST_DATABASE_URL"] = sibling_database(normalise_database_url(url), sibling)


@pytest.fixture
def database_url(tmp_path) -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        url = normalise_database_url(url)
        store = Store(url)
        store.drop_all()
        store.engine.dispose()
        return url
    return f"sqlite:///{tmp_path / 'gateway.db'}"


@pytest.fixture
def store(database_url) -> Store:
    store = Store(database_url)
    store.migrate()
    yield store
    store.engine.dispose()


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs) -> None:
        pass


class _LateApp:
    """WSGI indirection: the server's port must be known before the app (its PUBLIC_BASE_URL) exists."""

    app = None

    def __call__(self, environ, start_response):
        return self.app(environ, start_response)


class World:
    """The gateway on a loopback port, the Twilio simulator, the LiveKit and OpenAI doubles."""

    def __init__(self, database_url: str, **overrides):
        self.doubles = Doubles(time_scale=overrides.pop("time_scale", 0.02)).start()
        self.twilio, self.livekit, self.openai = self.doubles.twilio, self.doubles.livekit, self.doubles.openai
        self._late = late = _LateApp()
        self.server = make_server("127.0.0.1", 0, late, threaded=True, request_handler=_QuietHandler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        base = Settings(
            database_url=database_url,
            transcription_enabled=True,
            public_base_url=self.url,
            ring_timeout_s=2.0,
            queue_timeout_s=590.0,
            summary_deadline_s=1.0,
            intro_timeout_s=30.0,
            secret_key="test-secret",
            admin_token="admin-test-token",
            provider_timeout_s=3.0,
        )
        self.settings = self.doubles.settings(base).with_overrides(**overrides)
        self.services = build(self.settings)
        self.app = create_app(services=self.services)
        late.app = self.app
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.services.start()
        self.doubles.connect(self.settings)
        self.store = self.services.gw.store

    def restart(self) -> None:
        """Stop this gateway process's work without draining it, and start a fresh one on the same
        database and port: whatever it knew must come back from the store."""
        self.server.shutdown()
        self.server.server_close()
        self.services.runner.stop(timeout_s=0.5)
        self.services.gw.rooms.close()
        self.services.gw.store.engine.dispose()
        port = int(self.url.rsplit(":", 1)[1])
        self.services = build(self.settings)
        self.app = create_app(services=self.services)
        self._late.app = self.app
        self.server = make_server("127.0.0.1", port, self._late, threaded=True, request_handler=_QuietHandler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.services.start()
        self.store = self.services.gw.store

    def close(self) -> None:
        console = self.app.extensions.get("console")
        if console is not None:
            console.shutdown()  # the streams' notifier stops polling this world's store
        self.services.stop()
        self.doubles.stop()
        self.server.shutdown()
        self.store.engine.dispose()

    # ------------------------------------------------------------- helpers
    def add_agent(
        self, agent_id: str, *, phone: str | None = None, browser: bool = True, status: str = "available"
    ) -> AgentClient:
        credential = self.services.agents.add(agent_id, agent_id.title(), phone, browser, status)
        return AgentClient(self, agent_id, credential)

    def call(self, from_: str = "+15557654321"):
        return self.twilio.place_inbound_call(from_=from_, to=PHONE_NUMBER)

    def db_call(self, sid: str) -> dict:
        from sqlalchemy import select

        from gateway.adapters.store.models import Call
        from gateway.services.views import call_dict

        return self.store.read(lambda s: call_dict(s.execute(select(Call).where(Call.twilio_sid == sid)).scalar_one()))

    def timers(self) -> list[tuple[str, str]]:
        """(kind, state) of every timer job (see Store.enqueue's ``timer_of``), oldest first."""
        from sqlalchemy import select

        from gateway.adapters.store.models import Job

        return [
            tuple(row)
            for row in self.store.read(
                lambda s: s.execute(
                    select(Job.kind, Job.state).where(Job.dedupe_key.like("timer:%")).order_by(Job.id)
                ).all()
            )
        ]

    def timeline(self, call_id: str) -> list[str]:
        return [e["kind"] for e in self.services.views.timeline(call_id)]

    def wait(self, predicate, timeout: float = 15.0, what: str = "condition", explain=None):
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.02)
        detail = f"; {explain()}" if explain else ""
        raise AssertionError(f"timed out waiting for {what} (last seen: {value!r}){detail}")

    def story(self, call) -> str:
        """The call's timeline and what the simulated caller went through, for failure messages."""
        row = self.db_call(call.sid)
        kinds = [f"{e['kind']}{e['detail'] or ''}" for e in self.services.views.timeline(row["id"])]
        return (
            f"call {row['state']} in {row['room']}; caller hearing {call.current}; "
            f"timeline {kinds[-14:]}; caller events {call.events[-10:]}"
        )

    def participants(self, room: str) -> list[str]:
        return sorted(p["identity"] for p in self.livekit.participants(room)) if room in self.livekit.rooms() else []

    def settle(self) -> None:
        self.livekit.wait_webhooks_idle(5)
        self.services.runner.wait_idle(5)


class AgentClient:
    """An agent using the REST API the console uses (Bearer credential), plus its browser's media join."""

    def __init__(self, world: World, agent_id: str, credential: str):
        self.world, self.id, self.credential = world, agent_id, credential
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {credential}"
        self.room: str | None = None

    def post(self, path: str, json: dict | None = None):
        return self.http.post(self.world.url + path, json=json or {}, timeout=10)

    def get(self, path: str):
        return self.http.get(self.world.url + path, timeout=10)

    def offers(self) -> list:
        return self.get("/api/agents/me/offers").json()["offers"]

    def wait_offer(self, kind: str = "call", timeout: float = 8.0) -> dict:
        return self.world.wait(
            lambda: next((o for o in self.offers() if o["kind"] == kind), None), timeout, f"{kind} offer for {self.id}"
        )

    def join(self, token: str) -> dict:
        """What livekit-client does: connect to LiveKit with the token the gateway issued."""
        reply = requests.post(self.world.livekit.url + "/_sim/rtc/join", json={"token": token}, timeout=5)
        assert reply.status_code == 200, reply.text
        self.room = reply.json()["room"]
        return reply.json()

    def leave(self) -> None:
        requests.post(
            self.world.livekit.url + "/_sim/rtc/leave", json={"room": self.room, "identity": self.id}, timeout=5
        )

    def accept_and_join(self, call_id: str) -> dict:
        reply = self.post(f"/api/calls/{call_id}/accept")
        assert reply.status_code == 200, reply.text
        self.join(reply.json()["token"])
        return reply.json()


@pytest.fixture
def world(database_url):
    w = World(database_url)
    yield w
    w.close()


@pytest.fixture
def make_world(database_url):
    made = []

    def factory(**overrides):
        w = World(database_url, **overrides)
        made.append(w)
        return w

    yield factory
    for w in made:
        w.close()


def pytest_collection_modifyitems(session, config, items):
    """Browser tests last: Playwright's sync API keeps an event loop running on the main thread
    for as long as it lives, which would break later tests that call asyncio.run()."""
    items.sort(key=lambda item: "tests/browser/" in str(item.fspath).replace("\\", "/"))
