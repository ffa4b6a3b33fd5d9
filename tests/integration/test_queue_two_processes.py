"""Two gateway processes (gunicorn, as deployed) taking from one queue: every waiting caller is
offered once, to one agent, oldest first, however the arrivals and the agents freeing up interleave."""

from __future__ import annotations

import threading

import requests
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from gateway.adapters.store.models import Leg, QueueEntry
from gateway.sandbox import runtime
from gateway.services.agents import AgentService
from tests.integration.test_two_processes import two_gateways  # noqa: F401 (the fixture)


def race(jobs):
    barrier = threading.Barrier(len(jobs))
    results = [None] * len(jobs)

    def run(i, job):
        barrier.wait()
        results[i] = job()

    threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(jobs)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    return results


def test_two_processes_offer_each_waiting_caller_once_oldest_first(two_gateways):  # noqa: F811
    urls, public, store = two_gateways
    agents = AgentService(store)
    # Six agents signed in but busy: staffed, so callers wait instead of going to voicemail.
    credentials = {f"agent{i}": agents.add(f"agent{i}", f"Agent {i}", None, True, "busy") for i in range(6)}

    def voice(n):
        form = {"CallSid": f"CA{n:032d}", "From": f"+1555070{n:04d}", "To": runtime.PHONE_NUMBER}
        signature = RequestValidator(runtime.AUTH_TOKEN).compute_signature(public + "/twilio/voice", form)
        return lambda: requests.post(
            urls[n % 2] + "/twilio/voice", data=form, headers={"X-Twilio-Signature": signature}, timeout=20
        )

    replies = race([voice(n) for n in range(10)])
    assert [r.status_code for r in replies] == [200] * 10
    assert all("in line" in r.text and "<Play>" in r.text for r in replies), replies[0].text

    def sign_in(i, agent_id):
        return lambda: requests.post(
            urls[i % 2] + "/api/agents/me/status",
            json={"status": "available"},
            headers={"Authorization": f"Bearer {credentials[agent_id]}"},
            timeout=20,
        )

    freed = race([sign_in(i, agent_id) for i, agent_id in enumerate(credentials)])
    assert [r.status_code for r in freed] == [200] * 6, [r.text for r in freed]

    def read(session):
        entries = session.execute(select(QueueEntry).order_by(QueueEntry.enqueued_at, QueueEntry.id)).scalars().all()
        legs = session.execute(select(Leg.agent_id, Leg.call_id).where(Leg.state == "ringing")).all()
        return entries, legs

    entries, legs = store.read(read)
    offered = [e for e in entries if e.state == "offered"]
    assert len(entries) == 10
    assert [e.state for e in entries] == ["offered"] * 6 + ["waiting"] * 4  # the six oldest, nobody skipped
    assert sorted(e.offered_agent_id for e in offered) == sorted(credentials)  # one caller per agent
    assert all(e.offers == 1 for e in offered)  # nobody offered twice
    assert sorted(legs) == sorted((e.offered_agent_id, e.call_id) for e in offered)  # one ringing leg each
