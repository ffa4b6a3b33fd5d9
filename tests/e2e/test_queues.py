"""Queues end to end: callers who outnumber free agents wait in line, hear where they stand over
hold music, and are answered in the order they called (simulator + LiveKit double)."""

from __future__ import annotations

import re
import threading
import time

import requests
from sqlalchemy import select

from gateway.adapters.store.models import Call, QueueEntry

PLACE = re.compile(r"You are (next|number (\d+)) in line")


def places_heard(call) -> list[int]:
    """Every position the caller was told, in order (1 for "next in line")."""
    found = []
    for event in call.events:
        if event[0] == "say":
            for m in PLACE.finditer(event[1]):
                found.append(1 if m.group(1) == "next" else int(m.group(2)))
    return found


def arrival_order(world) -> list[str]:
    return world.store.read(
        lambda s: [c.twilio_sid for c in s.execute(select(Call).order_by(Call.created_at, Call.id)).scalars()]
    )


def entries(world) -> list[QueueEntry]:
    return world.store.read(lambda s: s.execute(select(QueueEntry).order_by(QueueEntry.enqueued_at)).scalars().all())


class Desk:
    """An agent at the console who takes every call offered, talks briefly, hangs up, and repeats."""

    def __init__(self, world, agent, talk_s: float = 0.3):
        self.world, self.agent, self.talk_s = world, agent, talk_s
        self.answered: list[str] = []
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self.run, daemon=True)

    def wait_state(self, call_id: str, state: str) -> None:
        self.world.wait(lambda: self.world.services.views.call(call_id)["state"] == state, 15, f"{call_id} {state}")

    def run(self):
        try:
            while not self.stop.is_set():
                offers = [o for o in self.agent.offers() if o["kind"] == "call"]
                if not offers:
                    time.sleep(0.05)
                    continue
                call_id = offers[0]["call_id"]
                reply = self.agent.post(f"/api/calls/{call_id}/accept")
                if reply.status_code != 200:
                    continue
                self.agent.join(reply.json()["token"])
                self.wait_state(call_id, "connected")
                self.answered.append(call_id)
                time.sleep(self.talk_s)
                assert self.agent.post(f"/api/calls/{call_id}/hangup").status_code == 200
                self.wait_state(call_id, "ended")
        except BaseException as exc:  # reported by the test
            self.errors.append(exc)


def test_three_agents_ten_callers_answered_in_arrival_order_hearing_their_place(make_world):
    world = make_world(time_scale=0.1)
    desks = [Desk(world, world.add_agent(name), talk_s=1.5) for name in ("ann", "ben", "cat")]
    for desk in desks:
        desk.thread.start()
    calls = []
    for n in range(10):  # one after another within moments, so that "the order they called" is defined
        calls.append(world.call(from_=f"+1555010{n:04d}"))
        world.wait(lambda n=n: len(arrival_order(world)) == n + 1, what=f"call {n} received")
    order = [c.sid for c in calls]
    assert arrival_order(world) == order
    by_sid = {c.sid: c for c in calls}
    # Seven wait; each is told their place at once, over music, and never hears silence.
    world.wait(lambda: len(entries(world)) == 7, what="seven callers queued")
    for sid in order[3:]:
        by_sid[sid].wait_for(lambda c: places_heard(c) and any(e[0] == "play" for e in c.events), timeout=10)
    assert [places_heard(by_sid[sid])[0] for sid in order[3:]] == [1, 2, 3, 4, 5, 6, 7]

    try:
        world.wait(lambda: sum(len(d.answered) for d in desks) == 10, timeout=90, what="all ten answered")
    finally:
        for desk in desks:
            desk.stop.set()
    assert not any(d.errors for d in desks), [d.errors for d in desks]

    ids = {sid: world.db_call(sid)["id"] for sid in order}
    timelines = {sid: world.services.views.timeline(ids[sid]) for sid in order}

    def first(sid, kind):
        return next(e["at"] for e in timelines[sid] if e["kind"] == kind)

    # The first three are rung at once, one agent each; the seven who waited are taken, one as each
    # agent frees up, strictly in the order they called.
    assert all("queued" not in [e["kind"] for e in timelines[sid]] for sid in order[:3]), [
        [(e["kind"], e["agent_id"], e["detail"]) for e in timelines[sid]] for sid in order[:3]
    ]
    taken = sorted(order[3:], key=lambda sid: first(sid, "queue_offered"))
    assert taken == order[3:]
    assert all(first(sid, "caller_connected") for sid in order)
    for sid in order[3:]:
        heard = places_heard(by_sid[sid])
        assert heard == sorted(heard, reverse=True), heard  # the line only moves forward
        assert len(heard) >= 2, heard  # told again while waiting, not only on entry
        assert all(length < 1.0 for _, length in by_sid[sid].silence_gaps()), by_sid[sid].silence_gaps()
    done = entries(world)
    assert [e.state for e in done] == ["answered"] * 7
    assert all(e.wait_s > 0 for e in done)


def said(call) -> str:
    return " | ".join(e[1] for e in call.events if e[0] == "say")


def take_next_call(world, agent) -> str:
    """The agent accepts the call offered to them and joins its room; returns the call id."""
    offer = agent.wait_offer(timeout=10)
    agent.accept_and_join(offer["call_id"])
    world.wait(lambda: world.services.views.call(offer["call_id"])["state"] == "connected", what="connected")
    return offer["call_id"]


def test_a_missed_offer_puts_the_caller_back_at_the_head(world):
    ann, ben = world.add_agent("ann"), world.add_agent("ben")
    world.call(from_="+15550200001")
    world.wait(lambda: ann.offers() or ben.offers(), what="first caller offered")
    busy = ann if ann.offers() else ben
    free = ben if busy is ann else ann
    first = take_next_call(world, busy)
    world.call(from_="+15550200002")
    second = take_next_call(world, free)
    third = world.call(from_="+15550200003")
    world.wait(lambda: len(entries(world)) == 1, what="third caller waiting")
    fourth = world.call(from_="+15550200004")
    world.wait(lambda: [e.state for e in entries(world)] == ["waiting", "waiting"], what="two waiting")
    third_id = world.db_call(third.sid)["id"]

    # free's call ends: free is offered the third caller at once, and lets it ring out.
    assert free.post(f"/api/calls/{second}/hangup").status_code == 200
    assert free.wait_offer()["call_id"] == third_id
    world.wait(lambda: world.services.agents.get(free.id)["status"] == "offline", what="not responding")
    world.wait(lambda: "queue_offer_failed" in world.timeline(third_id))
    assert world.db_call(third.sid)["state"] == "queued"  # back in line, not sent to voicemail

    # The other agent frees up: the third caller, back at the head, is next — not the fourth.
    assert busy.post(f"/api/calls/{first}/hangup").status_code == 200
    assert take_next_call(world, busy) == third_id
    third.wait_current("bridged", timeout=10)
    assert world.db_call(fourth.sid)["state"] == "queued"
    assert "sorry" not in said(third).lower()


def test_an_agent_signing_in_picks_up_the_oldest_caller(world):
    ann = world.add_agent("ann")
    dan = world.add_agent("dan", status="offline")
    world.call(from_="+15550300001")
    take_next_call(world, ann)
    second = world.call(from_="+15550300002")
    world.wait(lambda: len(entries(world)) == 1, what="one waiting")
    third = world.call(from_="+15550300003")
    world.wait(lambda: len(entries(world)) == 2, what="two waiting")
    assert dan.post("/api/agents/me/status", {"status": "available"}).status_code == 200
    assert dan.wait_offer()["call_id"] == world.db_call(second.sid)["id"]
    take_next_call(world, dan)
    second.wait_current("bridged", timeout=10)
    assert world.db_call(third.sid)["state"] == "queued"


def test_a_caller_who_hangs_up_while_waiting_is_recorded_with_the_wait(world):
    ann = world.add_agent("ann")
    world.call(from_="+15550400001")
    first = take_next_call(world, ann)
    waiting = world.call(from_="+15550400002")
    waiting.wait_for(lambda c: any(e[0] == "play" for e in c.events), timeout=10)
    waiting.hangup()
    world.wait(lambda: entries(world) and entries(world)[0].state == "abandoned", what="abandoned")
    (entry,) = entries(world)
    assert entry.wait_s > 0 and entry.end_reason
    assert "queue_abandoned" in world.timeline(entry.call_id)
    metrics = requests.get(world.url + "/metrics", timeout=10).text
    assert 'gateway_queue_entries_total{kind="caller",outcome="abandoned",team="default"} 1.0' in metrics
    assert 'gateway_queue_waiting{team="default"}' not in metrics  # nobody waits any more
    # Nobody is left waiting: when ann frees up, nobody is offered to her.
    assert ann.post(f"/api/calls/{first}/hangup").status_code == 200
    world.wait(lambda: world.services.agents.get("ann")["status"] == "available")
    world.settle()
    assert ann.offers() == []


def test_a_caller_who_hangs_up_while_being_offered_frees_the_agent(make_world):
    world = make_world(ring_timeout_s=30.0)
    ann, ben = world.add_agent("ann"), world.add_agent("ben")
    for n in range(2):
        world.call(from_=f"+1555050000{n}")
    firsts = [take_next_call(world, a) for a in sorted((ann, ben), key=lambda a: not a.offers())]
    waiting = world.call(from_="+15550500009")
    world.wait(lambda: len(entries(world)) == 1)
    ann_call = next(c for c in firsts if world.services.views.call(c)["agent_id"] == "ann")
    assert ann.post(f"/api/calls/{ann_call}/hangup").status_code == 200
    ann.wait_offer()
    waiting.hangup()
    world.wait(lambda: ann.offers() == [], what="offer withdrawn")
    world.wait(lambda: world.services.agents.get("ann")["status"] == "available", what="ann free again")
    assert entries(world)[0].state == "abandoned"


def test_max_wait_ends_in_voicemail(make_world):
    world = make_world(queue_timeout_s=2.0)
    ann = world.add_agent("ann")
    world.call(from_="+15550600001")
    take_next_call(world, ann)
    waiting = world.call(from_="+15550600002")
    waiting.wait_for(lambda c: any(e[0] == "record" for e in c.events), timeout=15)
    assert "still busy" in said(waiting) and "leave a message" in said(waiting)
    assert entries(world)[0].state == "timed_out"


def test_nobody_staffed_hears_so_at_once_and_may_leave_a_message(world):
    world.add_agent("ann", status="offline")
    call = world.call()
    call.wait_for(lambda c: any(e[0] == "record" for e in c.events), timeout=8)
    assert "no one is available" in said(call)
    assert not any(e[0] == "play" for e in call.events)  # no hold music for a line nobody serves
    assert entries(world) == []


def test_teams_route_by_number_and_only_members_are_offered(world):
    from gateway.sandbox.runtime import PHONE_NUMBER

    world.services.teams.add("billing", "Billing", numbers=[PHONE_NUMBER])
    world.add_agent("sam")  # default team only
    bea = world.add_agent("bea", status="offline")
    world.services.teams.set_agent_teams("bea", ["billing"])
    world.services.agents.set_status("bea", "available")
    call = world.call()
    assert take_next_call(world, bea) == world.db_call(call.sid)["id"]
    assert world.services.views.offers("sam") == []
    assert world.db_call(call.sid)["state"] == "connected"


def test_a_waiting_caller_presses_1_and_leaves_a_message_instead(world):
    ann = world.add_agent("ann")
    world.call(from_="+15550800001")
    first = take_next_call(world, ann)
    waiting = world.call(from_="+15550800002")
    waiting.wait_for(lambda c: "press 1" in said(c) and any(e[0] == "play" for e in c.events), timeout=10)
    waiting.press("1")
    waiting.wait_for(lambda c: any(e[0] == "record" for e in c.events), timeout=10)
    assert "leave a message" in said(waiting)
    (entry,) = entries(world)
    assert (entry.state, entry.end_reason) == ("left", "caller chose voicemail")
    assert world.db_call(waiting.sid)["state"] in ("voicemail", "ended")
    # Out of the line: ann, free again, is offered nobody.
    assert ann.post(f"/api/calls/{first}/hangup").status_code == 200
    world.wait(lambda: world.services.agents.get("ann")["status"] == "available")
    world.settle()
    assert ann.offers() == []
