"""The job runner: executes outbox jobs and timers stored in the database.

Webhook handlers only change state and enqueue jobs in the same transaction; provider
calls happen here, on a thread pool, so slow calls overlap instead of queueing and
nothing slow sits on a webhook's path. Jobs just committed by this process start at once;
a poller picks up timers as they fall due and jobs whose runner died (expired lease),
so a killed process loses nothing.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from gateway.adapters.store.db import ClaimedJob, Store
from gateway.adapters.twilio_client import ProviderError
from gateway.services.job_types import KINDS, Job, handlers_of

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], None]  # a job's JSON payload
LEASE_S = 30.0
MAX_ATTEMPTS = 5
# What a caller or an agent hears next (hold, a redirect, B's phone ringing): these run on a lane
# of their own, so a backlog of summaries, room set-ups and clean-ups never delays them.
URGENT_KINDS = frozenset(kind for kind, job_type in KINDS.items() if job_type.urgent)


class RetryLater(Exception):
    """A handler asks to be run again later (e.g. waiting for another job's result)."""

    def __init__(self, delay_s: float, reason: str = ""):
        super().__init__(reason)
        self.delay_s = delay_s


def _typed(job_type: type[Job], handler: Callable[[Any], None]) -> Handler:
    return lambda payload: handler(job_type.decode(payload))


class JobRunner:
    def __init__(
        self,
        store: Store,
        *,
        threads: int = 8,
        poll_s: float = 0.25,
        lease_s: float = LEASE_S,
        on_error: Callable[[str, dict[str, Any], BaseException], None] | None = None,
    ):
        self.store = store
        self.handlers: dict[str, Handler] = {}
        self.threads, self.poll_s, self.lease_s = threads, poll_s, lease_s
        self.on_error = on_error
        self._pool: ThreadPoolExecutor | None = None
        self._urgent_pool: ThreadPoolExecutor | None = None
        self.urgent_threads = max(2, threads // 2)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._poller: threading.Thread | None = None
        self._queued: set[int] = set()  # ids submitted to our pools and not finished: never twice
        self._urgent_busy = 0  # of those, on the urgent lane
        self._queued_lock = threading.Condition()
        self.store.job_listeners.append(self.kick)

    def register(self, kind: str, handler: Handler) -> None:
        """A handler of the stored payload as it is (see ``register_jobs`` for typed jobs)."""
        self.handlers[kind] = handler

    def register_jobs(self, owner: object) -> None:
        """Each ``@handles(<job class>)`` method of ``owner`` handles that kind, given the job
        decoded and validated from its row (services/job_types.py)."""
        for job_type, handler in handlers_of(owner):
            self.register(job_type.kind, _typed(job_type, handler))

    # ----------------------------------------------------------------- life
    def start(self) -> JobRunner:
        if self._poller is None:
            self._stop.clear()
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="job")
            self._urgent_pool = ThreadPoolExecutor(self.urgent_threads, thread_name_prefix="job-urgent")
            self._poller = threading.Thread(target=self._poll_loop, name="job-poller", daemon=True)
            self._poller.start()
            self.store.lease_new_job = self._lease_new_job
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Graceful: stop taking jobs, let running ones finish (their leases protect the rest)."""
        self.store.lease_new_job = None
        self._stop.set()
        self._wake.set()
        if self._poller:
            self._poller.join(timeout_s)
        for pool in (self._urgent_pool, self._pool):
            if pool:
                pool.shutdown(wait=True, cancel_futures=True)
        self._poller, self._pool, self._urgent_pool = None, None, None

    @property
    def running(self) -> bool:
        return self._poller is not None and not self._stop.is_set()

    def kick(self, jobs: list[tuple[int, str, ClaimedJob | None]]) -> None:
        """Run freshly committed jobs now rather than at the next poll."""
        if not self.running or self._pool is None:
            return
        urgent = [job for job in jobs if job[1] in URGENT_KINDS]
        for job_id, kind, leased in urgent:
            self._submit(job_id, kind, leased)
        if urgent:
            time.sleep(0)  # let the urgent lane take the GIL before the rest wake up
        for job_id, kind, leased in jobs:
            if kind not in URGENT_KINDS:
                self._submit(job_id, kind, leased)

    def _lease_new_job(self, kind: str) -> float | None:
        """A job due now is stored already leased to us when a thread of its lane is free: the
        thread starts it straight after the commit, with no claim (a round trip and a commit)
        on the way. With every thread of the lane busy it is stored pending, for any worker."""
        if not self.running:
            return None
        with self._queued_lock:
            if kind in URGENT_KINDS:
                free = self._urgent_busy < self.urgent_threads
            else:
                free = len(self._queued) - self._urgent_busy < self.threads
            return self.lease_s if free else None

    def wait_idle(self, timeout_s: float = 10.0) -> bool:
        """For tests and shutdown: wait until no job of this process is running or due now."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._queued_lock:
                busy = len(self._queued)
            if not busy and not self.store.due_job_ids(1):
                return True
            time.sleep(0.02)
        return False

    # ------------------------------------------------------------- internals
    def _submit(self, job_id: int, kind: str, leased: ClaimedJob | None = None) -> None:
        urgent = kind in URGENT_KINDS
        with self._queued_lock:
            if job_id in self._queued:
                return  # already waiting for a thread of ours: claiming it again would only fail
            self._queued.add(job_id)
            self._urgent_busy += urgent
        pool = self._urgent_pool if urgent else self._pool
        try:
            if pool is None:
                raise RuntimeError("job runner stopped")
            pool.submit(self._run_one, job_id, urgent, leased, time.monotonic())
        except RuntimeError:  # pool shut down (a leased job is taken over when its lease runs out)
            self._done(job_id, urgent)

    def _done(self, job_id: int, urgent: bool) -> None:
        with self._queued_lock:
            self._queued.discard(job_id)
            self._urgent_busy -= urgent

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            try:
                due, next_in = self.store.poll(self.threads * 4)
                for job_id, kind in due:
                    self._submit(job_id, kind)
            except Exception:  # the database may be restarting: keep polling
                log.exception("job poll failed")
                next_in = None
            with self._queued_lock:
                saturated = len(self._queued) >= self.threads + self.urgent_threads
            # Every thread busy: what is due waits for one anyway, so don't spin on the database.
            wait = self.poll_s if next_in is None or saturated else min(self.poll_s, max(0.01, next_in))
            self._wake.wait(wait)
            self._wake.clear()

    def _run_one(self, job_id: int, urgent: bool, leased: ClaimedJob | None, submitted: float) -> None:
        try:
            fresh = leased is not None
            if leased is not None and time.monotonic() - submitted > self.lease_s / 3:
                leased, fresh = self.store.renew(leased, self.lease_s), False  # waited long: still ours?
                if leased is None:
                    return
            self.run_job(job_id, leased=leased, fresh=fresh)
        except Exception:
            log.exception("job %s crashed", job_id)
        finally:
            self._done(job_id, urgent)

    def run_job(self, job_id: int, leased: ClaimedJob | None = None, fresh: bool = False) -> bool:
        """Claim (unless ``leased``: already ours) and run one job; False if another worker has it.
        ``fresh``: it runs straight from the commit that stored it, so what its payload says is
        still current (a handler may skip reading it back). Public for tests that step jobs."""
        job = leased or self.store.claim(job_id, self.lease_s)
        if job is None:
            return False
        handler = self.handlers.get(job.kind)
        if handler is None:
            self.store.finish_job(job.id, error=f"no handler for {job.kind}")
            return True
        try:
            handler(dict(job.payload, _attempt=job.attempts, _fresh=fresh))
        except RetryLater as wait:
            self.store.finish_job(job.id, error=str(wait) or None, retry_in_s=wait.delay_s)
        except ProviderError as exc:
            if exc.retryable and job.attempts < MAX_ATTEMPTS:
                delay = exc.retry_after_s or min(8.0, 0.2 * 2**job.attempts) * (0.75 + random.random() / 2)
                self.store.finish_job(job.id, error=str(exc), retry_in_s=delay)
            else:
                self._give_up(job, exc)
        except Exception as exc:
            log.exception("job %s (%s) failed", job.id, job.kind)
            self._give_up(job, exc)
        else:
            self.store.finish_job(job.id)
        return True

    def _give_up(self, job: ClaimedJob, exc: BaseException) -> None:
        self.store.finish_job(job.id, error=f"{type(exc).__name__}: {exc}"[:500])
        if self.on_error:
            try:
                self.on_error(job.kind, dict(job.payload), exc)
            except Exception:
                log.exception("failure handler for job %s failed", job.id)

    def drain(self, max_jobs: int = 1000) -> int:
        """Run every due job synchronously in this thread (tests without the thread pool)."""
        ran = 0
        while ran < max_jobs:
            ids = self.store.due_job_ids(50)
            if not ids:
                return ran
            for job_id in ids:
                if self.run_job(job_id):
                    ran += 1
        return ran
