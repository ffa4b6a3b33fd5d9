"""Driving a warm transfer through faults, and the checks every fault test ends with.

"Caller safe" (the invariant of this suite), checked on what the simulated caller lived
through, not only on the database:
- never dropped by the gateway: the caller's SimCall is still up unless the test hung up,
  and it never heard Twilio's application error (an ``app_error`` event);
- settled in a defined place: in a LiveKit room together with at least one agent (DB call
  ``connected``), or on hold hearing music/reassurance (DB ``on_hold``), or — only where a
  test allows it — hearing the apology/voicemail prompt (DB ``voicemail``);
- every transfer of the call is in a defined state: terminal, or ``conferenced``;
- no transfer is left active once it is terminal (``active_call_id`` cleared).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from gateway.domain import transfers as T
from gateway.sandbox.twiml_exec import FINAL_STATUSES

CALLER = "+15557654321"
SETTLED_TRANSFER_STATES = set(T.TERMINAL) | {T.CONFERENCED}


def wait_until(predicate, timeout: float = 8.0, what: str = "condition", interval: float = 0.03):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def connect_call(world, agent, caller: str = CALLER):
    """A call answered in the browser by ``agent``: (SimCall, call id)."""
    call = world.call(caller)
    offer = agent.wait_offer(timeout=10)
    agent.accept_and_join(offer["call_id"])
    call.wait_current("bridged", timeout=10)
    world.wait(lambda: world.db_call(call.sid)["state"] == "connected", timeout=10, what="call connected")
    if world.settings.transcription_enabled:  # started by REST once connected: what is said next is heard
        world.wait(lambda: call.transcriptions, timeout=10, what="transcription started")
    return call, offer["call_id"]


def transfer_state(world, transfer_id: str) -> str:
    return world.services.views.transfer(transfer_id)["state"]


def timeline(world, call_id: str) -> list[dict]:
    return world.services.views.timeline(call_id)


def kinds(world, call_id: str) -> list[str]:
    return [e["kind"] for e in timeline(world, call_id)]


def joined(world, call_id: str, agent_id: str, room: str) -> bool:
    return any(
        e["kind"] == "agent_joined" and e["agent_id"] == agent_id and e["detail"].get("room") == room
        for e in timeline(world, call_id)
    )


def assert_not_dropped(call) -> None:
    events = call.events
    assert not any(e[0] == "app_error" for e in events), f"caller heard an application error: {events}"
    assert call.status not in FINAL_STATUSES, f"caller was dropped: status={call.status} events={events}"


def caller_place(world, call) -> str:
    """Where the caller is right now: agent / hold / apology / moving (transient) / dropped."""
    if call.status in FINAL_STATUSES:
        return "dropped"
    state = world.db_call(call.sid)["state"]
    current = call.current
    if current.startswith("bridged") and state == "connected":
        others = [p for p in world.livekit.participants(call.room or "") if p["identity"] != f"sip_{call.from_}"]
        return "agent" if others else "moving"
    if state == "on_hold" and (current.startswith("play") or current.startswith("say")):
        return "hold"
    if state == "voicemail" and (current.startswith("say") or current.startswith("record")):
        return "apology"
    return "moving"


def assert_caller_safe(
    world, call, call_id: str, *, allow: Iterable[str] = ("agent", "hold"), timeout: float = 10.0
) -> str:
    """The caller is not dropped and settles in an allowed place; every transfer is settled."""
    allow = set(allow)
    try:
        place = wait_until(
            lambda: (lambda p: p if p in allow or p == "dropped" else None)(caller_place(world, call)),
            timeout=timeout,
            what=f"caller settled in {sorted(allow)}",
        )
    except AssertionError:
        place = caller_place(world, call)
    assert_not_dropped(call)
    assert place in allow, (
        f"caller {place}: hearing {call.current} in {call.room}, DB "
        f"{world.db_call(call.sid)['state']}; timeline {kinds(world, call_id)[-12:]}; "
        f"caller events {call.events[-8:]}"
    )
    for transfer in world.services.views.transfers_of_call(call_id):
        assert transfer["state"] in SETTLED_TRANSFER_STATES, transfer
    assert_no_active_terminal_transfer(world)
    return place


def assert_no_active_terminal_transfer(world) -> None:
    from sqlalchemy import select

    from gateway.adapters.store.models import Transfer

    rows = world.store.read(
        lambda s: [(t.id, t.state, t.active_call_id) for t in s.execute(select(Transfer)).scalars()]
    )
    for tid, state, active in rows:
        assert (active is None) == (state in T.TERMINAL), (tid, state, active)


def join_consult(client, transfer: dict, timeout: float = 15.0) -> dict:
    """A's console joins the consult room as soon as the gateway offers it (A may only move there
    once the caller is on hold, so the join is refused with 403 until then)."""
    reply = wait_until(
        lambda: (lambda r: r if r.status_code != 403 and r.status_code < 500 else None)(
            client.post("/api/rooms/join", {"room": transfer["consult_room"]})
        ),
        timeout,
        "A's consult room",
    )
    assert reply.status_code == 200, reply.text
    client.join(reply.json()["token"])
    return reply.json()


def start_warm(world, alice, call_id: str, target: dict, **extra) -> dict:
    reply = alice.post("/api/transfer/initiate", {"call_id": call_id, "mode": "warm", **target, **extra})
    assert reply.status_code == 202, reply.text
    transfer = reply.json()["transfer"]
    join_consult(alice, transfer)
    return transfer


def finish_warm(world, alice, bob, transfer: dict, call_id: str, *, timeout: float = 12.0) -> str:
    """B accepts and joins, A connects the caller and leaves. Returns the transfer's final state."""
    tid, room = transfer["id"], transfer["consult_room"]
    bob.wait_offer("transfer", timeout=timeout)
    accepted = bob.post(f"/api/transfers/{tid}/accept")
    assert accepted.status_code == 200, accepted.text
    bob.join(accepted.json()["token"])
    world.wait(lambda: joined(world, call_id, bob.id, room), timeout=timeout, what="B in the consult room")
    world.wait(lambda: transfer_state(world, tid) == "target_accepted", timeout=timeout, what="B accepted")
    done = alice.post(f"/api/transfers/{tid}/complete")
    assert done.status_code == 200, done.text
    left = alice.post(f"/api/transfers/{tid}/leave")
    assert left.status_code == 200, left.text
    return world.wait(
        lambda: (lambda s: s if s in T.TERMINAL else None)(transfer_state(world, tid)),
        timeout=timeout,
        what="transfer ended",
    )


def entry(world, call_id: str, kind: str, **match) -> dict | None:
    for e in timeline(world, call_id):
        if e["kind"] == kind and all(e["detail"].get(k) == v for k, v in match.items()):
            return e
    return None


def finish_phone_target(world, alice, transfer: dict, call_id: str, agent_id: str, *, timeout: float = 12.0) -> str:
    """A phone agent B (scripted to answer and press 1) joins; A connects the caller and leaves."""
    tid, room = transfer["id"], transfer["consult_room"]
    world.wait(lambda: joined(world, call_id, agent_id, room), timeout=timeout, what=f"{agent_id} in the consult room")
    world.wait(lambda: transfer_state(world, tid) == "target_accepted", timeout=timeout, what="B accepted")
    done = alice.post(f"/api/transfers/{tid}/complete")
    assert done.status_code == 200, done.text
    left = alice.post(f"/api/transfers/{tid}/leave")
    assert left.status_code == 200, left.text
    return world.wait(
        lambda: (lambda s: s if s in T.TERMINAL else None)(transfer_state(world, tid)),
        timeout=timeout,
        what="transfer ended",
    )
