"""Callbacks that keep their place: a waiting caller who asked to be called back hangs up, and their
queue entry waits on as a callback (same place). When their turn comes, an agent is offered the
callback like any caller; once that agent is in the room we dial the caller (Twilio REST) and
bridge them in when they answer. No answer (or busy, or a failed dial): one more try after
CALLBACK_RETRY_S, then the callback is recorded as missed and the agent is freed.

Everything is in the database (the entry, the call) and the job table (the dial and its retry),
so a restart loses no callback: a dial job that ran is not run twice (the attempt is claimed on
the entry first), and an answer reaching us before the dial's result was saved still finds the
call by its id.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway.adapters.store import Store
from gateway.adapters.store.models import Call
from gateway.adapters.store.uow import Session
from gateway.domain import calls as C
from gateway.domain import queues as Q
from gateway.domain.caller_id import mask_caller
from gateway.services import job_types as J
from gateway.services.answers import Answers
from gateway.services.job_types import handles
from gateway.services.jobs import JobRunner
from gateway.services.ports import Dest, Gateway
from gateway.services.queues import Queues
from gateway.services.replies import Goodbye, Reply

FINAL_STATUSES = ("completed", "busy", "no-answer", "failed", "canceled")


class Callbacks:
    def __init__(self, gw: Gateway, queues: Queues, answers: Answers, end_call: Callable[[Session, Call, str], None]):
        self.gw, self.queues, self.answers, self.end_call = gw, queues, answers, end_call
        self.store: Store = gw.store

    def register(self, runner: JobRunner) -> None:
        runner.register_jobs(self)

    # ------------------------------------------------------------------ dial
    @handles(J.DialCallback)
    def dial(self, job: J.DialCallback) -> None:
        """Dial the caller back (attempt 1 once the agent is in the room, attempt 2 after the delay)."""
        attempt, call_id = job.attempt, job.call_id

        def claim(session: Session) -> str | None:
            call = session.get(Call, call_id, populate_existing=True)
            entry = self.queues.live_entry(session, call.id) if call is not None else None
            if (
                call is None
                or entry is None
                or entry.kind != Q.CALLBACK
                or entry.state != Q.OFFERED
                or entry.offers != (entry.offers if job.offer is None else job.offer)
                or (entry.callback_attempts or 0) >= attempt  # dialled already (the job ran before a crash)
            ):
                return None
            self.store.compare_and_set(session, entry, callback_attempts=attempt)
            self.store.record(
                session,
                call.id,
                "callback_dialled",
                agent_id=entry.offered_agent_id,
                attempt=attempt,
                number=mask_caller(entry.callback_number),
            )
            return entry.callback_number

        number = self.store.run(claim)
        if not number:
            return
        urls = self.gw.urls
        sid = self.gw.telephony.place_call(
            to=number,
            url=urls(Dest.CALLBACK_ANSWER, call=call_id, attempt=attempt),
            status_callback=urls(Dest.CALLBACK_STATUS, call=call_id, attempt=attempt),
            timeout_s=int(self.gw.settings.ring_timeout_s),
        )

        def save(session: Session) -> None:
            call = session.get(Call, call_id, populate_existing=True)
            if call is not None and call.state == C.QUEUED and call.twilio_sid != sid:
                self.store.compare_and_set(session, call, twilio_sid=sid, dial_sid=None, caller_identity=None)

        self.store.run(save)

    # --------------------------------------------------------------- webhooks
    def answered(self, call_id: str, call_sid: str, attempt: int) -> Reply:
        """The caller picked up our callback: a word of greeting, then into the agent's room."""

        def work(session: Session) -> tuple[str, Call | None, str | None]:
            call = session.get(Call, call_id, populate_existing=True)
            entry = self.queues.live_entry(session, call_id) if call is not None else None
            if call is None or call.state != C.QUEUED:
                return "gone", call, None
            if entry is None or entry.kind != Q.CALLBACK or entry.state != Q.OFFERED:
                return "agent_gone", call, None  # the agent left meanwhile: the callback waits on
            team = self.queues.team(session, entry.team_id)
            changes: dict[str, Any] = {"dial_sid": None, "caller_identity": None}
            if call_sid and call.twilio_sid != call_sid:
                changes["twilio_sid"] = call_sid
            self.store.compare_and_set(session, call, **changes)
            self.queues.end(session, entry, "answered", "callback answered")
            self.store.transition(session, call, C.CALL, "rebridge", bridge_gen=(call.bridge_gen or 0) + 1)
            self.store.record(session, call.id, "callback_answered", attempt=attempt)
            return "bridge", call, team.name if team else None

        verdict, call, team_name = self.store.run(work)
        if verdict == "agent_gone":
            return Goodbye(Q.CALLBACK_AGENT_GONE)
        if verdict == "gone" or call is None:
            return Goodbye()
        return self.answers.bridge(call, greeting=Q.callback_greeting(team_name))

    def status(self, call_id: str, call_sid: str, attempt: int, status: str) -> None:
        """Our callback's final status: unanswered, tried once more, then missed; or, after the
        conversation, the caller hanging up."""
        if status not in FINAL_STATUSES:
            return

        def work(session: Session) -> None:
            call = session.get(Call, call_id, populate_existing=True)
            if call is None or call.state == C.ENDED:
                return
            entry = self.queues.live_entry(session, call.id)
            if entry is not None and entry.kind == Q.CALLBACK:
                if entry.state != Q.OFFERED or (entry.callback_attempts or 0) != attempt:
                    return  # an older dial, or the agent left and the callback waits on
                agent_id = entry.offered_agent_id  # waiting in the room: their console says what is happening
                if attempt < Q.CALLBACK_ATTEMPTS:
                    self.store.record(
                        session,
                        call.id,
                        "callback_unanswered",
                        agent_id=agent_id,
                        attempt=attempt,
                        status=status,
                        number=mask_caller(entry.callback_number),
                        retry_in_s=round(self.gw.settings.callback_retry_s),
                    )
                    self.queues.start_callback(session, entry, entry.offered_agent_id, attempt=attempt + 1)
                    return
                self.store.record(
                    session, call.id, "callback_missed", agent_id=agent_id, attempts=attempt, status=status
                )
                self.queues.end(session, entry, "callback_missed", "callback not answered")
                self.end_call(session, call, "callback not answered")
                return
            if entry is None and call.twilio_sid == call_sid:
                self.end_call(session, call, f"caller {status}")  # the called-back caller hung up

        self.store.run(work)
