"""Callbacks that keep their place, end to end (simulator + LiveKit double): a waiting caller asks to
be called back and hangs up; when their turn comes the agent is offered the callback, accepts, and
we dial the caller and bridge them in; a callback nobody answers is tried once more, then missed."""

from __future__ import annotations

from sqlalchemy import select

from gateway.adapters.store.models import QueueEntry
from tests.conftest import AgentClient
from tests.integration.test_console_stream import Stream

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


def supervisor(world, agent_id: str = "sam") -> AgentClient:
    credential = world.services.agents.add(agent_id, "Sam", None, True, "offline", role="supervisor")
    return AgentClient(world, agent_id, credential)


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
    told = [
        e for e in ann.get(f"/api/calls/{call_id}/timeline").json()["timeline"] if e["kind"].startswith("callback_")
    ]
    assert [(e["kind"], e["agent_id"]) for e in told][-3:] == [
        ("callback_unanswered", "ann"),  # the agent waiting in the room is told at each step
        ("callback_dialled", "ann"),
        ("callback_missed", "ann"),
    ]
    (entry,) = entries(world)
    assert (entry.state, entry.end_reason, entry.callback_attempts) == ("missed", "callback not answered", 2)
    world.wait(lambda: world.services.agents.get("ann")["status"] == "available", what="ann free again")


def test_a_caller_whose_number_is_withheld_is_not_offered_a_callback_and_keeps_their_place(world):
    """Carriers pass a withheld number on as a word (Twilio error 13214): nothing to dial back."""
    ann, first = busy_agent(world)
    sam = supervisor(world)
    anonymous = world.call(from_="anonymous")
    anonymous.wait_for(lambda c: "You are next in line" in said(c) and any(e[0] == "play" for e in c.events))
    later = world.call(from_=CALLER)  # comes later, can be called back
    later.wait_for(lambda c: "press 2" in said(c), timeout=10)
    assert "press 2" not in said(anonymous) and "call me back" not in said(anonymous)
    first_words = len(said(anonymous))

    anonymous.press("2")  # asks anyway: told why, and the hold loop goes on, same place
    anonymous.wait_for(lambda c: "number is withheld" in said(c)[first_words:], timeout=10)
    told = next(e[1] for e in anonymous.events if e[0] == "say" and "number is withheld" in e[1])
    assert told == (
        "We can't call you back because your number is withheld; please stay on the line. You are next in line."
    )
    assert not anonymous.ended
    waiting = entries(world)
    assert [(e.kind, e.state) for e in waiting] == [("caller", "waiting"), ("caller", "waiting")]
    anonymous_id = waiting[0].call_id
    assert world.services.views.call(anonymous_id)["from"] == "anonymous"
    assert "callback_requested" not in world.timeline(anonymous_id)

    # Answered in order, shown as withheld (not four letters of "anonymous") to the agent and the board.
    assert ann.post(f"/api/calls/{first}/hangup").status_code == 200
    offer = ann.wait_offer(timeout=10)
    assert (offer["call_id"], offer["callback"], offer["caller"]) == (anonymous_id, False, "Withheld number")
    ann.accept_and_join(anonymous_id)
    anonymous.wait_current("bridged", timeout=10)
    row = next(c for c in sam.get("/api/supervisor/board").json()["live"]["calls"] if c["id"] == anonymous_id)
    assert row["caller"] == "Withheld number"
    assert [e.state for e in entries(world)] == ["answered", "waiting"]
    assert world.db_call(later.sid)["state"] == "queued"


def test_a_keypad_spelled_or_empty_caller_id_is_withheld_too(world):
    """ "+266696687" spells "anonymous" on a keypad: E.164 in shape, nobody's number."""
    ann, _ = busy_agent(world)
    for from_ in ("+266696687", ""):
        caller = world.call(from_=from_)
        caller.wait_for(lambda c: any(e[0] == "play" for e in c.events), timeout=10)
        assert "press 2" not in said(caller) and "We're sorry" not in said(caller)
    assert [(e.kind, e.state) for e in entries(world)] == [("caller", "waiting")] * 2


def test_the_agent_waiting_in_the_room_is_told_of_a_retry_and_the_second_try_connects(make_world):
    world = make_world(callback_retry_s=2.0)
    world.twilio.script_phone(CALLER, answer=False, digits=None)
    ann, first = busy_agent(world)
    ask_for_a_callback(world)
    call_id = entries(world)[0].call_id
    assert ann.post(f"/api/calls/{first}/hangup").status_code == 200
    assert ann.wait_offer(timeout=10)["call_id"] == call_id
    stream = Stream(world.url + "/api/events", {"Authorization": f"Bearer {ann.credential}"})
    try:
        stream.wait(lambda: stream.of("ready"))
        ann.accept_and_join(call_id)

        # The first dial rings out: the agent's console hears it on its stream, with what to say.
        retry = stream.wait(
            lambda: [e["data"] for e in stream.of("timeline") if e["data"]["kind"] == "callback_unanswered"],
            timeout=20,
        )[0]
        world.twilio.script_phone(CALLER, answer=True, answer_after=0.2, digits=None)  # picks up next time
        assert (retry["call_id"], retry["agent_id"]) == (call_id, "ann")
        assert {k: retry["detail"][k] for k in ("attempt", "number", "retry_in_s")} == {
            "attempt": 1,
            "number": "…0002",
            "retry_in_s": 2,
        }
        # The same entry in the call's timeline, which the console re-reads on every entry.
        shown = ann.get(f"/api/calls/{call_id}/timeline").json()["timeline"]
        assert any(e["kind"] == "callback_unanswered" and e["detail"]["retry_in_s"] == 2 for e in shown)

        # The second try connects the caller to the waiting agent.
        world.wait(lambda: len(dialled_back(world)) == 2, timeout=15, what="second dial")
        dialled_back(world)[1].wait_current("bridged", timeout=10)
        world.wait(lambda: world.services.views.call(call_id)["state"] == "connected", what="callback connected")
        stream.wait(lambda: [e for e in stream.of("timeline") if e["data"]["kind"] == "callback_answered"])
    finally:
        stream.close()
    kinds = world.timeline(call_id)
    assert kinds.count("callback_dialled") == 2 and kinds.count("callback_unanswered") == 1
    assert "callback_missed" not in kinds
