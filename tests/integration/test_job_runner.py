"""The job runner against a real store: jobs start when committed, run once, and the urgent lane
(what a caller or agent hears next) is never stuck behind a backlog of slow work."""
from __future__ import annotations

import threading
import time

from gateway.services.jobs import JobRunner


def enqueue(store, kind: str, payload: dict) -> None:
    store.run(lambda s: store.enqueue(s, kind, payload))


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
