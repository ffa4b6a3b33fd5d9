"""Read models for the REST API and the console: calls, timelines, offers, transfers."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import CompoundSelect, or_, select
from sqlalchemy.orm import Session

from gateway.adapters.store import Store
from gateway.adapters.store.models import (
    Agent,
    Call,
    Leg,
    Note,
    QueueEntry,
    TimelineEntry,
    TranscriptLine,
    Transfer,
    utcnow,
)
from gateway.domain import calls as C
from gateway.domain import legs as L
from gateway.domain import transfers as T
from gateway.domain.access import CallFacts
from gateway.domain.agents import mask_phone
from gateway.domain.caller_id import WITHHELD_LABEL, is_withheld, mask_caller
from gateway.services.lookups import existing

# Timeline entries only supervisors see: a listen-in is silent monitoring, not told to the agent.
SUPERVISOR_ONLY_KINDS = ("listen_in",)
# Leg states that mean the agent took part in the call (accepted, and maybe joined and left since).
TOOK_PART = (L.ACCEPTED, L.JOINED, L.LEFT)


def iso(dt: datetime | None) -> str | None:
    return dt.isoformat(timespec="milliseconds") + "Z" if dt else None


def call_dict(call: Call) -> dict[str, Any]:
    return {
        "id": call.id,
        "twilio_sid": call.twilio_sid,
        "from": call.from_number,
        "to": call.to_number,
        "room": call.room,
        "state": call.state,
        "agent_id": call.agent_id,
        "created_at": iso(call.created_at),
        "connected_at": iso(call.connected_at),
        "ended_at": iso(call.ended_at),
        "end_reason": call.end_reason,
        "channel": call.channel or "phone",
        "facts": call.facts,
        # The caller's number is withheld (From is "anonymous" or the like): shown as "Withheld number".
        "withheld": call.channel != "web" and is_withheld(call.from_number),
    }


def web_context(call: Call) -> dict[str, Any] | None:
    """A web call's verified context (the website signed it), or None."""
    return (call.facts or {}).get("context") if call.channel == "web" else None


def caller_label(call: Call) -> str:
    """Who the caller is, as an agent's offer names them: the number ("Withheld number" when the
    caller withheld it), or for a web call its verified name (else "web caller")."""
    if call.channel != "web":
        return WITHHELD_LABEL if is_withheld(call.from_number) else call.from_number
    context = web_context(call) or {}
    return str(context.get("name") or "web caller")


def transfer_dict(t: Transfer, target_joined: bool = False) -> dict[str, Any]:
    """``target_joined``: B is in the consult room (only read while that decides an action)."""
    return {
        "id": t.id,
        "call_id": t.call_id,
        "state": t.state,
        "mode": t.mode,
        "source_agent_id": t.source_agent_id,
        "target_agent_id": t.target_agent_id,
        "target_number": t.target_number,
        "target_team": t.target_team,
        # Nobody free in the target team: what A is told (the caller's expected wait) while A chooses.
        "notice": t.end_reason if t.state == T.TEAM_BUSY else None,
        "consult_room": t.consult_room,
        "summary": t.summary,
        "summary_source": t.summary_source,
        "notes": t.notes,  # A's transfer notes, shown on B's offer card
        "end_reason": t.end_reason,
        "created_at": iso(t.created_at),
        "offered_at": iso(t.offered_at),
        "target_joined_at": iso(t.target_joined_at),
        "ended_at": iso(t.ended_at),
        "active": t.state in T.ACTIVE,
        "allowed_actions": T.allowed_actions(t.state, target_joined),
    }


def _transfer_view(s: Session, t: Transfer) -> dict[str, Any]:
    joined = False
    if t.state == T.TARGET_ACCEPTED:  # the only state where B's presence changes what A may do
        joined = (
            s.execute(
                select(Leg.id).where(
                    Leg.transfer_id == t.id,
                    Leg.state == L.JOINED,
                    # as TransferService.complete decides: anyone but A (a number's leg has no agent)
                    or_(Leg.agent_id.is_(None), Leg.agent_id != t.source_agent_id),
                )
            ).first()
            is not None
        )
    return transfer_dict(t, joined)


def entry_dict(e: TimelineEntry) -> dict[str, Any]:
    return {
        "id": e.id,
        "call_id": e.call_id,
        "transfer_id": e.transfer_id,
        "agent_id": e.agent_id,
        "kind": e.kind,
        "detail": e.detail or {},
        "at": iso(e.at),
    }


class Views:
    def __init__(self, store: Store):
        self.store = store

    def call(self, call_id: str) -> dict[str, Any] | None:
        return self.store.read(lambda s: (lambda c: call_dict(c) if c else None)(s.get(Call, call_id)))

    def call_facts(self, call_id: str) -> CallFacts | None:
        """What the access rule (domain/access.py) needs about one call, or None if unknown."""

        def work(s: Session) -> CallFacts | None:
            call = s.execute(select(Call.agent_id, Call.state).where(Call.id == call_id)).first()
            if call is None:
                return None
            on_call = s.execute(
                select(Leg.agent_id).where(
                    Leg.call_id == call_id, Leg.agent_id.isnot(None), Leg.state.in_((L.ACCEPTED, L.JOINED))
                )
            ).scalars()
            transfer = s.execute(
                select(Transfer.source_agent_id, Transfer.target_agent_id).where(
                    Transfer.active_call_id == call_id, Transfer.state.in_(T.ACTIVE)
                )
            ).first()
            took_part = s.execute(
                select(Leg.agent_id)
                .where(Leg.call_id == call_id, Leg.agent_id.isnot(None), Leg.state.in_(TOOK_PART))
                .union(select(Transfer.source_agent_id).where(Transfer.call_id == call_id))
            ).scalars()
            return CallFacts(
                took_part=frozenset(a for a in took_part if a),
                owner=call.agent_id,
                live=call.state != C.ENDED,
                on_call=frozenset(a for a in on_call if a),
                transfer_source=transfer.source_agent_id if transfer else None,
                transfer_target=transfer.target_agent_id if transfer else None,
            )

        return self.store.read(work)

    def visible_call_ids(self, agent_id: str) -> CompoundSelect[str]:
        """A select of the ids of calls the agent may view by the access rule (the owner, anyone who
        took part, a side of an active transfer): the list of calls and the event stream."""
        return (
            select(Call.id)
            .where(Call.agent_id == agent_id)
            .union(
                select(Leg.call_id).where(Leg.agent_id == agent_id, Leg.state.in_(TOOK_PART)),
                select(Transfer.call_id).where(
                    or_(Transfer.source_agent_id == agent_id, Transfer.target_agent_id == agent_id),
                    or_(Transfer.source_agent_id == agent_id, Transfer.active_call_id.isnot(None)),
                ),
            )
        )

    def timeline(self, call_id: str, after_id: int = 0) -> list[dict[str, Any]]:
        return self.store.read(
            lambda s: [
                entry_dict(e)
                for e in s.execute(
                    select(TimelineEntry)
                    .where(TimelineEntry.call_id == call_id, TimelineEntry.id > after_id)
                    .order_by(TimelineEntry.id)
                ).scalars()
            ]
        )

    def events_for_agent(self, agent_id: str, after_id: int, limit: int = 200) -> list[dict[str, Any]]:
        """Timeline entries of the calls the agent may view (access rule), and entries about the
        agent itself (the console's event stream)."""

        def work(s: Session) -> list[dict[str, Any]]:
            call_ids = self.visible_call_ids(agent_id)
            rows = s.execute(
                select(TimelineEntry)
                .where(
                    TimelineEntry.id > after_id,
                    or_(TimelineEntry.call_id.in_(call_ids), TimelineEntry.agent_id == agent_id),
                    TimelineEntry.kind.notin_(SUPERVISOR_ONLY_KINDS),
                )
                .order_by(TimelineEntry.id)
                .limit(limit)
            ).scalars()
            return [entry_dict(e) for e in rows]

        return self.store.read(work)

    def timeline_heads(self, after_id: int, limit: int = 1000) -> list[tuple[int, str, str | None]]:
        """(id, call_id, agent_id) of the timeline entries after ``after_id``: what the console streams'
        notifier reads once per tick for every open console of the process."""
        return self.store.read(
            lambda s: [
                (row.id, row.call_id, row.agent_id)
                for row in s.execute(
                    select(TimelineEntry.id, TimelineEntry.call_id, TimelineEntry.agent_id)
                    .where(TimelineEntry.id > after_id)
                    .order_by(TimelineEntry.id)
                    .limit(limit)
                )
            ]
        )

    def agents_concerned(self, call_ids: set[str]) -> set[str]:
        """Agents whose console may have something new when these calls change: the owner, anyone with
        a leg on them (offered, ringing, on the call, gone), either side of their transfers. Wider than
        the access rule on purpose: each console then reads what it may see by that rule."""
        if not call_ids:
            return set()

        def work(s: Session) -> set[str]:
            ids = sorted(call_ids)
            rows = s.execute(
                select(Call.agent_id)
                .where(Call.id.in_(ids))
                .union(
                    select(Leg.agent_id).where(Leg.call_id.in_(ids)),
                    select(Transfer.source_agent_id).where(Transfer.call_id.in_(ids)),
                    select(Transfer.target_agent_id).where(Transfer.call_id.in_(ids)),
                )
            ).scalars()
            return {agent for agent in rows if agent}

        return self.store.read(work)

    def last_event_id(self) -> int:
        return self.store.read(
            lambda s: s.execute(select(TimelineEntry.id).order_by(TimelineEntry.id.desc()).limit(1)).scalar() or 0
        )

    def transcript(self, call_id: str) -> list[dict[str, Any]]:
        return self.store.read(
            lambda s: [
                {"speaker": line.speaker, "text": line.text, "at": iso(line.at)}
                for line in s.execute(
                    select(TranscriptLine).where(TranscriptLine.call_id == call_id).order_by(TranscriptLine.id)
                ).scalars()
            ]
        )

    def notes(self, call_id: str) -> list[dict[str, Any]]:
        return self.store.read(
            lambda s: [
                {"agent_id": n.agent_id, "text": n.text, "at": iso(n.at)}
                for n in s.execute(select(Note).where(Note.call_id == call_id).order_by(Note.id)).scalars()
            ]
        )

    def offers(self, agent_id: str) -> list[dict[str, Any]]:
        """Ringing browser legs: incoming calls and incoming transfers for this agent."""

        def work(s: Session) -> list[dict[str, Any]]:
            out = []
            legs = s.execute(
                select(Leg)
                .where(Leg.agent_id == agent_id, Leg.kind == "browser", Leg.state == L.RINGING)
                .order_by(Leg.created_at)
            ).scalars()
            for leg in legs:
                call = existing(s, Call, leg.call_id)
                offer: dict[str, Any] = {
                    "leg_id": leg.id,
                    "call_id": call.id,
                    "caller": caller_label(call),
                    "channel": call.channel or "phone",
                    "context": web_context(call),
                    "room": leg.room,
                    "kind": "transfer" if leg.transfer_id else "call",
                    "waiting_s": round((utcnow() - call.created_at).total_seconds(), 1),
                    "callback": False,
                }
                entry = (
                    None
                    if leg.transfer_id
                    else s.execute(
                        select(QueueEntry.kind, QueueEntry.transfer_id, QueueEntry.callback_number).where(
                            QueueEntry.active_call_id == call.id
                        )
                    ).first()
                )
                if entry is not None:
                    # A caller who asked to be called back: accepting dials them (services.callbacks).
                    offer["callback"] = entry.kind == "callback"
                    if offer["callback"] and call.channel == "web":  # the number the web caller gave
                        offer["caller"] = f"{offer['caller']} at {entry.callback_number}"
                    queued = s.get(Transfer, entry.transfer_id) if entry.transfer_id else None
                    if queued is not None:  # transferred to this team and waited: A's notes and summary
                        source = s.get(Agent, queued.source_agent_id)
                        offer.update(
                            transfer=transfer_dict(queued),
                            from_agent=source.name if source else queued.source_agent_id,
                        )
                if leg.transfer_id:
                    t = existing(s, Transfer, leg.transfer_id)
                    source = s.get(Agent, t.source_agent_id)
                    offer.update(transfer=transfer_dict(t), from_agent=source.name if source else t.source_agent_id)
                out.append(offer)
            return out

        return self.store.read(work)

    def active_legs(self, agent_id: str) -> list[dict[str, Any]]:
        return self.store.read(
            lambda s: [
                {
                    "leg_id": leg_.id,
                    "call_id": leg_.call_id,
                    "room": leg_.room,
                    "state": leg_.state,
                    "kind": leg_.kind,
                    "transfer_id": leg_.transfer_id,
                }
                for leg_ in s.execute(
                    select(Leg).where(Leg.agent_id == agent_id, Leg.state.in_((L.ACCEPTED, L.JOINED)))
                ).scalars()
            ]
        )

    def leg_in_room(self, agent_id: str, room: str) -> Leg | None:
        return self.store.read(
            lambda s: (
                s.execute(
                    select(Leg).where(Leg.agent_id == agent_id, Leg.room == room, Leg.state.in_((L.ACCEPTED, L.JOINED)))
                )
                .scalars()
                .first()
            )
        )

    def calls_today(self, agent_id: str | None) -> list[dict[str, Any]]:
        since = utcnow() - timedelta(hours=24)

        def work(s: Session) -> list[dict[str, Any]]:
            query = select(Call).where(Call.created_at >= since).order_by(Call.created_at.desc()).limit(200)
            if agent_id:
                query = query.where(Call.id.in_(self.visible_call_ids(agent_id)))
            return [call_dict(c) for c in s.execute(query).scalars()]

        return self.store.read(work)

    def missed_today(self, agent_id: str) -> list[dict[str, Any]]:
        """Calls offered to the agent in the last 24 hours that rang out unanswered, newest first,
        unless the agent took part in them later: what the offer showed (the caller's number, here
        masked) and when; the call itself stays out of their view (access rule)."""
        since = utcnow() - timedelta(hours=24)

        def work(s: Session) -> list[dict[str, Any]]:
            rows = s.execute(
                select(Leg.call_id, Leg.ended_at, Leg.created_at, Call.from_number, Call.channel)
                .join(Call, Call.id == Leg.call_id)
                .where(
                    Leg.agent_id == agent_id,
                    Leg.transfer_id.is_(None),
                    Leg.state == L.NO_ANSWER,
                    Leg.created_at >= since,
                    Call.id.not_in(self.visible_call_ids(agent_id)),
                )
                .order_by(Leg.created_at.desc())
            ).all()
            out: dict[str, dict[str, Any]] = {}
            for call_id, ended_at, created_at, caller, channel in rows:
                shown = mask_phone(caller) if channel == "web" else mask_caller(caller)
                out.setdefault(
                    call_id,
                    {"call_id": call_id, "caller": shown, "at": iso(ended_at or created_at)},
                )
            return list(out.values())[:200]

        return self.store.read(work)

    def calls_by_twilio_sid(self, twilio_sid: str, agent_id: str | None) -> list[dict[str, Any]]:
        """The call whose caller leg has this Twilio CallSid, at any age, if ``agent_id`` (None: anyone)
        took part in it: an empty list otherwise, so the API says nothing of other agents' calls."""

        def work(s: Session) -> list[dict[str, Any]]:
            query = select(Call).where(Call.twilio_sid == twilio_sid)
            if agent_id:
                query = query.where(Call.id.in_(select(Leg.call_id).where(Leg.agent_id == agent_id)))
            return [call_dict(c) for c in s.execute(query).scalars()]

        return self.store.read(work)

    def live_rooms(self) -> list[dict[str, Any]]:
        def work(s: Session) -> list[dict[str, Any]]:
            rooms: dict[str, dict[str, Any]] = {}
            for call in s.execute(select(Call).where(Call.state != "ended")).scalars():
                rooms.setdefault(call.room, {"room": call.room, "call_id": call.id, "kind": "call"})
            for t in s.execute(select(Transfer).where(Transfer.active_call_id.isnot(None))).scalars():
                rooms.setdefault(t.consult_room, {"room": t.consult_room, "call_id": t.call_id, "kind": "consult"})
            return list(rooms.values())

        return self.store.read(work)

    def transfer(self, transfer_id: str) -> dict[str, Any] | None:
        return self.store.read(lambda s: (lambda t: _transfer_view(s, t) if t else None)(s.get(Transfer, transfer_id)))

    def transfers_of_call(self, call_id: str) -> list[dict[str, Any]]:
        return self.store.read(
            lambda s: [
                _transfer_view(s, t)
                for t in s.execute(
                    select(Transfer).where(Transfer.call_id == call_id).order_by(Transfer.created_at)
                ).scalars()
            ]
        )
