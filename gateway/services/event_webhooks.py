"""Event webhooks for integrators: call and transfer events, signed, delivered at least once,
in order per call, with a delivery log and replay.

Each timeline entry that integrators care about (gateway/domain/integrator_events.py) becomes one
``event_deliveries`` row per configured URL in the same transaction as the change it records, and
a ``deliver_events`` job for its (call, URL). The job sends that call's pending rows oldest first
and stops at the first failure, which it retries with backoff: a later event of a call is never
delivered before an earlier one. A row that keeps failing is marked failed after MAX_ATTEMPTS
and the next one goes; ``replay`` sends chosen events again.
"""

from __future__ import annotations

import functools
import json
import logging
import time
import uuid
from datetime import datetime, timedelta
from typing import Any, Protocol, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from gateway.adapters.store import Store
from gateway.adapters.store.models import Call, EventDelivery, utcnow
from gateway.config import Settings
from gateway.domain import integrator_events as E
from gateway.services import job_types as J
from gateway.services.job_types import handles
from gateway.services.jobs import JobRunner, RetryLater
from gateway.services.views import iso

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 10
MAX_BACKOFF_S = 3600.0
LEASE_S = 60.0


class Poster(Protocol):
    def post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int | None, str | None]: ...


Claim = tuple[int, str, str, str, int]


class EventWebhooks:
    def __init__(self, store: Store, settings: Settings, poster: Poster):
        self.store, self.settings, self.poster = store, settings, poster
        self.urls = tuple(settings.event_webhook_urls)

    def register(self, runner: JobRunner) -> None:
        runner.register_jobs(self)
        if self.urls:
            self.store.entry_listeners.append(self.on_entries)

    # ------------------------------------------------------------ the outbox
    def on_entries(self, session: Session, entries: list[dict[str, Any]]) -> None:
        """New timeline entries of this unit of work -> event rows and one job per (call, URL)."""
        calls: dict[str, Call | None] = {}
        touched: set[str] = set()
        for entry in entries:
            mapped = E.event_for(entry["kind"], entry["transfer_id"], entry["agent_id"], entry["detail"] or {})
            if mapped is None:
                continue
            event_type, data = mapped
            call_id = entry["call_id"]
            if call_id not in calls:
                calls[call_id] = session.get(Call, call_id)
            call = calls[call_id]
            event_id = "evt_" + uuid.uuid4().hex[:20]
            body = json.dumps(
                E.envelope(
                    event_id=event_id,
                    event_type=event_type,
                    created_at=iso(entry["at"]),
                    call={
                        "id": call_id,
                        "channel": call.channel if call else None,
                        # (A web call has no Twilio leg: no CallSid, no numbers.)
                        "twilio_sid": call.twilio_sid if call and call.channel != "web" else None,
                        "from": call.from_number if call and call.channel != "web" else None,
                        "to": call.to_number if call and call.channel != "web" else None,
                    },
                    transfer_id=entry["transfer_id"],
                    data=data,
                ),
                separators=(",", ":"),
            )
            for url in self.urls:
                session.add(
                    EventDelivery(
                        event_id=event_id,
                        event_type=event_type,
                        call_id=call_id,
                        url=url,
                        body=body,
                        state="pending",
                        attempts=0,
                        next_attempt_at=entry["at"],
                    )
                )
            touched.add(call_id)
        for call_id in touched:
            for url in self.urls:
                self.store.enqueue(session, J.DeliverEvents(call_id, url))

    # ------------------------------------------------------------ delivery
    @handles(J.DeliverEvents)
    def deliver(self, job: J.DeliverEvents) -> None:
        """Send the call's pending events to one URL, oldest first, until one fails."""
        call_id, url = job.call_id, job.url
        while True:
            claimed = self.store.run(lambda s: self._claim_next(s, call_id, url))
            if claimed is None:
                return
            if isinstance(claimed, float):
                raise RetryLater(claimed, "event delivery waits for its turn")
            row_id, event_id, event_type, body, attempts = claimed
            timestamp = int(time.time())
            raw = body.encode()
            status, error = self.poster.post(
                url,
                raw,
                {
                    "Content-Type": "application/json",
                    "User-Agent": "warm-transfer-gateway",
                    E.EVENT_ID_HEADER: event_id,
                    E.EVENT_TYPE_HEADER: event_type,
                    E.TIMESTAMP_HEADER: str(timestamp),
                    E.SIGNATURE_HEADER: E.sign(self.settings.event_webhook_secret, timestamp, raw),
                },
            )
            retry_in = self.store.run(functools.partial(self._finish, **self._outcome(row_id, attempts, status, error)))
            if retry_in is not None:
                raise RetryLater(retry_in, f"event {event_id} to {url}: {status or error}")

    @staticmethod
    def _outcome(row_id: int, attempts: int, status: int | None, error: str | None) -> dict[str, Any]:
        delivered = status is not None and 200 <= status < 300
        return {"row_id": row_id, "attempts": attempts, "delivered": delivered, "status": status, "error": error}

    @staticmethod
    def _claim_next(session: Session, call_id: str, url: str) -> Claim | float | None:
        row = session.execute(
            select(EventDelivery)
            .where(EventDelivery.call_id == call_id, EventDelivery.url == url, EventDelivery.state == "pending")
            .order_by(EventDelivery.id)
            .limit(1)
        ).scalar_one_or_none()
        if row is None:
            return None
        now = utcnow()
        if row.lease_until and row.lease_until > now:  # another worker is sending it
            return (row.lease_until - now).total_seconds() + 0.1
        if row.next_attempt_at > now:
            return (row.next_attempt_at - now).total_seconds()
        result = session.execute(
            update(EventDelivery)
            .where(EventDelivery.id == row.id, EventDelivery.attempts == row.attempts)
            .values(attempts=row.attempts + 1, lease_until=now + timedelta(seconds=LEASE_S))
        )
        claimed = cast(CursorResult[Any], result).rowcount  # an UPDATE's result is a CursorResult
        if claimed != 1:
            return 0.1
        return row.id, row.event_id, row.event_type, row.body, row.attempts + 1

    def _finish(
        self, session: Session, row_id: int, attempts: int, delivered: bool, status: int | None, error: str | None
    ) -> float | None:
        row = session.get(EventDelivery, row_id)
        if row is None:  # purged meanwhile: nothing left to retry
            return None
        row.lease_until, row.last_status, row.last_error = None, status, error
        if delivered:
            row.state, row.delivered_at = "delivered", utcnow()
            return None
        if attempts >= MAX_ATTEMPTS:
            row.state = "failed"  # the log keeps it; `webhooks replay` sends it again
            log.warning("event %s to %s failed %d times; giving up", row.event_id, row.url, attempts)
            return None
        delay = float(min(self.settings.event_webhook_retry_base_s * 2 ** (attempts - 1), MAX_BACKOFF_S))
        row.next_attempt_at = utcnow() + timedelta(seconds=delay)
        return delay

    # ------------------------------------------------------------ log and replay
    def log(
        self, *, call_id: str | None = None, state: str | None = None, limit: int = 50, before: int | None = None
    ) -> list[dict[str, Any]]:
        """Deliveries newest first; ``before``: only those with a smaller id (the next page)."""

        def work(session: Session) -> list[dict[str, Any]]:
            query = select(EventDelivery).order_by(EventDelivery.id.desc()).limit(limit)
            if before is not None:
                query = query.where(EventDelivery.id < before)
            if call_id:
                query = query.where(EventDelivery.call_id == call_id)
            if state:
                query = query.where(EventDelivery.state == state)
            return [
                {
                    "id": d.id,
                    "event_id": d.event_id,
                    "type": d.event_type,
                    "call_id": d.call_id,
                    "url": d.url,
                    "state": d.state,
                    "attempts": d.attempts,
                    "last_status": d.last_status,
                    "last_error": d.last_error,
                    "created_at": iso(d.created_at),
                    "delivered_at": iso(d.delivered_at),
                }
                for d in session.execute(query).scalars()
            ]

        return self.store.read(work)

    def replay(
        self,
        *,
        event_id: str | None = None,
        call_id: str | None = None,
        since: datetime | None = None,
        failed_only: bool = False,
        url: str | None = None,
    ) -> int:
        """Send chosen events again (same id and body: receivers deduplicate by X-Gateway-Event-Id),
        after anything still pending for their call. Returns how many deliveries were queued."""

        def work(session: Session) -> int:
            query = select(EventDelivery).order_by(EventDelivery.id)
            if event_id:
                query = query.where(EventDelivery.event_id == event_id)
            if call_id:
                query = query.where(EventDelivery.call_id == call_id)
            if since:
                query = query.where(EventDelivery.created_at >= since)
            if url:
                query = query.where(EventDelivery.url == url)
            query = (
                query.where(EventDelivery.state == "failed")
                if failed_only
                else query.where(EventDelivery.state.in_(("delivered", "failed")))
            )
            rows = list(session.execute(query).scalars())
            now = utcnow()
            for row in rows:
                session.add(
                    EventDelivery(
                        event_id=row.event_id,
                        event_type=row.event_type,
                        call_id=row.call_id,
                        url=row.url,
                        body=row.body,
                        state="pending",
                        attempts=0,
                        next_attempt_at=now,
                    )
                )
            for key in {(r.call_id, r.url) for r in rows}:
                self.store.enqueue(session, J.DeliverEvents(*key))
            return len(rows)

        return self.store.run(work)
