"""Service tests run over both units of work: the in-memory twin (no database) and the SQL one
(SQLite; Postgres too when TEST_DATABASE_URL is set). Each test gets an empty store (the schema's
seed rows only), and a ``Desk``: the routing, queue and leg services wired as the composition root
wires them, over that store, with helpers to set up agents, teams and calls and to read what the
services stored, queued and recorded."""

from __future__ import annotations

import os
import shutil
from datetime import timedelta

import pytest
from sqlalchemy import text

from gateway.adapters.store import Store
from gateway.adapters.store.memory import MemoryStore
from gateway.adapters.store.models import Agent, Base, Call, Leg, Team, utcnow
from gateway.config import Settings, normalise_database_url
from gateway.domain import agents as agent_rules
from gateway.domain import calls as C
from gateway.domain import legs as L
from gateway.domain import queues as Q
from gateway.services import job_types as J
from gateway.services.agent_legs import AgentLegs
from gateway.services.answers import Answers
from gateway.services.caller import Caller
from gateway.services.legs import Legs
from gateway.services.ports import Gateway, LiveKitHealth
from gateway.services.queues import Queues
from gateway.services.routing import Routing
from gateway.services.summaries import Summaries
from gateway.services.transfer_events import TransferEvents
from gateway.services.transfer_moves import TransferMoves
from gateway.services.transfers import TransferService

RING_S, MAX_WAIT_S, INTRO_S = 20.0, 120.0, 60.0
BACKENDS = ["memory", "sqlite"] + (["postgres"] if os.environ.get("TEST_DATABASE_URL") else [])


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> str:
    """One migrated SQLite file, copied for each test (migrating costs far more than a copy)."""
    path = tmp_path_factory.mktemp("schema") / "gateway.db"
    store = Store(f"sqlite:///{path}")
    store.migrate()
    store.engine.dispose()
    return str(path)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    url = normalise_database_url(os.environ["TEST_DATABASE_URL"])
    store = Store(url)
    store.drop_all()
    store.migrate()
    store.engine.dispose()
    return url


@pytest.fixture(params=BACKENDS)
def units(request, tmp_path):
    if request.param == "memory":
        yield MemoryStore()
        return
    if request.param == "sqlite":
        path = tmp_path / "gateway.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        store = Store(f"sqlite:///{path}")
    else:
        store = Store(request.getfixturevalue("postgres_url"))
        with store.engine.begin() as conn:
            tables = ", ".join(t.name for t in Base.metadata.sorted_tables if t.name != "teams")
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY"))
            conn.execute(text("DELETE FROM teams WHERE id != :default"), {"default": Q.DEFAULT_TEAM})
    yield store
    store.engine.dispose()


class Desk:
    """The services under test, and what a test needs around them."""

    def __init__(self, units):
        self.units = units
        settings = Settings(ring_timeout_s=RING_S, queue_timeout_s=MAX_WAIT_S, intro_timeout_s=INTRO_S)
        gw = Gateway(settings=settings, store=units, telephony=None, rooms=None, summarizer=None, urls=None)
        # As gateway.bootstrap wires them (the providers are never called: their work is only queued).
        self.legs = Legs(gw)
        self.queues = Queues(gw, self.legs)
        self.routing = Routing(gw, self.legs, self.queues)
        self.moves = TransferMoves(gw, self.legs, self.routing)
        self.transfers = TransferService(gw, self.moves, self.queues)
        self.events = TransferEvents(units, self.legs, self.moves)
        answers = Answers(gw)
        self.caller = Caller(gw, self.legs, self.routing, answers, self.events, LiveKitHealth())
        summaries = Summaries(gw, lambda provider, kind: None)
        self.agent_legs = AgentLegs(gw, self.legs, self.routing, answers, summaries, self.events)
        self.legs.agent_free = self.queues.offer_next_to
        self._calls = 0

    def run(self, work):
        return self.units.run(work)

    # -------------------------------------------------------------- set-up
    def agent(self, agent_id, *, teams=(Q.DEFAULT_TEAM,), status=agent_rules.AVAILABLE, idle_min=None, phone=None):
        """An agent with a console; ``idle_min``: free for that many minutes (None: never had a call)."""
        idle_since = None if idle_min is None else utcnow() - timedelta(minutes=idle_min)

        def work(uow):
            uow.agents.add(
                Agent(
                    id=agent_id,
                    name=agent_id.title(),
                    phone=phone,
                    status=status,
                    idle_since=idle_since,
                    secret_hash="x",
                )
            )
            for team_id in teams:
                if uow.teams.get(team_id) is None:
                    uow.teams.add(Team(id=team_id, name=team_id.title()))
                uow.teams.add_member(team_id, agent_id)

        self.run(work)

    def call(self, *, team=None, minutes_ago=0.0, from_number="+15557654321"):
        """A caller who just dialled in (hearing ringback, nobody on the line yet)."""
        self._calls += 1
        call = Call(
            id=f"call_{self._calls}",
            twilio_sid=f"CA{self._calls:032d}",
            from_number=from_number,
            to_number="+15550001000",
            room=f"call_{self._calls}",
            state=C.BRIDGING,
            team_id=team,
            created_at=utcnow() - timedelta(minutes=minutes_ago),
        )
        self.run(lambda uow: uow.calls.add(call))
        return call.id

    def connected_call(self, agent_id, *, team=None) -> tuple[str, str]:
        """A caller talking with ``agent_id`` (who answered in the console): (call id, the agent's leg)."""
        call_id = self.call(team=team)

        def work(uow):
            call = uow.calls.get(call_id)
            uow.compare_and_set(call, state=C.CONNECTED, agent_id=agent_id, connected_at=utcnow())
            uow.compare_and_set(uow.agents.get(agent_id), status=agent_rules.BUSY)
            leg = Leg(
                id=f"leg_{call_id}_{agent_id}",
                call_id=call_id,
                agent_id=agent_id,
                kind="browser",
                room=call.room,
                state=L.JOINED,
                identity=agent_id,
            )
            uow.legs.add(leg)
            return leg.id

        return call_id, self.run(work)

    def route_new_call(self, call_id) -> bool:
        return self.run(lambda uow: self.routing.route_new_call(uow, uow.calls.get(call_id)))

    def set_status(self, agent_id, status):
        self.run(lambda uow: uow.compare_and_set(uow.agents.get(agent_id), status=status))

    # ---------------------------------------------------- what happened
    def transfer(self, transfer_id):
        return self.units.read(lambda uow: uow.transfers.get(transfer_id))

    def legs_of(self, call_id) -> list[tuple[str, str, str, str | None]]:
        """(agent, room, state, end reason) of the call's live legs, oldest first."""
        return self.units.read(
            lambda uow: [(leg.agent_id, leg.room, leg.state, leg.end_reason) for leg in uow.legs.live(call_id)]
        )

    def leg(self, leg_id):
        return self.units.read(lambda uow: uow.legs.get(leg_id))

    def status(self, agent_id) -> str:
        return self.units.read(lambda uow: uow.agents.get(agent_id).status)

    def call_state(self, call_id) -> tuple[str, str | None]:
        return self.units.read(lambda uow: (c := uow.calls.get(call_id)).state and (c.state, c.end_reason))

    def ringing(self, call_id) -> list[tuple[str, str]]:
        """(agent, channel) of the call's legs still ringing, oldest first."""
        return self.units.read(lambda uow: [(leg.agent_id, leg.kind) for leg in uow.legs.live(call_id)])

    def offers(self, call_id) -> list[tuple[str, str]]:
        """(agent, leg id) of the call's live legs, oldest first."""
        return self.units.read(lambda uow: [(leg.agent_id, leg.id) for leg in uow.legs.live(call_id)])

    def live_leg_ids(self, call_id) -> list[str]:
        return self.units.read(lambda uow: [leg.id for leg in uow.legs.live(call_id)])

    def line(self, team=Q.DEFAULT_TEAM, *call_ids) -> dict[str, tuple[str, int]]:
        """(state, place in line) of these calls' live entries."""

        def work(uow):
            found = {}
            for call_id in call_ids:
                entry = uow.queue.live(call_id)
                if entry is not None:
                    found[call_id] = (entry.state, uow.queue.position(entry))
            return found

        return self.units.read(work)

    def jobs(self, *kinds) -> list[tuple[J.Job, float]]:
        """The jobs waiting to run (of these kinds), decoded, with the whole seconds until each is due (0: now)."""
        pending = self.units.read(lambda uow: uow.jobs.pending())
        return [
            (J.decode(kind, payload), max(0, round(due)))
            for kind, payload, due in pending
            if not kinds or kind in kinds
        ]

    def timeline(self, call_id) -> list[tuple[str, str | None, dict]]:
        """(kind, agent, detail) of the call's timeline."""
        entries = self.units.read(lambda uow: uow.timeline.of_call(call_id))
        return [(e.kind, e.agent_id, e.detail) for e in entries]

    def kinds(self, call_id) -> list[str]:
        return [kind for kind, _, _ in self.timeline(call_id)]


@pytest.fixture
def desk(units) -> Desk:
    return Desk(units)
