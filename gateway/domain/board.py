"""The supervisor's board: the day's figures and the live picture, from plain rows.

No I/O: the store loads today's rows (services/board.py) and these functions count them, so
every definition below is tested from a fixed set of calls (tests/unit/test_board_figures.py).

Definitions (the README repeats them):

- offered: every inbound call that arrived since the start of the day (midnight in BOARD_TIMEZONE,
  UTC by default).
- answered: an agent was connected with the caller (the call has ``connected_at``).
- voicemail: never answered, and the gateway sent the caller to the apology and voicemail
  (nobody signed in, the team's maximum wait, the caller's own choice, or a failure).
- abandoned: the caller hung up before anyone answered and before any voicemail prompt.
- in progress: neither yet (ringing or waiting in line now).
- wait: from arrival to the agent connected (answered calls only); handle time: from connected
  to the call's end (answered calls that have ended; no wrap-up).
- service level: answered within the threshold (``SERVICE_LEVEL_S``, 20 s by default) as a share
  of the calls whose wait is over (answered, abandoned or sent to voicemail); null with none.
- transfers by outcome: the transfers initiated today, by their final state (completed, declined,
  no_answer, cancelled, abandoned, failed) or in_progress; median time from initiate to B connected
  (B first in the consult room).
- intervals: answered and abandoned per 15 minutes of arrival; waiting: callers in a team's line
  at each minute of the last hour.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from gateway.domain import transfers as T

ANSWERED, ABANDONED, VOICEMAIL, IN_PROGRESS = "answered", "abandoned", "voicemail", "in_progress"
TRANSFER_OUTCOMES = (T.COMPLETED, T.DECLINED, T.NO_ANSWER, T.CANCELLED, T.ABANDONED, T.FAILED)
INTERVAL_S = 15 * 60
WAITING_WINDOW_S = 3600
WAITING_STEP_S = 60
DEFAULT_SERVICE_LEVEL_S = 20.0

# What the board shows for a live call (the call's state, refined by its legs and transfer).
QUEUED, RINGING, TALKING, ON_HOLD, IN_TRANSFER, IN_VOICEMAIL = (
    "queued",
    "ringing",
    "talking",
    "on hold",
    "in transfer",
    "voicemail",
)


@dataclass(frozen=True)
class CallRow:
    id: str
    team: str
    created_at: datetime
    connected_at: datetime | None
    ended_at: datetime | None
    voicemail: bool = False  # sent to the apology / voicemail at some point
    channel: str = "phone"


@dataclass(frozen=True)
class TransferRow:
    id: str
    team: str
    state: str
    created_at: datetime
    target_connected_at: datetime | None = None


@dataclass(frozen=True)
class WaitRow:
    """A caller's time in a team's line (ended_at None: still waiting)."""

    team: str
    enqueued_at: datetime
    ended_at: datetime | None


def outcome(call: CallRow) -> str:
    if call.connected_at is not None:
        return ANSWERED
    if call.voicemail:
        return VOICEMAIL
    if call.ended_at is not None:
        return ABANDONED
    return IN_PROGRESS


def _seconds(later: datetime, earlier: datetime) -> float:
    return max(0.0, (later - earlier).total_seconds())


def _mean(values: Sequence[float]) -> float | None:
    return round(statistics.fmean(values), 1) if values else None


def call_figures(calls: Iterable[CallRow], service_level_s: float) -> dict[str, Any]:
    calls = list(calls)
    counts = {ANSWERED: 0, ABANDONED: 0, VOICEMAIL: 0, IN_PROGRESS: 0}
    waits: list[float] = []
    handles: list[float] = []
    for call in calls:
        counts[outcome(call)] += 1
        if call.connected_at is not None:
            waits.append(_seconds(call.connected_at, call.created_at))
            if call.ended_at is not None:
                handles.append(_seconds(call.ended_at, call.connected_at))
    within = sum(1 for w in waits if w <= service_level_s)
    finished_waiting = counts[ANSWERED] + counts[ABANDONED] + counts[VOICEMAIL]
    return {
        "offered": len(calls),
        "answered": counts[ANSWERED],
        "abandoned": counts[ABANDONED],
        "voicemail": counts[VOICEMAIL],
        "in_progress": counts[IN_PROGRESS],
        "answered_within_threshold": within,
        "service_level": round(within / finished_waiting, 4) if finished_waiting else None,
        "average_wait_s": _mean(waits),
        "average_handle_s": _mean(handles),
    }


def transfer_figures(transfers: Iterable[TransferRow]) -> dict[str, Any]:
    by_outcome = dict.fromkeys(TRANSFER_OUTCOMES, 0) | {"in_progress": 0}
    connects: list[float] = []
    total = 0
    for t in transfers:
        total += 1
        by_outcome[t.state if t.state in TRANSFER_OUTCOMES else "in_progress"] += 1
        if t.target_connected_at is not None:
            connects.append(_seconds(t.target_connected_at, t.created_at))
    return {
        "total": total,
        "by_outcome": by_outcome,
        "median_initiate_to_connected_s": round(statistics.median(connects), 1) if connects else None,
    }


def _group(rows: Iterable[Any], key: str) -> dict[str, list[Any]]:
    groups: dict[str, list[Any]] = {}
    for row in rows:
        groups.setdefault(getattr(row, key), []).append(row)
    return groups


def intervals(calls: Iterable[CallRow], day_start: datetime, now: datetime) -> list[dict[str, Any]]:
    """Answered and abandoned calls per 15 minutes of arrival, from the start of the day to now."""
    count = int(_seconds(now, day_start) // INTERVAL_S) + 1
    slots: list[dict[str, Any]] = [
        {"start": day_start + timedelta(seconds=i * INTERVAL_S), ANSWERED: 0, ABANDONED: 0} for i in range(count)
    ]
    for call in calls:
        kind = outcome(call)
        if kind not in (ANSWERED, ABANDONED) or call.created_at < day_start:
            continue
        index = int(_seconds(call.created_at, day_start) // INTERVAL_S)
        if index < count:
            slots[index][kind] += 1
    return slots


def waiting_over_time(waits: Iterable[WaitRow], now: datetime) -> list[dict[str, Any]]:
    """Callers waiting in line at each minute of the last hour (all teams)."""
    waits = list(waits)
    points = []
    for i in range(WAITING_WINDOW_S // WAITING_STEP_S, -1, -1):
        at = now - timedelta(seconds=i * WAITING_STEP_S)
        waiting = sum(1 for w in waits if w.enqueued_at <= at and (w.ended_at is None or w.ended_at > at))
        points.append({"at": at, "waiting": waiting})
    return points


def day_figures(
    calls: Iterable[CallRow],
    transfers: Iterable[TransferRow],
    waits: Iterable[WaitRow],
    *,
    day_start: datetime,
    now: datetime,
    service_level_s: float = DEFAULT_SERVICE_LEVEL_S,
    teams: Iterable[str] = (),
) -> dict[str, Any]:
    """Every figure of the day, overall, per team (every team in ``teams`` appears, if only with
    zeros) and per channel, with the two chart series."""
    calls, transfers, waits = list(calls), list(transfers), list(waits)
    calls_by_team, transfers_by_team = _group(calls, "team"), _group(transfers, "team")
    team_ids = sorted(set(teams) | set(calls_by_team) | set(transfers_by_team))

    def figures(team_calls: list[CallRow], team_transfers: list[TransferRow]) -> dict[str, Any]:
        return call_figures(team_calls, service_level_s) | {"transfers": transfer_figures(team_transfers)}

    return {
        "day_start": day_start,
        "now": now,
        "service_level_threshold_s": service_level_s,
        "overall": figures(calls, transfers),
        "teams": {t: figures(calls_by_team.get(t, []), transfers_by_team.get(t, [])) for t in team_ids},
        "channels": {
            channel: call_figures(rows, service_level_s) for channel, rows in sorted(_group(calls, "channel").items())
        },
        "intervals": intervals(calls, day_start, now),
        "waiting": waiting_over_time(waits, now),
    }


# ------------------------------------------------------------------ live picture
@dataclass(frozen=True)
class LiveCall:
    id: str
    team: str
    caller: str  # masked
    agent: str | None
    call_state: str
    ringing: bool  # an agent's leg is ringing for it
    in_transfer: bool
    since: datetime  # the last change (its newest timeline entry)
    channel: str = "phone"


def board_state(call: LiveCall) -> str:
    if call.in_transfer:
        return IN_TRANSFER
    return {
        "queued": QUEUED,
        "connected": TALKING,
        "on_hold": ON_HOLD,
        "voicemail": IN_VOICEMAIL,
    }.get(call.call_state, RINGING)


@dataclass(frozen=True)
class AgentRow:
    id: str
    status: str  # available | busy | offline
    teams: tuple[str, ...]
    on_call: bool  # has a live leg
    not_responding: bool  # set offline by a missed (or, for a waiting caller, declined) offer
    role: str = "agent"


def agent_state(agent: AgentRow) -> str:
    if agent.on_call or agent.status == "busy":
        return "on_call"
    if agent.status == "available":
        return "available"
    return "not_responding" if agent.not_responding else "offline"


def team_board(
    team_ids: Iterable[str],
    waiting: Iterable[tuple[str, str, datetime]],
    agents: Iterable[AgentRow],
    now: datetime,
) -> dict[str, dict[str, Any]]:
    """Per team: callers waiting and the longest wait, callbacks pending, and its members by state.
    ``waiting``: (team, entry kind, enqueued_at) of the live queue entries."""
    board: dict[str, dict[str, Any]] = {
        team: {
            "waiting": 0,
            "longest_wait_s": 0.0,
            "callbacks_pending": 0,
            "agents": {"available": 0, "on_call": 0, "not_responding": 0, "offline": 0},
        }
        for team in team_ids
    }
    empty: dict[str, Any] = {"waiting": 0, "longest_wait_s": 0.0, "callbacks_pending": 0}
    for team, kind, enqueued_at in waiting:
        row = board.setdefault(
            team, empty | {"agents": {"available": 0, "on_call": 0, "not_responding": 0, "offline": 0}}
        )
        if kind == "callback":
            row["callbacks_pending"] += 1
            continue
        row["waiting"] += 1
        row["longest_wait_s"] = max(row["longest_wait_s"], round(_seconds(now, enqueued_at), 1))
    for agent in agents:
        for team in agent.teams:
            if team in board:
                board[team]["agents"][agent_state(agent)] += 1
    return board
