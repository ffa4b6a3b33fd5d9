"""Property tests of the state machines (hypothesis), and of the one-active-transfer rule in the store.

The caller invariant, precisely. A call's state says where the caller is:
- ``connected`` — in a LiveKit room with at least one agent;
- ``on_hold``   — outside any room, hearing hold music and a reassurance;
- ``ended``     — hung up (terminal);
and two transient states, in which the caller still hears something and which always have
a way out:
- ``bridging``  — dialling into a room, hearing ringback while an agent is reached; left by
  ``agent_joined`` (→ connected), ``hold``, ``no_agent`` (→ voicemail) or ``hangup``;
- ``voicemail`` — hearing the apology / recording a message; left only by ``hangup``.
For every sequence of events (legal or not): the state is always one of these five; an illegal
event raises IllegalTransition and changes nothing; the caller can hang up from every state;
``connected`` is only ever entered through ``agent_joined`` (from bridging) or ``hold_failed`` (from
on_hold: the hold redirect never reached Twilio, so the caller never left the agent's room) — never
by a caller who really was on hold; and terminal states stay terminal (calls, legs and transfers).

At most one transfer is active per call: modelled on the domain machines (a rule-based model of
a call with its transfers) and checked against the real store and TransferService: the
``transfers.active_call_id`` unique key refuses a second active transfer, ``initiate`` answers 409,
terminal transfers release the key, and concurrent initiates let exactly one through.
"""

from __future__ import annotations

import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from gateway.adapters.store.db import new_id
from gateway.adapters.store.models import Call, Leg, Transfer
from gateway.bootstrap import build
from gateway.domain import calls as C
from gateway.domain import legs as L
from gateway.domain import transfers as T
from gateway.domain.calls import CALL
from gateway.domain.legs import LEG
from gateway.domain.machine import IllegalTransition
from gateway.domain.transfers import TRANSFER
from gateway.services.transfers import TransferError
from gateway.web.api import status_of
from tests.faults._counts import bump
from tests.faults.inproc import settings_for

MACHINES = {"call": (CALL, C.BRIDGING), "leg": (LEG, L.RINGING), "transfer": (TRANSFER, T.INITIATED)}
CALLER_PLACE = {
    C.CONNECTED: "in a room with an agent",
    C.ON_HOLD: "on hold",
    C.QUEUED: "in line: greeting, place, hold music",
    C.ENDED: "hung up",
    C.BRIDGING: "ringback (transient)",
    C.VOICEMAIL: "apology / voicemail (transient)",
}
PROPS = dict(deadline=None, database=None, suppress_health_check=list(HealthCheck))


def events_of(machine):
    return st.sampled_from(sorted(machine.events) + ["bogus", "", "HANGUP"])


# ------------------------------------------------------------ every machine
@pytest.mark.parametrize("name", sorted(MACHINES))
@settings(max_examples=400, **PROPS)
@given(data=st.data())
def test_any_event_sequence_keeps_the_machine_well_formed(name, data):
    machine, initial = MACHINES[name]
    start = data.draw(st.one_of(st.just(initial), st.sampled_from(sorted(machine.states))), label="start")
    events = data.draw(st.lists(events_of(machine), max_size=25), label="events")
    state = start
    bump("state_machine_sequences")
    for event in events:
        was_terminal = machine.is_terminal(state)
        try:
            outcome = machine.apply(state, event)
        except IllegalTransition as exc:
            assert (exc.state, exc.event) == (state, event)
            assert not machine.can(state, event)
            continue  # nothing changed: ``state`` is still the state
        assert outcome.state in machine.states
        assert outcome.changed == (outcome.state != state)
        assert machine.apply(state, event) == outcome  # pure: offering it again gives the same answer
        if was_terminal:
            assert outcome.state == state and not outcome.changed, (state, event, outcome)
        if not outcome.changed:
            # A duplicate: seeing the event again where it already led changes nothing.
            assert machine.is_duplicate(state, event) or machine.transitions.get((state, event)) == state
        state = outcome.state


# -------------------------------------------------------- the caller invariant
@settings(max_examples=500, **PROPS)
@given(events=st.lists(events_of(CALL), max_size=30))
def test_the_caller_is_always_somewhere_defined(events):
    assert set(CALLER_PLACE) == CALL.states == C.LIVE_STATES | {C.ENDED}
    state, path = C.BRIDGING, [C.BRIDGING]
    bump("state_machine_sequences")
    for event in events:
        assert state in CALLER_PLACE
        if state != C.ENDED:
            assert CALL.can(state, "hangup"), f"the caller cannot hang up from {state}"
        if state == C.BRIDGING:
            assert CALL.apply(state, "agent_joined").state == C.CONNECTED  # an agent can always come
        if state == C.VOICEMAIL:
            assert {e for e in CALL.events if CALL.can(state, e) and CALL.apply(state, e).changed} == {"hangup"}
        try:
            outcome = CALL.apply(state, event)
        except IllegalTransition:
            continue
        if outcome.state == C.CONNECTED and outcome.changed:
            assert (state, event) in ((C.BRIDGING, "agent_joined"), (C.ON_HOLD, "hold_failed")), (state, event)
        state = outcome.state
        path.append(state)
    assert state in CALLER_PLACE
    if C.ENDED in path:
        assert path[path.index(C.ENDED) :] == [C.ENDED] * (len(path) - path.index(C.ENDED))


class CallWithTransfers(RuleBasedStateMachine):
    """The domain model of one call and its transfers, as the services combine them:
    initiate puts the caller on hold (only from connected, only if no transfer is active),
    connect re-bridges the caller, every transfer ending brings the caller back to a room."""

    def __init__(self):
        super().__init__()
        self.call = C.CONNECTED
        self.transfers: list[str] = []

    def active(self) -> list[int]:
        return [i for i, s in enumerate(self.transfers) if s in T.ACTIVE]

    @rule()
    def initiate(self):
        if self.active() or self.call != C.CONNECTED:
            return  # the service refuses (409)
        self.transfers.append(T.INITIATED)
        self.call = CALL.apply(self.call, "hold").state

    @rule(event=events_of(TRANSFER))
    def transfer_event(self, event):
        if not self.transfers:
            return
        i = len(self.transfers) - 1
        before = self.transfers[i]
        try:
            after = TRANSFER.apply(before, event).state
        except IllegalTransition:
            return
        self.transfers[i] = after
        if before != after and self.call != C.ENDED:
            if after == T.CONFERENCED or (after in T.TERMINAL and after not in (T.ABANDONED, T.COMPLETED)):
                if self.call == C.ON_HOLD:
                    self.call = CALL.apply(self.call, "rebridge").state  # into the room with B, or back to A
            if after == T.ABANDONED:
                self.call = CALL.apply(self.call, "hangup").state

    @rule()
    def agent_joins(self):
        if CALL.can(self.call, "agent_joined"):
            self.call = CALL.apply(self.call, "agent_joined").state

    @rule()
    def caller_hangs_up(self):
        self.call = CALL.apply(self.call, "hangup").state
        for i in self.active():
            self.transfers[i] = TRANSFER.apply(self.transfers[i], "caller_hangup").state

    @invariant()
    def at_most_one_active_transfer(self):
        assert len(self.active()) <= 1, self.transfers

    @invariant()
    def caller_defined(self):
        assert self.call in CALLER_PLACE
        if self.active() and self.transfers[self.active()[0]] in (
            T.INITIATED,
            T.CONSULTING,
            T.TARGET_RINGING,
            T.TARGET_ACCEPTED,
        ):
            assert self.call in (C.ON_HOLD, C.ENDED), (self.call, self.transfers)

    @invariant()
    def terminal_transfers_stay_terminal(self):
        for state in self.transfers:
            assert state in TRANSFER.states

    def teardown(self):
        bump("state_machine_sequences")


def test_call_with_transfers_model():
    run_state_machine_as_test(CallWithTransfers, settings=settings(max_examples=300, stateful_step_count=30, **PROPS))


# ------------------------------------------------- the store and the services
@pytest.fixture
def services(database_url):
    svc = build(settings_for(database_url))
    svc.agents.add("alice", "Alice", None, True, "available")
    yield svc
    svc.stop()
    svc.gw.store.engine.dispose()


def connected_call(store) -> str:
    """A caller talking to Alice: a connected call and Alice's joined leg (built directly in the store)."""

    def work(s):
        call_id = new_id("call")
        s.add(
            Call(
                id=call_id,
                twilio_sid="CA" + new_id("")[1:] + "0" * 15,
                from_number="+15557654321",
                to_number="+15550100000",
                room=f"call_{call_id}",
                state=C.CONNECTED,
                agent_id="alice",
            )
        )
        s.flush()
        s.add(
            Leg(
                id=new_id("leg"),
                call_id=call_id,
                agent_id="alice",
                kind="browser",
                room=f"call_{call_id}",
                state=L.JOINED,
                identity="alice",
            )
        )
        return call_id

    return store.run(work)


def reconnect(store, call_id: str) -> None:
    """Scaffolding: the caller is back with Alice in a room (so a new transfer may start)."""

    def work(s):
        call = s.get(Call, call_id)
        call.state, call.version = C.CONNECTED, call.version + 1
        s.add(
            Leg(
                id=new_id("leg"),
                call_id=call_id,
                agent_id="alice",
                kind="browser",
                room=call.room,
                state=L.JOINED,
                identity="alice",
            )
        )

    store.run(work)


def test_unique_active_transfer_against_the_store(services):
    store, transfers = services.gw.store, services.transfers
    seen = {"initiated": 0, "refused": 0, "unique_key_refused": 0, "unique_key_allowed": 0, "events": 0, "terminal": 0}

    class ActiveTransferRule(RuleBasedStateMachine):
        calls = Bundle("calls")

        def __init__(self):
            super().__init__()
            self.model: dict[str, str] = {}  # transfer id -> state
            self.call_of: dict[str, str] = {}
            self.connected: set[str] = set()

        def active_of(self, call_id: str) -> list[str]:
            return [t for t, s in self.model.items() if self.call_of[t] == call_id and s in T.ACTIVE]

        @rule(target=calls)
        def new_call(self):
            call_id = connected_call(store)
            self.connected.add(call_id)
            return call_id

        @rule(call_id=calls, mode=st.sampled_from(["warm", "cold"]))
        def initiate(self, call_id, mode):
            allowed = call_id in self.connected and not self.active_of(call_id)
            try:
                transfer = transfers.initiate(
                    agent_id="alice",
                    call_id=call_id,
                    target_agent_id=None,
                    target_number="+15550009999",
                    mode=mode,
                    notes=None,
                )
            except TransferError as exc:
                assert not allowed, f"refused a legal initiate: {status_of(exc)} {exc}"
                assert status_of(exc) in (409,), (status_of(exc), str(exc))
                seen["refused"] += 1
                return
            assert allowed, "a second active transfer (or one on a call not connected) was let through"
            assert transfer.state in T.ACTIVE and transfer.active_call_id == call_id
            self.model[transfer.id], self.call_of[transfer.id] = transfer.state, call_id
            seen["initiated"] += 1
            self.connected.discard(call_id)  # on hold now

        @rule(call_id=calls)
        def raw_second_row(self, call_id):
            """The database alone refuses a second active transfer of a call."""

            def work(s):
                s.add(
                    Transfer(
                        id=new_id("xfer"),
                        call_id=call_id,
                        source_agent_id="alice",
                        mode="warm",
                        state=T.INITIATED,
                        active_call_id=call_id,
                        consult_room="call_raw",
                    )
                )
                s.flush()
                raise _Rollback()

            try:
                store.run(work)
            except IntegrityError:
                assert self.active_of(call_id), "the unique key refused a call with no active transfer"
                seen["unique_key_refused"] += 1
            except _Rollback:
                assert not self.active_of(call_id), "the unique key let a second active transfer in"
                seen["unique_key_allowed"] += 1

        @precondition(lambda self: self.model)
        @rule(data=st.data(), event=events_of(TRANSFER))
        def event(self, data, event):
            tid = data.draw(st.sampled_from(sorted(self.model)))
            before = self.model[tid]
            changed = store.run(
                lambda s: transfers.moves.apply(
                    s, s.get(Transfer, tid, populate_existing=True), event, end_reason="property test"
                )
            )
            try:
                expected = TRANSFER.apply(before, event)
            except IllegalTransition:
                assert changed is False
                return
            assert changed == expected.changed
            self.model[tid] = expected.state
            seen["events"] += 1
            seen["terminal"] += expected.changed and expected.state in T.TERMINAL

        @rule(call_id=calls)
        def back_with_alice(self, call_id):
            if not self.active_of(call_id) and call_id not in self.connected:
                reconnect(store, call_id)
                self.connected.add(call_id)

        @invariant()
        def store_matches_model(self):
            rows = store.read(
                lambda s: [
                    (t.id, t.call_id, t.state, t.active_call_id)
                    for t in s.execute(select(Transfer)).scalars()
                    if t.id in self.model
                ]
            )
            for tid, call_id, state, active in rows:
                assert state == self.model[tid], (tid, state, self.model[tid])
                assert active == (call_id if state in T.ACTIVE else None), (tid, state, active)
            per_call = store.read(
                lambda s: s.execute(
                    select(Transfer.active_call_id, func.count())
                    .where(Transfer.active_call_id.isnot(None))
                    .group_by(Transfer.active_call_id)
                ).all()
            )
            assert all(n == 1 for _, n in per_call), per_call

        def teardown(self):
            bump("state_machine_sequences")

    run_state_machine_as_test(ActiveTransferRule, settings=settings(max_examples=25, stateful_step_count=20, **PROPS))
    # The paths the property is about were exercised (how far random event runs go is up to hypothesis).
    assert seen["initiated"] and seen["refused"] and seen["unique_key_refused"], seen


class _Rollback(Exception):
    pass


def test_concurrent_initiates_let_exactly_one_through(services):
    store, transfers = services.gw.store, services.transfers
    for _round in range(5):
        call_id = connected_call(store)
        barrier = threading.Barrier(6)
        results = []

        def go():
            barrier.wait()
            try:
                transfers.initiate(
                    agent_id="alice",
                    call_id=call_id,
                    target_agent_id=None,
                    target_number="+15550009999",
                    mode="warm",
                    notes=None,
                )
                results.append(202)
            except TransferError as exc:
                results.append(status_of(exc))
            except Exception as exc:  # anything else is a bug
                results.append(repr(exc))

        threads = [threading.Thread(target=go) for _ in range(6)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        bump("bad_inputs_tried", 5)
        assert sorted(results, key=str) == [202] + [409] * 5, results
        active = store.read(
            lambda s: s.execute(
                select(func.count()).select_from(Transfer).where(Transfer.active_call_id == call_id)
            ).scalar()
        )
        assert active == 1
