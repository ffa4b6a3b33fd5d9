"""Callbacks that keep their place, end to end (simulator + LiveKit double): a waiting caller asks to
be called back and hangs up; when their turn comes the agent is offered the callback, accepts, and
we dial the caller and bridge them in; a callback nobody answers is tried once more, then missed."""

from __future__ import annotations

from sqlalchemy import select

from gateway.adapters.store.models import QueueEntry

CALLER = "+15550900002"


def said(call) -> str:
    return " | ".join(e[1] for e in call.events if e[0] == "say")


def entries(world) -> list[QueueEntry]:
    return world.store.read(lambda s: s.execute(select(QueueEntry).order_by(QueueEntry.enqueued_at)).scalars().all())


def busy_agent(world, name="ann"):
    """An agent talking to a first caller; returns (agent, that call's id)."""
    agent = world.add_agent(name)
    world.call(from_="+15550900001")
    offer = agent.wait_offer(timeout=10)
    agent.accept_and_join(offer["call_id"])
    world.wait(lambda: world.services.views.call(offer["call_id"])["state"] == "connected", what="first connected")
    return agent, offer["call_id"]


def ask_for_a_callback(world):
    waiting = world.call(from_=CALLER)
    waiting.wait_for(lambda c: "press 2" in said(c) and any(e[0] == "play" for e in c.events), timeout=10)
    waiting.press("2")
    waiting.wait_for(lambda c: c.ended, timeout=10)  # told, then the line closes (Hangup)
    return waiting


def dialled_back(world):
    return [c for c in world.twilio.calls() if c.direction == "outbound-api" and c.to == CALLER]


def test_a_callback_keeps_its_place_and_the_caller_is_dialled_and_bridged_when_an_agent_is_free(world):
    world.twilio.script_phone(CALLER, answer=True, answer_after=0.5, digits=None)
    ann, first = busy_agent(world)
    waiting = ask_for_a_callback(world)
    assert "call you back at this number when it is your turn, and you keep your place in line" in said(waiting)
    (entry,) = entries(world)
    assert (entry.state, entry.kind, entry.callback_number) == ("waiting", "callback", CALLER)
    call_id = entry.call_id
    assert world.services.views.call(call_id)["state"] == "queued"  # the line closed, the place did not
    second = world.call(from_="+15550900003")  # comes later: stays behind the callback
    world.wait(lambda: len(entries(world)) == 2, what="second caller waiting")

    assert ann.post(f"/api/calls/{first}/hangup").status_code == 200
    offer = ann.wait_offer(timeout=10)
    assert (offer["call_id"], offer["callback"]) == (call_id, True)
    assert not dialled_back(world)  # the agent first, then the caller
    ann.accept_and_join(call_id)
    world.wait(lambda: dialled_back(world), what="caller dialled back")
    (back,) = dialled_back(world)
    back.wait_current("bridged", timeout=10)
    world.wait(lambda: world.services.views.call(call_id)["state"] == "connected", what="callback connected")
    assert "Hello, this is the call back you asked for. Connecting you to an agent now." in said(back)
    kinds = world.timeline(call_id)
    for kind in ("callback_requested", "caller_left_for_callback", "queue_offered", "callback_dialled"):
        assert kind in kinds, kinds
    assert kinds.index("callback_answered") < kinds.index("caller_connected")
    assert [e.state for e in entries(world)] == ["answered", "waiting"]  # the later caller still waits
    assert world.db_call(second.sid)["state"] == "queued"


def test_a_callback_nobody_answers_is_tried_once_more_then_missed(make_world):
    world = make_world(callback_retry_s=1.0)
    world.twilio.script_phone(CALLER, answer=False, digits=None)
    ann, first = busy_agent(world)
    ask_for_a_callback(world)
    call_id = entries(world)[0].call_id
    assert ann.post(f"/api/calls/{first}/hangup").status_code == 200
    assert ann.wait_offer(timeout=10)["call_id"] == call_id
    ann.accept_and_join(call_id)
    world.wait(lambda: world.services.views.call(call_id)["state"] == "ended", timeout=30, what="callback missed")
    assert len(dialled_back(world)) == 2
    kinds = world.timeline(call_id)
    assert kinds.count("callback_dialled") == 2 and kinds.count("callback_unanswered") == 1
    assert "callback_missed" in kinds and "queue_missed" in kinds
    (entry,) = entries(world)
    assert (entry.state, entry.end_reason, entry.callback_attempts) == ("missed", "callback not answered", 2)
    world.wait(lambda: world.services.agents.get("ann")["status"] == "available", what="ann free again")
