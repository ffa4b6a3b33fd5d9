"""The supervisor's board: loads today's rows (indexed queries, nothing older than the day) and
the live picture, and hands them to the pure rules in domain/board.py; the day's CSV export."""

from __future__ import annotations

import csv
import io
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.adapters.store import Store
from gateway.adapters.store.models import Agent, AgentTeam, Call, Leg, QueueEntry, Team, TimelineEntry, Transfer, utcnow
from gateway.domain import board as B
from gateway.domain import calls as C
from gateway.domain import legs as L
from gateway.domain import queues as Q
from gateway.domain import transfers as T
from gateway.domain.agents import mask_phone
from gateway.domain.caller_id import mask_caller
from gateway.services.lookups import LIVE_LEG_STATES

# Timeline kinds that mean the caller was sent to the apology and voicemail.
VOICEMAIL_KINDS = ("no_agent", "livekit_unavailable", "voicemail_left")
# B connected: the transfer's target_joined_at (B first in the consult room); for transfers stored
# before that column, the time B accepted, from the timeline (as /metrics counts it).
TARGET_CONNECTED = "transfer_target_accepted"
# Timeline entries that say something about a call without changing where it is: the board's
# "time in state" does not start again at each line transcribed or note taken.
NOT_A_CHANGE = (
    "transcript",
    "note_added",
    "summary_ready",
    "sms_sent",
    "listen_in",
    "livekit_reconciled",
    "provider_error",
    "participant_removed",
    "web_context_verified",
    "web_context_ignored",
    "web_token_issued",
    "call_data_purged",
    "agent_status",
)
# How far back a caller still waiting in the last hour may have come: beyond any team's maximum
# wait (at most 2 h); live entries older than that are read on their own.
WAIT_LOOKBACK = timedelta(hours=3)


def day_start(now: datetime, timezone: str = "UTC") -> datetime:
    """The start of the board's day: midnight in ``timezone`` (BOARD_TIMEZONE), as naive UTC like
    every stored time."""
    local = now.replace(tzinfo=UTC).astimezone(ZoneInfo(timezone))
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight.astimezone(UTC).replace(tzinfo=None)


def iso(dt: datetime | None) -> str | None:
    return dt.isoformat(timespec="seconds") + "Z" if dt else None


def _channel(call: Call) -> str:
    return call.channel or "phone"


def caller_label(call: Call) -> str:
    """Who calls, as the board and the export show it: a phone number's last four digits; a web
    caller is not named (a wall screen is not the place for a customer's name); a withheld number
    says so."""
    return "web caller" if _channel(call) == "web" else mask_caller(call.from_number)


def _turned_away(call: Call, voicemail: set[str]) -> bool:
    """Sent to voicemail, or (a web call, which has none) turned away with nobody signed in."""
    return call.id in voicemail or (call.connected_at is None and call.end_reason == "nobody staffed")


class Board:
    # Every open board asks for the day's figures once a second: one read of today's rows serves
    # them all for this long (per process).
    figures_max_age_s = 3.0

    def __init__(self, store: Store, service_level_s: float = B.DEFAULT_SERVICE_LEVEL_S, timezone: str = "UTC"):
        self.store, self.service_level_s, self.timezone = store, service_level_s, timezone
        self._lock = threading.Lock()
        self._recent: tuple[float, dict[str, Any]] | None = None

    def recent_figures(self) -> dict[str, Any]:
        """The day's figures, read again at most every ``figures_max_age_s`` (the event streams)."""
        with self._lock:
            if self._recent is not None and time.monotonic() - self._recent[0] < self.figures_max_age_s:
                return self._recent[1]
        figures = self.figures()
        with self._lock:
            self._recent = (time.monotonic(), figures)
        return figures

    # ------------------------------------------------------------ the day
    def _today(self, s: Session, since: datetime) -> tuple[list[Any], list[Any], set[str], dict[str, datetime]]:
        """Today's calls and transfers (the columns the figures and the export use, as rows: open
        boards read them every few seconds, and building an ORM object per row of the day took
        most of that time), the calls sent to voicemail, and when each transfer's B connected."""
        calls = list(s.execute(select(*DAY_CALL).where(Call.created_at >= since).order_by(Call.created_at)).all())
        transfers = list(
            s.execute(select(*DAY_TRANSFER).where(Transfer.created_at >= since).order_by(Transfer.created_at)).all()
        )
        voicemail = set(
            s.execute(
                select(TimelineEntry.call_id).where(TimelineEntry.kind.in_(VOICEMAIL_KINDS), TimelineEntry.at >= since)
            ).scalars()
        )
        connected: dict[str, datetime] = {}
        for transfer_id, at in s.execute(
            select(TimelineEntry.transfer_id, TimelineEntry.at)
            .where(TimelineEntry.kind == TARGET_CONNECTED, TimelineEntry.at >= since)
            .order_by(TimelineEntry.id)
        ).all():
            if transfer_id:
                connected.setdefault(transfer_id, at)
        return calls, transfers, voicemail, connected

    def figures(self, now: datetime | None = None) -> dict[str, Any]:
        now = now or utcnow()
        since = day_start(now, self.timezone)

        def work(s: Session) -> dict[str, Any]:
            calls, transfers, voicemail, connected = self._today(s, since)
            team_of = _teams_of_calls(s, calls, transfers)
            return B.day_figures(
                [_call_row(c, team_of[c.id], voicemail) for c in calls],
                [_transfer_row(t, team_of.get(t.call_id, Q.DEFAULT_TEAM), connected) for t in transfers],
                _waits(s, now),
                day_start=since,
                now=now,
                service_level_s=self.service_level_s,
                teams=list(s.execute(select(Team.id)).scalars()),
            )

        figures: dict[str, Any] = _jsonable(self.store.read(work))
        figures["timezone"] = self.timezone
        return figures

    def local_date(self, now: datetime | None = None) -> str:
        """Today's date where the board's day is counted (the export's file name)."""
        return (now or utcnow()).replace(tzinfo=UTC).astimezone(ZoneInfo(self.timezone)).date().isoformat()

    # ------------------------------------------------------------ live
    def live(self, now: datetime | None = None) -> dict[str, Any]:
        """What is happening now: teams (waiting, agents by state), calls and transfers in progress."""
        now = now or utcnow()

        # Columns, not ORM objects: every process with a board open reads this once a second.
        def work(s: Session) -> dict[str, Any]:
            teams = {t.id: t.name for t in s.execute(select(Team.id, Team.name))}
            agents, agent_rows = _agent_rows(s)
            waiting = s.execute(
                select(QueueEntry.team_id, QueueEntry.kind, QueueEntry.enqueued_at).where(QueueEntry.state.in_(Q.LIVE))
            ).all()
            calls: list[Any] = list(s.execute(select(*LIVE_CALL).where(Call.state.in_(C.LIVE_STATES))))
            last_change, ringing = _changes_and_ringing(s)
            active: dict[str, Any] = {
                t.call_id: t
                for t in s.execute(
                    select(*LIVE_TRANSFER).where(Transfer.active_call_id.isnot(None), Transfer.state.in_(T.ACTIVE))
                )
            }
            names = {a.id: a.name for a in agents}
            live_calls = [
                _live_call(
                    c,
                    names,
                    now,
                    ringing=c.id in ringing,
                    in_transfer=c.id in active,
                    since=last_change.get(c.id, c.created_at),
                )
                for c in sorted(calls, key=lambda c: c.created_at)
            ]
            transfers = [_live_transfer(t, names, now) for t in sorted(active.values(), key=lambda t: t.created_at)]
            team_rows = B.team_board(teams, waiting, agent_rows, now)
            return {
                "at": iso(now),
                "teams": [{"id": tid, "name": teams.get(tid, tid)} | row for tid, row in sorted(team_rows.items())],
                "calls": live_calls,
                "transfers": transfers,
            }

        return self.store.read(work)

    # ------------------------------------------------------------ export
    def export_csv(self, now: datetime | None = None) -> str:
        """Today's calls and transfers, one row each (what a supervisor pastes into a spreadsheet).
        Caller numbers are masked, as everywhere outside the call itself."""
        now = now or utcnow()
        since = day_start(now, self.timezone)

        def work(s: Session) -> str:
            calls, transfers, voicemail, connected = self._today(s, since)
            out = io.StringIO()
            writer = csv.writer(out, lineterminator="\r\n")
            writer.writerow(EXPORT_COLUMNS)
            writer.writerows(_call_record(c, voicemail) for c in calls)
            team_of = {c.id: c.team_id or Q.DEFAULT_TEAM for c in calls}
            writer.writerows(_transfer_record(t, team_of.get(t.call_id, ""), connected) for t in transfers)
            return out.getvalue()

        return self.store.read(work)


# ------------------------------------------------------------ the day's rows
def _teams_of_calls(s: Session, calls: list[Call], transfers: list[Transfer]) -> dict[str, str]:
    team_of = {c.id: c.team_id or Q.DEFAULT_TEAM for c in calls}
    # A transfer started today of a call that arrived yesterday: its team is read on its own.
    missing = {t.call_id for t in transfers} - set(team_of)
    if missing:
        team_of |= {
            cid: team or Q.DEFAULT_TEAM
            for cid, team in s.execute(select(Call.id, Call.team_id).where(Call.id.in_(missing))).all()
        }
    return team_of


def _waits(s: Session, now: datetime) -> list[B.WaitRow]:
    """Queue entries of the waiting window, and the callers still waiting who came before it."""
    oldest = now - timedelta(seconds=B.WAITING_WINDOW_S) - WAIT_LOOKBACK
    waits = [
        B.WaitRow(team, enqueued, ended)
        for team, enqueued, ended in s.execute(
            select(QueueEntry.team_id, QueueEntry.enqueued_at, QueueEntry.ended_at).where(
                QueueEntry.enqueued_at >= oldest, QueueEntry.kind != "callback"
            )
        ).all()
    ]
    waits += [
        B.WaitRow(team, enqueued, None)
        for team, enqueued in s.execute(
            select(QueueEntry.team_id, QueueEntry.enqueued_at).where(
                QueueEntry.state.in_(Q.LIVE),
                QueueEntry.enqueued_at < oldest,
                QueueEntry.kind != "callback",
            )
        ).all()
    ]
    return waits


def _call_row(c: Call, team: str, voicemail: set[str]) -> B.CallRow:
    return B.CallRow(
        c.id,
        team,
        c.created_at,
        c.connected_at,
        c.ended_at,
        voicemail=_turned_away(c, voicemail),
        channel=_channel(c),
    )


def _transfer_row(t: Transfer, team: str, connected: dict[str, datetime]) -> B.TransferRow:
    return B.TransferRow(t.id, team, t.state, t.created_at, t.target_joined_at or connected.get(t.id))


# ------------------------------------------------------------ the columns read
# Rows, not ORM objects, of what the figures, the export and the live board read: open boards read
# them every second or few, and building an object per row took most of that time.
DAY_CALL = (
    Call.id,
    Call.team_id,
    Call.channel,
    Call.from_number,
    Call.agent_id,
    Call.created_at,
    Call.connected_at,
    Call.ended_at,
    Call.end_reason,
)
LIVE_CALL = (Call.id, Call.team_id, Call.channel, Call.from_number, Call.agent_id, Call.state, Call.created_at)
LIVE_TRANSFER = (
    Transfer.id,
    Transfer.call_id,
    Transfer.state,
    Transfer.mode,
    Transfer.source_agent_id,
    Transfer.target_agent_id,
    Transfer.target_number,
    Transfer.created_at,
)
# The day's figures need, beyond the live board's columns, how each transfer ended.
DAY_TRANSFER = (*LIVE_TRANSFER, Transfer.target_joined_at, Transfer.ended_at, Transfer.end_reason)


# ------------------------------------------------------------ the live rows
def _agent_rows(s: Session) -> tuple[list[Any], list[B.AgentRow]]:
    """Every agent (id, name, status, not_responding, role), and each one's state on the board:
    status, teams, on a call or not."""
    agents = list(
        s.execute(select(Agent.id, Agent.name, Agent.status, Agent.not_responding, Agent.role).order_by(Agent.id))
    )
    memberships: dict[str, list[str]] = {}
    for agent_id, team_id in s.execute(select(AgentTeam.agent_id, AgentTeam.team_id)).all():
        memberships.setdefault(agent_id, []).append(team_id)
    busy_agents = set(
        s.execute(select(Leg.agent_id).where(Leg.state.in_(LIVE_LEG_STATES), Leg.agent_id.isnot(None))).scalars().all()
    )
    rows = [
        B.AgentRow(
            a.id,
            a.status,
            tuple(memberships.get(a.id, ())),
            on_call=a.id in busy_agents,
            not_responding=a.status == "offline" and a.not_responding is not None,
            role=a.role or "agent",
        )
        for a in agents
    ]
    return agents, rows


def _changes_and_ringing(s: Session) -> tuple[dict[str, datetime], set[str]]:
    """When each live call last changed where it is, and which of them ring an agent now. The live
    calls are a subquery, not a list of their ids: with hundreds of callers waiting, a statement
    with one parameter per call took more of the process's time to build than the database took
    to answer it."""
    live = select(Call.id).where(Call.state.in_(C.LIVE_STATES))
    last_change = dict(
        s.execute(
            select(TimelineEntry.call_id, func.max(TimelineEntry.at))
            .where(TimelineEntry.call_id.in_(live), TimelineEntry.kind.notin_(NOT_A_CHANGE))
            .group_by(TimelineEntry.call_id)
        ).all()
    )
    ringing = set(s.execute(select(Leg.call_id).where(Leg.call_id.in_(live), Leg.state == L.RINGING)).scalars())
    return last_change, ringing


def _live_call(
    c: Call, names: dict[str, str], now: datetime, *, ringing: bool, in_transfer: bool, since: datetime
) -> dict[str, Any]:
    row = B.LiveCall(
        c.id,
        c.team_id or Q.DEFAULT_TEAM,
        caller_label(c),
        c.agent_id,
        c.state,
        ringing=ringing,
        in_transfer=in_transfer,
        since=since,
        channel=_channel(c),
    )
    return {
        "id": c.id,
        "caller": row.caller,
        "team": row.team,
        "channel": row.channel,
        "agent_id": c.agent_id,
        "agent": names.get(c.agent_id or "", c.agent_id),
        "state": B.board_state(row),
        "in_state_s": round(max(0.0, (now - row.since).total_seconds()), 1),
        "waited_s": round(max(0.0, (now - c.created_at).total_seconds()), 1),
    }


def _live_transfer(t: Transfer, names: dict[str, str], now: datetime) -> dict[str, Any]:
    return {
        "id": t.id,
        "call_id": t.call_id,
        "state": t.state,
        "mode": t.mode,
        "from_agent": names.get(t.source_agent_id, t.source_agent_id),
        "to": names.get(t.target_agent_id or "", t.target_agent_id) or mask_phone(t.target_number),
        "elapsed_s": round(max(0.0, (now - t.created_at).total_seconds()), 1),
    }


# ------------------------------------------------------------ the export's records
def _call_record(c: Call, voicemail: set[str]) -> list[str | None]:
    row = B.CallRow(
        c.id,
        c.team_id or Q.DEFAULT_TEAM,
        c.created_at,
        c.connected_at,
        c.ended_at,
        _turned_away(c, voicemail),
    )
    wait = (c.connected_at - c.created_at).total_seconds() if c.connected_at else None
    handle = (c.ended_at - c.connected_at).total_seconds() if c.connected_at and c.ended_at else None
    return [
        "call",
        c.id,
        "",
        row.team,
        _channel(c),
        caller_label(c),
        c.agent_id or "",
        iso(c.created_at),
        iso(c.connected_at) or "",
        iso(c.ended_at) or "",
        B.outcome(row),
        _num(wait),
        _num(handle),
        c.end_reason or "",
    ]


def _transfer_record(t: Transfer, team: str, connected: dict[str, datetime]) -> list[str | None]:
    b_at = t.target_joined_at or connected.get(t.id)
    return [
        "transfer",
        t.id,
        t.call_id,
        team,
        t.mode,
        mask_phone(t.target_number) if t.target_number else t.target_agent_id or "",
        t.source_agent_id,
        iso(t.created_at),
        iso(b_at) or "",
        iso(t.ended_at) or "",
        t.state if t.state in B.TRANSFER_OUTCOMES else "in_progress",
        _num((b_at - t.created_at).total_seconds() if b_at else None),
        "",
        t.end_reason or "",
    ]


EXPORT_COLUMNS = (
    "record",  # call | transfer
    "id",
    "call_id",  # a transfer's call
    "team",
    "channel",  # a call's channel (phone, web); a transfer's mode (warm, cold)
    "caller_or_target",  # masked caller number; a transfer's target agent or masked number
    "agent",  # the call's agent; the transferring agent
    "started_at",
    "connected_at",  # the agent connected; B connected
    "ended_at",
    "outcome",  # answered, abandoned, voicemail, in_progress; a transfer's outcome
    "wait_s",  # arrival to answer; initiate to B connected
    "handle_s",
    "end_reason",
)


def _num(value: float | None) -> str:
    return "" if value is None else f"{max(0.0, value):.1f}"


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def flatten(figures: dict[str, Any]) -> Iterable[tuple[str, str, float]]:
    """(scope, name, value) of every number in the day's figures: /metrics' gauges."""
    scopes = [("overall", figures["overall"])] + [(t, f) for t, f in figures["teams"].items()]
    for scope, f in scopes:
        for name in ("offered", "answered", "abandoned", "voicemail", "answered_within_threshold"):
            yield scope, name, float(f[name])
        for name in ("service_level", "average_wait_s", "average_handle_s"):
            if f[name] is not None:
                yield scope, name, float(f[name])
