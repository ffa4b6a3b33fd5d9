"""The job runner against a real store: jobs start when committed, run once, and the urgent lane
(what a caller or agent hears next) is never stuck behind a backlog of slow work."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import text

from gateway.services.jobs import JobRunner


def enqueue(store, kind: str, payload: dict) -> None:
    store.run(lambda s: store.enqueue_payload(s, kind, payload))


def test_committed_jobs_run_once_each(store):
    runner = JobRunner(store, threads=4, poll_s=0.05)
    seen, lock = [], threading.Lock()

    def record(p):
        with lock:
            seen.append(p["n"])

    runner.register("delete_room", record)
    runner.start()
    try:
        for n in range(20):
            enqueue(store, "delete_room", {"n": n})
        assert runner.wait_idle(10)
    finally:
        runner.stop()
    assert sorted(seen) == list(range(20))


def test_a_hold_is_not_stuck_behind_slow_jobs(store):
    runner = JobRunner(store, threads=2, poll_s=0.05)
    release, held = threading.Event(), threading.Event()
    runner.register("summarize", lambda p: release.wait(10))  # a slow provider call
    runner.register("hold_caller", lambda p: held.set())
    runner.start()
    try:
        for n in range(6):  # more slow jobs than ordinary threads
            enqueue(store, "summarize", {"n": n})
        time.sleep(0.2)
        enqueue(store, "hold_caller", {"call_id": "c"})
        assert held.wait(3), "the hold waited for the summaries"
    finally:
        release.set()
        runner.stop()


def job_row(store, job_id: int):
    from gateway.adapters.store.models import Job

    return store.read(lambda s: s.get(Job, job_id))


def test_an_urgent_job_is_stored_leased_and_runs_with_no_claim(store):
    """Straight after the commit, with a thread free: the job runs as committed (fresh) and ends done."""
    runner = JobRunner(store, threads=2, poll_s=0.05)
    seen = []
    runner.register("dial_leg", lambda p: seen.append(p))
    runner.start()
    try:
        job = store.run(lambda s: store.enqueue_payload(s, "dial_leg", {"leg_id": "leg_1"}))
        assert runner.wait_idle(5)
    finally:
        runner.stop()
    assert [(p["leg_id"], p["_fresh"], p["_attempt"]) for p in seen] == [("leg_1", True, 1)]
    row = job_row(store, job.id)
    assert (row.state, row.attempts, row.locked_until) == ("done", 1, None)


def test_a_leased_job_whose_process_died_is_taken_over_after_its_lease(store):
    """The process that stored a job leased to itself dies before running it: once the lease runs
    out another runner claims it (attempt 2, not fresh: it reads what is current)."""
    dead = JobRunner(store, threads=2, poll_s=0.05, lease_s=0.5)
    dead.start()
    store.job_listeners.remove(dead.kick)  # it commits, then dies before its threads start the job
    job = store.run(lambda s: store.enqueue_payload(s, "hangup_leg", {"leg_id": "leg_2"}))
    dead.stop()
    assert job_row(store, job.id).state == "running"

    seen = []
    heir = JobRunner(store, threads=2, poll_s=0.05)
    heir.register("hangup_leg", lambda p: seen.append(p))
    heir.start()
    try:
        deadline = time.monotonic() + 5
        while not seen and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        heir.stop()
    assert [(p["_attempt"], p["_fresh"]) for p in seen] == [(2, False)]


def test_a_leased_job_taken_over_while_it_waited_is_not_run_twice(store):
    """A leased job that waited in our queue longer than a third of its lease checks that it is
    still ours before running: here another worker took it over meanwhile."""
    from gateway.adapters.store.db import ClaimedJob

    ours = JobRunner(store, threads=2, poll_s=0.05, lease_s=0.3)
    seen = []
    ours.register("hangup_leg", lambda p: seen.append(p))
    ours.start()
    store.job_listeners.remove(ours.kick)
    job = store.run(lambda s: store.enqueue_payload(s, "hangup_leg", {"leg_id": "leg_3"}))
    ours.stop()
    row = job_row(store, job.id)
    leased = ClaimedJob(row.id, row.kind, row.payload, row.attempts, row.locked_until)
    time.sleep(0.35)
    taken = store.claim(job.id, 30)  # the lease ran out: another worker claims the job
    assert taken is not None and taken.attempts == 2
    ours._run_one(job.id, True, leased, time.monotonic() - 1.0)  # it waited a second in our queue
    assert seen == []
    assert job_row(store, job.id).state == "running"  # still the other worker's


def test_a_unit_that_loses_the_race_for_a_keyed_timer_runs_again_and_sees_the_winner(store):
    if store.engine.dialect.name == "sqlite":
        pytest.skip("SQLite units take the write lock at BEGIN IMMEDIATE: two cannot interleave")
    """Two webhooks of one phone answer (the 'answered' status callback and the answer request) both
    start the leg's first whisper timer: the one that commits second must not fail the webhook."""
    key, payload = "timer:whisper_timeout:leg_race:answer", {"leg_id": "leg_race", "phase": "answer"}
    runs: list[bool] = []

    def work(session) -> bool:
        job = store.enqueue_payload(session, "whisper_timeout", payload, delay_s=30, dedupe_key=key)
        if not runs:  # the other webhook commits the same timer after this unit looked for it
            store.run(lambda s: store.enqueue_payload(s, "whisper_timeout", payload, delay_s=30, dedupe_key=key))
        runs.append(job is not None)
        return job is not None

    assert store.run(work) is False  # second time round it sees the timer the other unit set
    assert runs == [True, False]
    pending = store.read(
        lambda s: s.execute(text("SELECT count(*) FROM jobs WHERE dedupe_key = :k"), {"k": key}).scalar()
    )
    assert pending == 1
