"""SIGKILL a gateway process in the middle of a queue offer; no waiting caller may be lost.

Two real gateway processes share one database behind the round-robin router (cluster.py). An agent
talks to a first caller while a second caller waits in line; the agent hangs up, which frees them
and offers them the waiting caller in the same transaction. At each crash point one process is
SIGKILLed (a standby takes its port at once): while that hang-up is being handled, right after the
offer is made, while the agent's accept is being handled, and right after it. After every crash the
waiting caller is never dropped or sent to voicemail, is offered to the agent (once), and ends up
in a room with them; the queue entry ends as answered.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest
from sqlalchemy import select

from gateway.adapters.store.models import QueueEntry
from gateway.sandbox.twiml_exec import FINAL_STATUSES
from tests.faults.cluster import Cluster
from tests.faults.helpers import wait_until


@dataclass(frozen=True)
class Point:
    name: str
    step: str  # hangup_inflight | offered | accept_inflight | accepted
    delay_s: float = 0.0

    def __str__(self) -> str:
        return self.name


POINTS = [
    Point("agent's hang-up (which makes the offer) in flight", "hangup_inflight", 0.005),
    Point("agent's hang-up in flight (30 ms)", "hangup_inflight", 0.03),
    Point("right after the offer is made", "offered"),
    Point("agent's accept in flight", "accept_inflight", 0.005),
    Point("right after the agent accepted", "accepted"),
]


@pytest.fixture
def cluster(database_url, tmp_path):
    c = Cluster(database_url, tmp_path)
    yield c
    c.close()


def entry_of(cluster: Cluster, call_id: str) -> QueueEntry | None:
    return cluster.store.read(
        lambda s: s.execute(select(QueueEntry).where(QueueEntry.call_id == call_id)).scalars().first()
    )


def run(cluster: Cluster, index: int, point: Point) -> None:
    agent = cluster.add_agent(f"q{index}")
    crashed = []

    def crash(port: int | None = None) -> None:
        if not crashed:
            crashed.append(port)
            cluster.kill(index % 2) if port is None else cluster.kill_port(port)

    def kill_during(step: str, method: str, path_part: str) -> None:
        if point.step == step:

            def action(port: int) -> None:
                time.sleep(point.delay_s)
                crash(port)

            cluster.router.on_request(lambda m, p: m == method and path_part in p, action)

    first = cluster.call(f"+1555200{index:04d}")
    offer = wait_until(lambda: next(iter(agent.offers("call")), None), 15, "first offer")
    first_id = offer["call_id"]
    agent.join(agent.post(f"/api/calls/{first_id}/accept").json()["token"])
    first.wait_current("bridged", timeout=15)
    wait_until(lambda: cluster.db_call(first.sid)["state"] == "connected", 15, "first caller connected")

    waiting = cluster.call(f"+1555300{index:04d}")
    wait_until(lambda: any(e[0] == "play" for e in waiting.events), 15, "second caller on hold music")
    waiting_id = cluster.db_call(waiting.sid)["id"]

    def never_dropped(what):
        def check():
            if waiting.status in FINAL_STATUSES:
                raise AssertionError(f"waiting caller dropped while waiting for {what}: {waiting.events[-5:]}")
            if any(e["kind"] == "no_agent" for e in cluster.timeline(waiting_id)):
                raise AssertionError(f"waiting caller sent to voicemail while waiting for {what}")
            return True

        return check

    kill_during("hangup_inflight", "POST", f"/api/calls/{first_id}/hangup")
    reply = agent.post(f"/api/calls/{first_id}/hangup")
    assert reply.status_code in (200, 409), reply.text  # 409: the router retried a committed hang-up
    offered = wait_until(
        lambda: never_dropped("the offer")() and next(iter(agent.offers("call")), None),
        30,
        "the waiting caller offered",
    )
    assert offered["call_id"] == waiting_id
    if point.step == "offered":
        crash()
    kill_during("accept_inflight", "POST", f"/api/calls/{waiting_id}/accept")
    reply = agent.post(f"/api/calls/{waiting_id}/accept")
    if reply.status_code != 200:  # the dead process had issued the token: ask again, as the console does
        offered = wait_until(lambda: next(iter(agent.offers("call")), None), 30, "the offer again")
        reply = agent.post(f"/api/calls/{offered['call_id']}/accept")
    assert reply.status_code == 200, reply.text
    if point.step == "accepted":
        crash()
    agent.join(reply.json()["token"])
    wait_until(
        lambda: never_dropped("the bridge")() and cluster.db_call(waiting.sid)["state"] == "connected",
        30,
        "waiting caller connected",
    )
    assert crashed, "the crash point was never reached"
    entry = entry_of(cluster, waiting_id)
    assert entry is not None and (entry.state, entry.end_reason) == ("answered", "agent joined"), entry
    offers = [e for e in cluster.timeline(waiting_id) if e["kind"] == "queue_offered"]
    assert len(offers) >= 1 and all(e["agent_id"] == agent.id for e in offers), offers


def test_sigkill_mid_offer_loses_no_waiting_caller(cluster):
    problems = []
    for index, point in enumerate(POINTS):
        cluster.wait_all_ready()
        try:
            run(cluster, index, point)
        except Exception as exc:  # every crash point is tried; each failure is reported
            problems.append(f"{point}: {type(exc).__name__}: {exc}")
            cluster.wait_all_ready()
        finally:  # this round's agent and callers leave: the next round starts from an empty line
            for call in cluster.twilio.calls():
                if call.direction == "inbound" and call.status not in FINAL_STATUSES:
                    call.hangup()
            cluster.wait_all_ready()
            assert cluster.set_status(f"q{index}", "offline").status_code == 200
            wait_until(
                lambda: (
                    not cluster.store.read(
                        lambda s: s.execute(
                            select(QueueEntry).where(QueueEntry.state.in_(("waiting", "offered")))
                        ).first()
                    )
                ),
                15,
                "an empty line",
            )
    assert not problems, "\n".join(problems)
