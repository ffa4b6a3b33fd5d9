"""The transfer summary: made while B is being reached, delivered by SMS, whisper and console.

OpenAI within ``SUMMARY_DEADLINE_S``, the local extractive summary otherwise; the first one
stored wins. ``whisper`` is what B's phone hears before pressing 1 or 2.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.adapters.store.db import new_id
from gateway.adapters.store.models import Agent, Call, Leg, Message, Note, TranscriptLine, Transfer, utcnow
from gateway.domain import agents as agent_rules
from gateway.domain import legs as L
from gateway.domain import summary as S
from gateway.domain import transfers as T
from gateway.domain.caller_id import mask_caller
from gateway.domain.summary import Summary
from gateway.domain.web_calls import on_the_page
from gateway.services import job_types as J
from gateway.services.lookups import existing
from gateway.services.ports import Dest, Gateway, ProviderErrors
from gateway.services.replies import AgentPrompt, Goodbye, Spoken, Webhook, Whisper, WhisperWait

# What a summary is made from: the call's facts, its transcript as (speaker, text), A's notes.
SummaryInputs = tuple[dict[str, object], list[tuple[str, str]], list[str]]


class Summaries:
    def __init__(self, gw: Gateway, provider_errors: ProviderErrors):
        self.gw, self.store, self.provider_errors = gw, gw.store, provider_errors

    def summary_inputs(self, session: Session, call_id: str) -> SummaryInputs:
        call = existing(session, Call, call_id)
        lines = (
            session.execute(select(TranscriptLine).where(TranscriptLine.call_id == call_id).order_by(TranscriptLine.id))
            .scalars()
            .all()
        )
        notes = session.execute(select(Note.text).where(Note.call_id == call_id).order_by(Note.id)).scalars().all()
        agent = session.get(Agent, call.agent_id) if call.agent_id else None
        start = call.connected_at or call.created_at
        facts: dict[str, object] = {
            "caller_number": mask_caller(call.from_number),
            "minutes_on_call": round((utcnow() - start).total_seconds() / 60, 1),
            "agent": agent.name if agent else None,
        }
        if call.channel == "web":
            # No number and no Twilio transcription: what the website vouched for (signed context),
            # then the agents' notes (and any transcript lines) are what the summary has.
            del facts["caller_number"]
            facts["channel"] = "web call from the website's caller page" + (
                "" if on_the_page(call.channel, call.twilio_sid) else ", called back by phone at the caller's request"
            )
            context = (call.facts or {}).get("context") or {}
            facts |= {f"{S.VERIFIED_PREFIX}{name}": value for name, value in context.items()}
        return facts, [(line.speaker, line.text) for line in lines], list(notes)

    def summarize(self, transfer_id: str) -> None:
        """OpenAI within the deadline; the local summary otherwise. First writer wins."""

        def read(session: Session) -> tuple[datetime, SummaryInputs] | None:
            transfer = session.get(Transfer, transfer_id)
            if transfer is None or transfer.summary is not None:
                return None
            return transfer.created_at, self.summary_inputs(session, transfer.call_id)

        got = self.store.read(read)
        if got is None:
            return
        created_at, (facts, transcript, notes) = got
        remaining = self.gw.settings.summary_deadline_s - (utcnow() - created_at).total_seconds()
        summary, source, error = None, "fallback", None
        if self.gw.summarizer is not None and remaining > 0.05:
            try:
                answer = self.gw.summarizer.complete_json(
                    S.build_messages(facts, transcript, notes), timeout_s=remaining
                )
                summary = S.validate(
                    answer, transcript=transcript, notes=notes, local=S.fallback(facts, transcript, notes)
                )
                source = "openai" if summary else "fallback"
                error = None if summary else "unusable answer"
            except Exception as exc:  # any OpenAI failure: the transfer goes on
                error = getattr(exc, "kind", type(exc).__name__)
                self.provider_errors("openai", error)
        if summary is None:
            summary = S.fallback(facts, transcript, notes)
        self.store_summary(transfer_id, summary, source, error)

    def summary_deadline(self, transfer_id: str) -> None:
        def read(session: Session) -> SummaryInputs | None:
            transfer = session.get(Transfer, transfer_id)
            if transfer is None or transfer.summary is not None:
                return None
            return self.summary_inputs(session, transfer.call_id)

        inputs = self.store.read(read)
        if inputs is not None:
            self.store_summary(transfer_id, S.fallback(*inputs), "fallback", "deadline passed")

    def store_summary(self, transfer_id: str, summary: Summary, source: str, error: str | None) -> None:
        def work(session: Session) -> None:
            transfer = session.get(Transfer, transfer_id, populate_existing=True)
            if transfer is None or transfer.summary is not None:
                return
            self.store.compare_and_set(session, transfer, summary=summary, summary_source=source)
            self.store.cancel_timers(session, J.SummaryDeadline.kind, transfer.id)
            detail = {"source": source}
            if error:
                detail["openai_error"] = error
            self.store.record(
                session,
                transfer.call_id,
                "summary_ready",
                transfer_id=transfer.id,
                elapsed_ms=int((utcnow() - transfer.created_at).total_seconds() * 1000),
                **detail,
            )
            number = self.target_phone(session, transfer)
            if number and not T.TRANSFER.is_terminal(transfer.state):
                self.store.enqueue(session, J.SendSms(transfer.id, number), dedupe_key=f"sms:{transfer.id}:{number}")

        self.store.run(work)

    @staticmethod
    def target_phone(session: Session, transfer: Transfer) -> str | None:
        if transfer.target_number:
            return transfer.target_number
        agent = session.get(Agent, transfer.target_agent_id) if transfer.target_agent_id else None
        return agent.phone if agent else None

    def summary_now(self, call_id: str) -> tuple[Summary, str]:
        """On demand (seed endpoint): the same inputs and deadline as a transfer's summary."""
        facts, transcript, notes = self.store.read(lambda s: self.summary_inputs(s, call_id))
        if self.gw.summarizer is not None:
            try:
                answer = self.gw.summarizer.complete_json(
                    S.build_messages(facts, transcript, notes), timeout_s=self.gw.settings.summary_deadline_s
                )
                summary = S.validate(
                    answer, transcript=transcript, notes=notes, local=S.fallback(facts, transcript, notes)
                )
                if summary:
                    return summary, "openai"
            except Exception as exc:
                self.provider_errors("openai", getattr(exc, "kind", "error"))
        return S.fallback(facts, transcript, notes), "fallback"

    def resend_sms(self, transfer_id: str, to: str) -> None:
        def work(session: Session) -> None:
            self.store.enqueue(session, J.SendSms(transfer_id, to))

        self.store.run(work)

    def send_sms(self, transfer_id: str, to: str) -> None:
        def read(session: Session) -> tuple[Transfer | None, str]:
            transfer = session.get(Transfer, transfer_id)
            source = session.get(Agent, transfer.source_agent_id) if transfer else None
            return transfer, (source.name if source else "an agent")

        transfer, source_name = self.store.read(read)
        if transfer is None or transfer.summary is None:
            return
        link = S.transfer_link(self.gw.urls.origin, transfer.id)
        body = S.sms_body(transfer.summary, source_name, link)
        message_id = new_id("msg")
        try:
            sid = self.gw.telephony.send_sms(to=to, body=body, status_callback=self.gw.urls(Dest.SMS_STATUS))
            status, error = "sent", None
        except Exception as exc:
            sid, status, error = None, "failed", str(exc)[:200]

        def write(session: Session) -> None:
            session.add(
                Message(id=message_id, transfer_id=transfer_id, to_number=to, body=body, twilio_sid=sid, status=status)
            )
            self.store.record(
                session,
                transfer.call_id,
                "sms_sent" if sid else "sms_failed",
                transfer_id=transfer_id,
                to=agent_rules.mask_phone(to),
                error=error,
            )

        self.store.run(write)

    def whisper(self, leg: Leg) -> AgentPrompt | Goodbye:
        """B's phone: the summary spoken, then press 1 / 2. Waits briefly if it is not ready yet."""

        def read(session: Session) -> tuple[Transfer | None, str]:
            transfer = session.get(Transfer, leg.transfer_id)
            source = session.get(Agent, transfer.source_agent_id) if transfer else None
            return transfer, (source.name if source else "an agent")

        transfer, source_name = self.store.read(read)
        if transfer is None or T.TRANSFER.is_terminal(transfer.state):
            return Goodbye("This transfer is no longer needed. Goodbye.")
        if transfer.summary is None:
            waited = utcnow() - transfer.created_at
            if waited < timedelta(seconds=self.gw.settings.summary_deadline_s + 2):
                return WhisperWait(
                    message=f"Transfer from {source_name}. One moment, preparing the summary.",
                    retry=Webhook.to(Dest.LEG_ANSWER, leg=leg.id, wait=1),
                )
            announcement: Spoken = f"Transfer from {source_name}."
        else:
            announcement = tuple(S.whisper_parts(transfer.summary, source_name))
        return Whisper(
            announcement=announcement, keys=Webhook.to(Dest.LEG_GATHER, leg=leg.id), wait_s=L.GATHER_TIMEOUT_S
        )
