"""SIGKILL a gateway process at every step of a warm transfer; nothing may be lost.

Two real gateway processes share one database (SQLite file, or Postgres when
TEST_DATABASE_URL is set) behind a round-robin router (see cluster.py). For each crash point
a fresh caller talks to a fresh agent A, A transfers to a fresh agent B, and at the crash
point one gateway process is SIGKILLed and a fresh process takes its port at once (a warm standby
that has only imported and built the app: everything it knows comes from the database); the
transfer is then driven on through the router. After every crash:

- no transfer is lost or half done: it reaches ``completed`` or another terminal state
  (never stuck active), and its ``active_call_id`` lock is released;
- the caller was never dropped (still on the line, no application error) and ends up in a
  room with an agent — with B after a completed transfer, with A after a cancelled or
  declined one; at most transiently on hold;
- after the caller hangs up, the call ends, every leg is terminal and the agents are free.

Any failure fails the test, with the call's timeline and the caller's last events in the message.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest
from sqlalchemy import select

from gateway.adapters.store.models import Agent as AgentRow
from gateway.adapters.store.models import Leg, Transfer
from gateway.domain import legs as L
from gateway.domain import transfers as T
from gateway.sandbox.twiml_exec import FINAL_STATUSES
from tests.faults._counts import bump
from tests.faults.cluster import Cluster
from tests.faults.helpers import join_consult, wait_until


@dataclass(frozen=True)
class CrashPoint:
    name: str
    step: str  # the step after which (or, for *_inflight, during whose request) the kill happens
    delay_s: float = 0.0
    flow: str = "complete"  # complete | cancel | decline | phone (B is a phone agent)
    victim: str = ""  # kill the gateway that answered this request last ("" = alternate)

    def __str__(self) -> str:
        return self.name


INITIATE = "/api/transfer/initiate"
POINTS = [
    CrashPoint("initiate request in flight (5 ms)", "initiate_inflight", 0.005),
    CrashPoint("initiate request in flight (40 ms)", "initiate_inflight", 0.04),
    CrashPoint("right after initiate", "initiate", victim=INITIATE),
    CrashPoint("initiate + 100 ms", "initiate", 0.1, victim=INITIATE),
    CrashPoint("initiate + 300 ms", "initiate", 0.3, victim=INITIATE),
    CrashPoint("initiate + 700 ms", "initiate", 0.7),
    CrashPoint("initiate + 1.5 s", "initiate", 1.5, victim=INITIATE),
    CrashPoint("caller on hold", "holding"),
    CrashPoint("A in the consult room", "a_joined", victim="/livekit/webhook"),
    CrashPoint("B ringing", "b_ringing"),
    CrashPoint("B's accept in flight", "accept_inflight", 0.01),
    CrashPoint("right after B accepted", "accepted", victim="accept"),
    # Once lost the event when the kill landed between the receipt's commit and the event's effect
    # (see test_webhook_receipt_survives_a_crash_only_with_its_effect).
    CrashPoint("LiveKit webhook of B joining in flight", "b_join_webhook_inflight", 0.005),
    CrashPoint("B in the consult room", "b_joined", victim="/livekit/webhook"),
    CrashPoint("complete request in flight", "complete_inflight", 0.01),
    CrashPoint("right after complete", "completed_request", victim="complete"),
    CrashPoint("complete + 150 ms (caller moving)", "completed_request", 0.15, victim="complete"),
    CrashPoint("caller conferenced with A and B", "conferenced", victim="/twilio/bridge"),
    CrashPoint("leave request in flight", "leave_inflight", 0.01),
    CrashPoint("right after A left", "left", victim="leave"),
    CrashPoint("transfer completed", "transfer_completed"),
    CrashPoint("summary running (OpenAI slow)", "summary_inflight", 0.3, victim=INITIATE),
    CrashPoint("right after A cancelled", "cancelled", flow="cancel", victim="cancel"),
    CrashPoint("B's decline in flight", "decline_inflight", 0.01, flow="decline"),
    CrashPoint("phone B: dialling B (initiate + 20 ms)", "initiate", 0.02, flow="phone", victim=INITIATE),
    CrashPoint("phone B: whisper answer in flight", "leg_answer_inflight", 0.005, flow="phone"),
    CrashPoint("phone B: key 1 in flight", "leg_gather_inflight", 0.005, flow="phone"),
    CrashPoint("after the caller hung up", "hung_up", victim="/twilio/status"),
]


class Run:
    """One transfer driven through the router, with one crash at its crash point."""

    def __init__(self, cluster: Cluster, index: int, point: CrashPoint):
        self.c, self.point = cluster, point
        self.victim = index % 2
        self.crashed = False
        self.hung_up = False
        self.a = cluster.add_agent(f"a{index}")
        self.b_phone = f"+1555987{index:04d}" if point.flow == "phone" else None
        if self.b_phone:
            cluster.twilio.script_phone(self.b_phone, answer=True, answer_after=1.0, digits="1")
        self.b = cluster.add_agent(f"b{index}", status="offline", phone=self.b_phone)
        self.caller = f"+1555123{index:04d}"
        self.call = None
        self.call_id: str | None = None
        self.transfer: dict | None = None

    # ------------------------------------------------------------ crashing
    def crash_now(self, port: int | None = None) -> None:
        if self.crashed:
            return
        self.crashed = True
        if port is None:
            self.c.kill(self.victim)
        else:
            self.c.kill_port(port)

    def at(self, step: str) -> None:
        if self.point.step == step:
            if self.point.delay_s:
                time.sleep(self.point.delay_s)
            victim = self.point.victim
            if victim:
                handled = self.c.router.handled_by
                path = next((p for p in reversed(list(handled)) if victim in p), None)
                self.crash_now(handled[path] if path else None)
            else:
                self.crash_now()

    def kill_during(self, step: str, method: str, path_part: str) -> None:
        """Arm the router: the gateway that receives this request dies while handling it."""
        if self.point.step != step:
            return

        def action(port: int) -> None:
            time.sleep(self.point.delay_s)
            self.crash_now(port)

        self.c.router.on_request(lambda m, p: m == method and path_part in p, action)

    def wait(self, predicate, timeout: float, what: str):
        """wait_until, but give up at once if the caller's line is gone (the test never hangs up first)."""

        def check():
            if self.call is not None and self.call.status in FINAL_STATUSES and not self.hung_up:
                raise AssertionError(f"caller dropped while waiting for {what}: {self.call.events[-5:]}")
            if (
                self.call_id
                and not self.hung_up
                and any(
                    e["kind"] in ("no_agent", "bridge_lost", "bridge_failed") for e in self.c.timeline(self.call_id)
                )
            ):
                raise AssertionError(f"the caller is being sent away while waiting for {what}")
            return predicate()

        return wait_until(check, timeout, what)

    # --------------------------------------------------------------- steps
    def transfer_state(self) -> str:
        return self.c.views.transfer(self.transfer["id"])["state"]

    def joined(self, agent_id: str, room: str) -> bool:
        return any(
            e["kind"] == "agent_joined" and e["agent_id"] == agent_id and e["detail"].get("room") == room
            for e in self.c.timeline(self.call_id)
        )

    def ended(self) -> bool:
        return self.transfer_state() in T.TERMINAL

    def connect(self) -> None:
        self.call = self.c.call(self.caller)
        offer = self.wait(lambda: next(iter(self.a.offers("call")), None), 15, f"{self.a.id}'s offer")
        self.call_id = offer["call_id"]
        reply = self.a.post(f"/api/calls/{self.call_id}/accept")
        assert reply.status_code == 200, reply.text
        self.a.join(reply.json()["token"])
        self.call.wait_current("bridged", timeout=15)
        self.wait(lambda: self.c.db_call(self.call.sid)["state"] == "connected", 15, "caller connected")
        assert self.c.set_status(self.b.id, "available").status_code == 200

    def initiate(self) -> None:
        if self.point.step == "summary_inflight":
            self.c.openai.set_latency(0.8)
        self.kill_during("initiate_inflight", "POST", "/api/transfer/initiate")
        # Armed before the transfer starts: B's phone can answer (and press 1) before A is seen in the
        # consult room when the machine is busy, and a crash point armed after that is never reached.
        self.kill_during("leg_answer_inflight", "POST", "/twilio/leg/answer")
        self.kill_during("leg_gather_inflight", "POST", "/twilio/leg/gather")
        reply = self.a.post(
            "/api/transfer/initiate",
            {
                "call_id": self.call_id,
                "target_agent_id": self.b.id,
                "mode": "warm",
                "notes": "Customer wants a refund.",
            },
        )
        if reply.status_code == 409:  # the router retried a request the dead gateway had committed
            transfers = self.c.views.transfers_of_call(self.call_id)
            assert len(transfers) == 1, (reply.text, transfers)
            self.transfer = transfers[0]
        else:
            assert reply.status_code == 202, reply.text
            self.transfer = reply.json()["transfer"]
        self.at("initiate")
        self.at("summary_inflight")

    def a_to_consult(self) -> None:
        room = self.transfer["consult_room"]
        join_consult(self.a, self.transfer)
        if self.point.step == "holding":
            self.call.wait_current("play", timeout=15)
        self.at("holding")
        self.wait(lambda: self.joined(self.a.id, room), 15, "A in the consult room")
        self.at("a_joined")

    def b_accepts(self) -> bool:
        room, tid = self.transfer["consult_room"], self.transfer["id"]
        self.wait(lambda: self.b.offers("transfer") or self.ended(), 15, "B's offer")
        if self.ended():
            return False
        self.at("b_ringing")
        self.kill_during("accept_inflight", "POST", f"/api/transfers/{tid}/accept")
        reply = self.b.post(f"/api/transfers/{tid}/accept")
        assert reply.status_code == 200, reply.text
        self.at("accepted")
        self.kill_during("b_join_webhook_inflight", "POST", "/livekit/webhook")
        self.b.join(reply.json()["token"])
        self.wait(lambda: self.joined(self.b.id, room), 15, "B in the consult room")
        self.wait(lambda: self.transfer_state() in (T.TARGET_ACCEPTED,) + T.TERMINAL, 15, "target_accepted")
        self.at("b_joined")
        return not self.ended()

    def phone_b_joins(self) -> bool:
        room = self.transfer["consult_room"]
        self.wait(lambda: self.joined(self.b.id, room) or self.ended(), 20, "phone B in the consult room")
        self.wait(lambda: self.transfer_state() in (T.TARGET_ACCEPTED,) + T.TERMINAL, 15, "target_accepted")
        return not self.ended()

    def complete(self) -> None:
        tid, room = self.transfer["id"], self.transfer["consult_room"]
        self.kill_during("complete_inflight", "POST", f"/api/transfers/{tid}/complete")
        reply = self.a.post(f"/api/transfers/{tid}/complete")
        assert reply.status_code == 200, reply.text
        self.at("completed_request")
        self.wait(
            lambda: (
                self.call.current.startswith("bridged")
                and self.call.room == room
                and f"sip_{self.caller}" in self.c.participants(room)
            ),
            15,
            "caller in the consult room",
        )
        self.at("conferenced")
        self.kill_during("leave_inflight", "POST", f"/api/transfers/{tid}/leave")
        reply = self.a.post(f"/api/transfers/{tid}/leave")
        assert reply.status_code == 200, reply.text
        self.at("left")
        self.wait(lambda: self.transfer_state() == T.COMPLETED, 15, "transfer completed")
        self.at("transfer_completed")

    def cancel(self) -> None:
        reply = self.a.post(f"/api/transfers/{self.transfer['id']}/cancel")
        assert reply.status_code == 200, reply.text
        self.at("cancelled")

    def decline(self) -> None:
        tid = self.transfer["id"]
        self.wait(lambda: self.b.offers("transfer"), 15, "B's offer")
        self.kill_during("decline_inflight", "POST", f"/api/transfers/{tid}/decline")
        reply = self.b.post(f"/api/transfers/{tid}/decline")
        assert reply.status_code in (200, 409), reply.text  # 409: the retried decline found it declined

    # -------------------------------------------------------------- checks
    def caller_with(self) -> list[str]:
        """The agents in the caller's room, if the caller is bridged and the DB agrees it is connected."""
        if not self.call.current.startswith("bridged"):
            return []
        if self.c.db_call(self.call.sid)["state"] != "connected":
            return []
        return [p for p in self.c.participants(self.call.room) if p != f"sip_{self.caller}"]

    def check_settled(self) -> str:
        final = self.wait(
            lambda: (lambda s: s if s in T.TERMINAL else None)(self.transfer_state()), 20, "transfer terminal"
        )
        expected = {"complete": self.b.id, "phone": f"sip_{self.b_phone}", "cancel": self.a.id, "decline": self.a.id}[
            self.point.flow
        ]
        if final != T.COMPLETED:
            expected = self.a.id
        self.wait(lambda: expected in self.caller_with(), 20, f"caller in a room with {expected} (transfer {final})")
        self.assert_not_dropped()
        db = self.c.db_call(self.call.sid)
        assert db["agent_id"] == (self.b.id if expected == f"sip_{self.b_phone}" else expected), db
        row = self.c.store.read(lambda s: s.get(Transfer, self.transfer["id"]))
        assert row.active_call_id is None, "terminal transfer still holds the call's active-transfer lock"
        return final

    def assert_not_dropped(self) -> None:
        events = self.call.events
        assert not any(e[0] == "app_error" for e in events), events
        assert self.call.status not in FINAL_STATUSES, (self.call.status, events)

    def hang_up_and_check_clean(self) -> None:
        self.hung_up = True
        self.call.hangup()
        self.at("hung_up")
        self.wait(lambda: self.c.db_call(self.call.sid)["state"] == "ended", 15, "call ended")

        def clean():
            legs = self.c.store.read(
                lambda s: [
                    (leg_.id, leg_.state)
                    for leg_ in s.execute(select(Leg).where(Leg.call_id == self.call_id)).scalars()
                ]
            )
            live = [leg_ for leg_ in legs if leg_[1] not in L.TERMINAL]
            agents = self.c.store.read(
                lambda s: {
                    a.id: a.status
                    for a in s.execute(select(AgentRow).where(AgentRow.id.in_([self.a.id, self.b.id]))).scalars()
                }
            )
            return (not live and all(v == "available" for v in agents.values())) or None

        self.wait(clean, 15, "every leg ended and both agents available")
        # Out of routing for the next runs.
        for agent in (self.a, self.b):
            assert self.c.set_status(agent.id, "offline").status_code == 200

    def diagnosis(self) -> str:
        """What the call went through, for a failure message."""
        try:
            lines = (
                [
                    f"{e['at'][11:23]} {e['kind']} {e['agent_id'] or ''} {e['detail']}"
                    for e in self.c.timeline(self.call_id)
                ]
                if self.call_id
                else []
            )
            caller = (
                (
                    f"caller {self.call.status} hearing {self.call.current} in {self.call.room}; "
                    f"events {self.call.events[-6:]}"
                )
                if self.call
                else ""
            )
            return caller + "\n    " + "\n    ".join(lines)
        except Exception as exc:  # diagnosis must not hide the failure
            return f"(no diagnosis: {exc})"

    def run(self) -> str:
        self.connect()
        self.initiate()
        self.a_to_consult()
        if self.point.flow == "decline":
            self.decline()
        else:
            if self.point.flow == "cancel":
                self.wait(lambda: self.b.offers("transfer"), 15, "B's offer")
                self.cancel()
            elif self.point.flow == "phone":
                if self.phone_b_joins():
                    self.complete()
            elif self.b_accepts():
                self.complete()
        final = self.check_settled()
        self.hang_up_and_check_clean()
        assert self.crashed, f"crash point {self.point} was never reached"
        return final


def lost_webhooks(cluster: Cluster) -> list[dict]:
    """LiveKit events lost to a crash: the gateway handling one died, the router gave it to the other gateway,
    which acknowledged it (its receipt is stored) — and the event's effect is missing. (The receipt once
    committed before the effect; this names such a regression in a failure message.)"""
    import json as _json

    from gateway.adapters.store.models import TimelineEntry, WebhookReceipt

    lost = []
    for record in list(cluster.router.webhooks):
        outcomes = [o for _, o in record["attempts"]]
        if "died" not in outcomes or not any(isinstance(o, int) and o < 300 for o in outcomes):
            continue
        try:
            event = _json.loads(record["body"])
        except ValueError:
            continue
        name, room = event.get("event"), (event.get("room") or {}).get("name")
        identity = (event.get("participant") or {}).get("identity", "")
        receipt = cluster.store.read(lambda s: s.get(WebhookReceipt, f"lk:{event.get('id')}"))
        if receipt is None:
            continue
        entries = cluster.store.read(
            lambda s: [
                (e.kind, e.agent_id, (e.detail or {}).get("room"))
                for e in s.execute(
                    select(TimelineEntry).where(TimelineEntry.kind.in_(["agent_joined", "caller_joined"]))
                ).scalars()
            ]
        )
        legs = cluster.store.read(
            lambda s: list(s.execute(select(Leg).where(Leg.room == room, Leg.identity == identity)).scalars())
        )
        if name == "participant_joined" and legs:
            missing = not any(k == "agent_joined" and a == legs[0].agent_id and r == room for k, a, r in entries)
        elif name == "participant_joined":
            missing = not any(k == "caller_joined" and r == room for k, a, r in entries)
        elif name in ("participant_left", "participant_connection_aborted") and legs:
            missing = any(leg_.state == L.JOINED for leg_ in legs)
        else:
            missing = False
        if missing:
            lost.append({"event": name, "room": room, "identity": identity, "id": event.get("id")})
    return lost


@pytest.fixture
def cluster(database_url, tmp_path):
    c = Cluster(database_url, tmp_path)
    yield c
    c.close()


def test_sigkill_at_every_step_of_a_transfer(cluster):
    survived, outcomes, problems = 0, {}, []
    started = time.monotonic()
    for index, point in enumerate(POINTS):
        cluster.wait_all_ready()
        cluster.openai.set_latency(0)
        run = Run(cluster, index, point)
        run_started = time.monotonic()
        lost_before = len(lost_webhooks(cluster))
        try:
            final = run.run()
        except Exception as exc:  # keep going: report every crash point that broke
            lost = lost_webhooks(cluster)[lost_before:]
            problems.append(
                f"{point}: {type(exc).__name__}: {exc}\n    LiveKit events acknowledged "
                f"without effect after a crash: {lost}\n    {run.diagnosis()}"
            )
            if run.crashed:
                cluster.wait_all_ready()
            continue
        survived += 1
        bump("crashes_survived")
        outcomes[str(point)] = f"{final} ({time.monotonic() - run_started:.1f}s)"
    from gateway.adapters.store.models import Job

    rerun = cluster.store.read(
        lambda s: [(j.kind, j.attempts, j.state) for j in s.execute(select(Job).where(Job.attempts > 1)).scalars()]
    )
    print(
        f"\ncrash suite: {cluster.crashes} SIGKILLs, {survived}/{len(POINTS)} transfers survived intact "
        f"in {time.monotonic() - started:.1f}s; router {cluster.router.stats}; "
        f"{len(rerun)} jobs ran more than once (lease takeovers and retries): {sorted({k for k, _, _ in rerun})}"
    )
    for name, final in outcomes.items():
        print(f"  {name}: {final}")
    assert not problems, "\n".join(problems)
    assert cluster.crashes >= 20 and survived >= 20, (cluster.crashes, survived)


# ------------------------------------------------------------------ crash windows
class ProcessDied(BaseException):
    """Stands in for SIGKILL inside one request: nothing after this point runs, no except clause sees it."""


def test_webhook_receipt_survives_a_crash_only_with_its_effect(database_url):
    """Deterministic version of the crash point 'LiveKit webhook of B joining in flight': a process killed while
    handling an event must not have stored its receipt, so the retry is handled (the receipt was once committed
    in a unit of work of its own, and the retried event was then ignored)."""
    from tests.faults.inproc import Harness, livekit_body

    first = Harness(database_url)
    first.add_agent("alice")
    first.add_agent("bob")
    call = first.connected_call("CA" + "1" * 32, "alice")
    transfer = first.warm_transfer(call, "alice", "bob")
    assert first.api("POST", f"/api/transfers/{transfer['id']}/accept", "bob").status_code == 200
    body = livekit_body("participant_joined", transfer["consult_room"], identity="bob", event_id="EV_bob_joined")

    def die(*args, **kwargs):
        raise ProcessDied()

    first.services.room_events.participant_joined = die  # the process dies while handling the event
    with pytest.raises(ProcessDied):
        first.livekit(body)

    second = Harness(database_url)  # the other gateway process gets LiveKit's retry
    second.credentials = first.credentials
    try:
        assert second.livekit(body).status_code == 204
        bob_leg = next(leg_ for leg_ in second.legs(call.id) if leg_.agent_id == "bob")
        assert bob_leg.state == "joined", (
            f"B's join was lost: leg {bob_leg.state}, transfer {second.transfers(call.id)[0].state}"
        )
        assert second.api("POST", f"/api/transfers/{transfer['id']}/complete", "alice").status_code == 200
    finally:
        second.close()
        first.close()


def test_a_repeated_bridge_redirect_does_not_drop_the_call(make_world):
    from tests.faults.helpers import connect_call as connect_in_world

    world = make_world(ring_timeout_s=10.0)
    alice = world.add_agent("alice")
    call, call_id = connect_in_world(world, alice)
    # The redirect_caller job runs again (its first run reached Twilio, then the worker died).
    world.store.run(
        lambda s: world.store.enqueue_payload(s, "redirect_caller", {"call_id": call_id, "path": "/twilio/bridge"})
    )

    def settled():
        entries = [e["kind"] for e in world.services.views.timeline(call_id)]
        if any(k in entries for k in ("bridge_lost", "bridge_failed", "no_agent")) or call.status in FINAL_STATUSES:
            return True  # the caller is being sent away
        redirected = any(e[0] == "redirect" for e in call.events)
        return redirected and call.current.startswith("bridged") and "alice" in world.participants(call.room or "")

    time.sleep(0.3)
    # A wait that times out fails the test: the caller neither came back to Alice nor was sent away.
    wait_until(settled, 6, "caller back with Alice after the redirect")
    time.sleep(0.5)  # a late action of the superseded Dial would land now
    kinds = [e["kind"] for e in world.services.views.timeline(call_id)]
    assert call.status not in FINAL_STATUSES and "bridge_lost" not in kinds, (
        f"the repeated redirect dropped the call: caller {call.status}, timeline {kinds[-6:]}"
    )
    assert call.current.startswith("bridged") and "alice" in world.participants(call.room or ""), (
        f"after the superseded Dial's action the caller hears {call.current} in {call.room}, timeline {kinds[-6:]}"
    )
    assert world.db_call(call.sid)["agent_id"] == "alice"
