"""What the gateway only writes down: transcript lines, agents' notes, SMS delivery statuses,
and Twilio's use of the fallback URL. No state machine moves here."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.adapters.store import Store
from gateway.adapters.store.models import Call, Message, Note, TranscriptLine
from gateway.domain.summary import redact
from gateway.services.lookups import call_by_sid


class Records:
    def __init__(self, store: Store):
        self.store = store

    def fallback_used(self, call_sid: str, error_code: str, error_url: str) -> None:
        def work(session: Session) -> None:
            call = call_by_sid(session, call_sid) if call_sid else None
            self.store.record(
                session,
                call.id if call else "unknown",
                "twilio_fallback",
                error_code=error_code[:16],
                error_url=error_url[:300],
            )

        self.store.run(work)

    def transcript_line(self, call_id: str, key: str, speaker: str, text: str) -> None:
        def work(session: Session) -> None:
            if session.get(Call, call_id) is None:
                return
            exists = session.execute(
                select(TranscriptLine.id).where(TranscriptLine.call_id == call_id, TranscriptLine.source_key == key)
            ).first()
            if not exists:
                session.add(TranscriptLine(call_id=call_id, source_key=key, speaker=speaker, text=redact(text)[:2000]))
                self.store.record(session, call_id, "transcript", speaker=speaker)

        self.store.run(work)

    def sms_status(self, message_sid: str, status: str) -> None:
        def work(session: Session) -> None:
            message = session.execute(select(Message).where(Message.twilio_sid == message_sid)).scalars().first()
            if message is not None and message.status != status:
                message.status = status

        self.store.run(work)

    def add_note(self, call_id: str, agent_id: str, text: str) -> None:
        def work(session: Session) -> None:
            session.add(Note(call_id=call_id, agent_id=agent_id, text=redact(text.strip())))
            self.store.record(session, call_id, "note_added", agent_id=agent_id)

        self.store.run(work)
