"""Tables. Every stateful row carries ``version`` for compare-and-set updates."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class Agent(Base):
    __tablename__ = "agents"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    phone: Mapped[str | None] = mapped_column(String(20))
    browser: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(16), default="offline")
    idle_since: Mapped[datetime | None] = mapped_column(DateTime)
    # Set offline by the gateway after a missed offer: {call_id, caller (masked), at, reason}; the
    # console says so until the agent sets a status again.
    not_responding: Mapped[dict | None] = mapped_column(JSON)
    secret_hash: Mapped[str] = mapped_column(String(128))
    # agent | supervisor (domain/access.py): a supervisor also sees the board and may listen in.
    role: Mapped[str] = mapped_column(String(16), default="agent", server_default="agent")
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Call(Base):
    __tablename__ = "calls"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    twilio_sid: Mapped[str] = mapped_column(String(64), unique=True)
    from_number: Mapped[str] = mapped_column(String(32))
    to_number: Mapped[str] = mapped_column(String(32))
    room: Mapped[str] = mapped_column(String(128))
    state: Mapped[str] = mapped_column(String(16))
    agent_id: Mapped[str | None] = mapped_column(String(40))
    dial_sid: Mapped[str | None] = mapped_column(String(64))
    caller_identity: Mapped[str | None] = mapped_column(String(128))
    # Bumped whenever we send the caller into a room again: a <Dial> action carrying an older
    # generation belongs to a bridge we superseded ourselves, not to a failure.
    bridge_gen: Mapped[int] = mapped_column(Integer, default=0)
    # Set just before we REST-redirect the caller to a new bridge and cleared when Twilio fetches
    # it: the <Dial> that redirect interrupts (whatever its generation) reports no failure.
    redirecting: Mapped[bool] = mapped_column(Boolean, default=False)
    end_reason: Mapped[str | None] = mapped_column(String(64))
    # The team (queue) the call is for: from the number dialled, a menu choice or a transfer.
    team_id: Mapped[str | None] = mapped_column(String(40))
    # How the caller reached us: "phone" (Twilio) or "web" (the caller page, straight into LiveKit).
    channel: Mapped[str] = mapped_column(String(8), default="phone", server_default="phone")
    # What is known about the caller beyond the number: a web call's verified context (domain/web_calls).
    facts: Mapped[dict | None] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    connected_at: Mapped[datetime | None] = mapped_column(DateTime)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime)
    __table_args__ = (
        Index("ix_calls_state", "state"),
        Index("ix_calls_room", "room"),
        Index("ix_calls_created", "created_at"),
        Index("ix_calls_channel_state", "channel", "state"),
        # A team's newest handle times (the queue's wait estimate, on every pass of the hold loop).
        Index("ix_calls_team_ended", "team_id", "ended_at"),
    )


class Leg(Base):
    __tablename__ = "legs"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id"))
    transfer_id: Mapped[str | None] = mapped_column(String(40))
    agent_id: Mapped[str | None] = mapped_column(String(40))
    phone: Mapped[str | None] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(16))  # browser | phone
    room: Mapped[str] = mapped_column(String(128))
    state: Mapped[str] = mapped_column(String(16))
    twilio_sid: Mapped[str | None] = mapped_column(String(64))
    identity: Mapped[str | None] = mapped_column(String(128))
    end_reason: Mapped[str | None] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime)
    __table_args__ = (
        Index("ix_legs_call", "call_id"),
        Index("ix_legs_twilio_sid", "twilio_sid"),
        Index("ix_legs_agent_state", "agent_id", "state"),
    )


class Transfer(Base):
    __tablename__ = "transfers"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id"))
    source_agent_id: Mapped[str] = mapped_column(String(40))
    source_leg_id: Mapped[str | None] = mapped_column(String(40))
    target_agent_id: Mapped[str | None] = mapped_column(String(40))
    target_number: Mapped[str | None] = mapped_column(String(20))
    target_team: Mapped[str | None] = mapped_column(String(40))  # a transfer to a team: its member, or its line
    target_leg_id: Mapped[str | None] = mapped_column(String(40))
    mode: Mapped[str] = mapped_column(String(8))
    state: Mapped[str] = mapped_column(String(20))
    # Only one active transfer per call: a unique key that is the call id while active, NULL after.
    active_call_id: Mapped[str | None] = mapped_column(String(40), unique=True)
    consult_room: Mapped[str] = mapped_column(String(128))
    notes: Mapped[str | None] = mapped_column(Text)
    summary: Mapped[dict | None] = mapped_column(JSON)
    summary_source: Mapped[str | None] = mapped_column(String(16))
    end_reason: Mapped[str | None] = mapped_column(String(120))
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    offered_at: Mapped[datetime | None] = mapped_column(DateTime)  # the target first rung
    target_joined_at: Mapped[datetime | None] = mapped_column(DateTime)  # the target first in the consult room
    ended_at: Mapped[datetime | None] = mapped_column(DateTime)
    __table_args__ = (Index("ix_transfers_call", "call_id"), Index("ix_transfers_created", "created_at"))


class TimelineEntry(Base):
    __tablename__ = "timeline"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(String(40))
    transfer_id: Mapped[str | None] = mapped_column(String(40))
    agent_id: Mapped[str | None] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(48))
    detail: Mapped[dict] = mapped_column(JSON, default=dict)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    __table_args__ = (Index("ix_timeline_call", "call_id", "id"), Index("ix_timeline_kind_at", "kind", "at"))


class Job(Base):
    """Outbox and timers: provider work and deadlines any worker may claim and run."""

    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(48))
    payload: Mapped[dict] = mapped_column(JSON, default=dict)
    run_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    state: Mapped[str] = mapped_column(
        String(12), default="pending"
    )  # pending | running | done | failed | cancelled (a moot timer)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    dedupe_key: Mapped[str | None] = mapped_column(String(160), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    __table_args__ = (Index("ix_jobs_due", "state", "run_at"),)


class WebhookReceipt(Base):
    """Provider event ids already handled: a retried webhook is acknowledged and ignored."""

    __tablename__ = "webhook_receipts"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class TranscriptLine(Base):
    __tablename__ = "transcript"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(String(40))
    source_key: Mapped[str] = mapped_column(String(160))
    speaker: Mapped[str] = mapped_column(String(16))  # caller | agent
    text: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    __table_args__ = (UniqueConstraint("call_id", "source_key"), Index("ix_transcript_call", "call_id", "id"))


class Note(Base):
    __tablename__ = "notes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(String(40))
    agent_id: Mapped[str] = mapped_column(String(40))
    text: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Message(Base):
    __tablename__ = "messages"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    transfer_id: Mapped[str | None] = mapped_column(String(40))
    to_number: Mapped[str] = mapped_column(String(20))
    body: Mapped[str] = mapped_column(Text)
    twilio_sid: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Voicemail(Base):
    __tablename__ = "voicemails"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(String(40))
    recording_url: Mapped[str] = mapped_column(String(500))
    duration_s: Mapped[float | None] = mapped_column(Float)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Team(Base):
    """A team is a queue: its members are offered its callers; its own hold music and max wait."""

    __tablename__ = "teams"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    hold_music_url: Mapped[str | None] = mapped_column(String(500))  # None: HOLD_MUSIC_URL
    max_wait_s: Mapped[float | None] = mapped_column(Float)  # None: QUEUE_TIMEOUT_S
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class AgentTeam(Base):
    __tablename__ = "agent_teams"
    agent_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    team_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    __table_args__ = (Index("ix_agent_teams_team", "team_id"),)


class TeamNumber(Base):
    """A Twilio number whose callers go to a team (unmapped numbers: the default team). A number
    that goes to several teams asks the caller with a menu: ``position`` is the team's key."""

    __tablename__ = "team_numbers"
    number: Mapped[str] = mapped_column(String(20), primary_key=True)
    team_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, default=1, server_default="1")


class QueueEntry(Base):
    """A caller waiting for a team (or a callback keeping its place), durably and in order."""

    __tablename__ = "queue_entries"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    call_id: Mapped[str] = mapped_column(String(40))
    team_id: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(12), default="caller")  # caller | callback | transfer
    priority: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(16))
    # One live entry per call: the call id while waiting or offered, NULL after (a unique key).
    active_call_id: Mapped[str | None] = mapped_column(String(40), unique=True)
    offered_agent_id: Mapped[str | None] = mapped_column(String(40))
    offered_at: Mapped[datetime | None] = mapped_column(DateTime)
    offers: Mapped[int] = mapped_column(Integer, default=0)
    transfer_id: Mapped[str | None] = mapped_column(String(40))
    callback_number: Mapped[str | None] = mapped_column(String(20))
    callback_attempts: Mapped[int] = mapped_column(Integer, default=0)
    end_reason: Mapped[str | None] = mapped_column(String(64))
    wait_s: Mapped[float | None] = mapped_column(Float)  # set when the entry ends
    enqueued_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime)
    version: Mapped[int] = mapped_column(Integer, default=1)
    __table_args__ = (
        Index("ix_queue_line", "team_id", "state", "priority", "enqueued_at"),
        Index("ix_queue_call", "call_id"),
        Index("ix_queue_enqueued", "enqueued_at"),
    )


class AgentSession(Base):
    """A signed-in console: the cookie carries a random token, this row its digest. Deleting the
    row ends the session at once (sign-out, a credential reset, the agent's removal)."""

    __tablename__ = "agent_sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the cookie's token
    agent_id: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    __table_args__ = (Index("ix_agent_sessions_agent", "agent_id"),)


class EventDelivery(Base):
    """One integrator event for one configured URL: the outbox row and its delivery log.
    Delivered oldest first per (call, url); ``body`` is the exact JSON that is signed and sent."""

    __tablename__ = "event_deliveries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(40))
    event_type: Mapped[str] = mapped_column(String(40))
    call_id: Mapped[str] = mapped_column(String(40))
    url: Mapped[str] = mapped_column(String(500))
    body: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending, delivered, failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime)

    __table_args__ = (
        Index("ix_event_deliveries_call_url", "call_id", "url", "state", "id"),
        Index("ix_event_deliveries_event", "event_id"),
    )


class WebJoin(Base):
    """One LiveKit token given to a web caller: for one room, one bridge generation, one join.
    ``id`` is the identity the token carries (``webcaller-<call id>-<gen>``); a second join with it
    is removed, and the token is never issued twice for a generation (the unique key)."""

    __tablename__ = "web_joins"
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    call_id: Mapped[str] = mapped_column(String(40))
    room: Mapped[str] = mapped_column(String(128))
    gen: Mapped[int] = mapped_column(Integer)
    issued_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    joined_at: Mapped[datetime | None] = mapped_column(DateTime)
    left_at: Mapped[datetime | None] = mapped_column(DateTime)
    version: Mapped[int] = mapped_column(Integer, default=1)
    __table_args__ = (UniqueConstraint("call_id", "gen", name="uq_web_joins_call_gen"),)


class WebCallKey(Base):
    """A web call's rejoin secret: only its digest. The page that holds the secret may get back into
    the call after a reload or a dropped connection; each use replaces it (``rotations`` counts).
    ``id`` is the call's id."""

    __tablename__ = "web_call_keys"
    id: Mapped[str] = mapped_column(ForeignKey("calls.id"), primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    rotations: Mapped[int] = mapped_column(Integer, default=0)
    rotated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    version: Mapped[int] = mapped_column(Integer, default=1)


class ApiKey(Base):
    """A server-to-server credential (a CRM's back end): the key is shown once, this row keeps its
    digest. ``scope``: read (GET call data, the delivery log) or write (also the admin API and replay)."""

    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    scope: Mapped[str] = mapped_column(String(8))
    secret_hash: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime)
