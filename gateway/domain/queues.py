"""Teams and their queues: who waits, in what order, who is offered next, and what callers hear.

A team is a queue. A caller the team cannot serve at once gets a *queue entry*; entries are
served first come, first served within a priority (a transfer or a callback may jump ahead of
plain arrivals, never behind them), and the longest-idle available member gets the offer. An
offer that is missed or declined puts the entry back exactly where it was: it keeps its arrival
time, so it is at the head again, ahead of everyone who came after it.

Plain Python: the store keeps entries durably and picks heads with SQL in this same order
(``PLACE_ORDER``); these functions are the rule, and what the property tests check.

waiting  — in line, hearing the hold loop (or, for a callback, off the line keeping its place)
offered  — one agent is being offered this caller right now (console and/or phone)
terminal — answered (bridged to an agent), abandoned (hung up while queued), timed_out (max
           wait reached), left (the caller chose voicemail or a callback, or nobody is staffed),
           missed (a callback the caller never answered)
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from gateway.domain.machine import StateMachine

DEFAULT_TEAM = "default"
TEAM_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
E164 = re.compile(r"^\+[1-9]\d{6,14}$")

WAITING, OFFERED = "waiting", "offered"
ANSWERED, ABANDONED, TIMED_OUT, LEFT, MISSED = "answered", "abandoned", "timed_out", "left", "missed"
LIVE = (WAITING, OFFERED)
TERMINAL = (ANSWERED, ABANDONED, TIMED_OUT, LEFT, MISSED)

# Priorities: higher is served first; equal priorities in arrival order.
PRIORITY_CALLER, PRIORITY_CALLBACK, PRIORITY_TRANSFER = 0, 5, 10

ENTRY = StateMachine(
    "queue_entry",
    {
        (WAITING, "offer"): OFFERED,
        (OFFERED, "offer_failed"): WAITING,  # missed or declined: back to the head, same place
        (OFFERED, "answered"): ANSWERED,
        (WAITING, "hangup"): ABANDONED,
        (OFFERED, "hangup"): ABANDONED,
        (WAITING, "timeout"): TIMED_OUT,
        (WAITING, "leave"): LEFT,
        (OFFERED, "leave"): LEFT,
        (OFFERED, "callback_missed"): MISSED,
    },
    terminal=TERMINAL,
)

# How many finished calls of a team an estimate needs; with fewer we say nothing rather than guess.
MIN_HISTORY = 3


class InvalidTeam(ValueError):
    pass


@dataclass(frozen=True)
class TeamView:
    id: str
    name: str
    hold_music_url: str | None = None
    max_wait_s: float | None = None


@dataclass(frozen=True)
class Entry:
    """What the order rule needs to know about a queue entry."""

    id: str
    team_id: str
    state: str
    enqueued_at: datetime
    priority: int = PRIORITY_CALLER


def validate_team(team_id: str, name: str, hold_music_url: str | None = None, max_wait_s: object = None) -> None:
    # max_wait_s is whatever the request's JSON held: checked here to be a number of seconds.
    if not TEAM_ID.match(team_id or ""):
        raise InvalidTeam(f"team id {team_id!r} must be 1-40 lowercase letters, digits, '-' or '_'")
    if not (name or "").strip():
        raise InvalidTeam("team name must not be empty")
    if hold_music_url is not None and not re.match(r"^https?://\S+$", hold_music_url):
        raise InvalidTeam(f"hold music {hold_music_url!r} must be an http(s) URL")
    if max_wait_s is not None and (
        isinstance(max_wait_s, bool) or not isinstance(max_wait_s, (int, float)) or not 10 <= max_wait_s <= 7200
    ):
        raise InvalidTeam("max wait must be a number of seconds from 10 to 7200")


def validate_number(number: str) -> None:
    if not E164.match(number or ""):
        raise InvalidTeam(f"number {number!r} is not an E.164 number (like +15551234567)")


def validate_team_list(teams: Sequence[object]) -> list[str]:
    """An agent's teams: at least one, each a valid id, no repeats (order kept). The items come from
    JSON or the command line, so each is checked to be a string."""
    if isinstance(teams, str) or not teams:
        raise InvalidTeam("an agent belongs to at least one team")
    seen: list[str] = []
    for team in teams:
        if not isinstance(team, str) or not TEAM_ID.match(team):
            raise InvalidTeam(f"team id {team!r} must be 1-40 lowercase letters, digits, '-' or '_'")
        if team not in seen:
            seen.append(team)
    return seen


def place_key(entry: Entry) -> tuple[int, datetime, str]:
    """Where an entry stands: higher priority first, then arrival, then id (a stable tie-break).

    The store sorts with the same columns (``PLACE_ORDER``)."""
    return (-entry.priority, entry.enqueued_at, entry.id)


PLACE_ORDER = ("priority desc", "enqueued_at asc", "id asc")


def next_for(entries: Iterable[Entry], teams: Iterable[str]) -> Entry | None:
    """The entry an agent of ``teams`` is offered next: the head among those teams' waiting entries."""
    teams = set(teams)
    waiting = [e for e in entries if e.state == WAITING and e.team_id in teams]
    return min(waiting, key=place_key) if waiting else None


def position(entry: Entry, entries: Iterable[Entry]) -> int:
    """1-based place in the team's line (entries being offered still count: they are ahead)."""
    mine = place_key(entry)
    return 1 + sum(
        1
        for e in entries
        if e.id != entry.id and e.team_id == entry.team_id and e.state in LIVE and place_key(e) < mine
    )


def estimate_wait_s(position: int, staffed: int, handle_times_s: Sequence[float]) -> float | None:
    """Expected seconds until this caller is answered, or None when we cannot know.

    Each staffed agent frees up about once per average handle time, so the caller at
    ``position`` waits about position / staffed handle times. No history (fewer than
    MIN_HISTORY finished calls) or nobody staffed: None, so the caller hears no number at all
    rather than a wrong one.
    """
    times = [t for t in handle_times_s if t and t > 0]
    if staffed <= 0 or position <= 0 or len(times) < MIN_HISTORY:
        return None
    return sum(times) / len(times) * position / staffed


def queue_announcement(position: int, estimate_s: float | None) -> str:
    """What a waiting caller hears about their place: position, then the estimate if there is one."""
    place = "You are next in line." if position <= 1 else f"You are number {position} in line."
    if estimate_s is None:
        return place
    if estimate_s < 60:
        return f"{place} Your wait should be less than a minute."
    minutes = max(1, math.ceil(estimate_s / 60))
    return f"{place} The estimated wait is about {minutes} minute{'s' if minutes != 1 else ''}."


def greeting(team_name: str | None) -> str:
    """The first words a caller who has to wait hears."""
    who = f" {team_name}" if team_name and team_name.lower() != "default" else ""
    return (
        f"Thank you for calling{who}. All of our agents are helping other callers right now. "
        "Please stay on the line and the next available agent will be with you."
    )


# ---------------------------------------------------------------- the menu
# A number that goes to several teams asks the caller which one: a key (1 for the first team, 2
# for the second, ...) or the team's name said aloud. Nothing chosen: asked once more, then the
# first team (a caller is never dropped for not choosing).
MENU_ATTEMPTS = 2
_SPOKEN_DIGITS = {"one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7"}


def menu_prompt(teams: Sequence[TeamView]) -> str:
    """What a caller hears at a number with a menu: each team's key and name, in order."""
    parts = [f"For {t.name}, press {n} or say {t.name}." for n, t in enumerate(teams, start=1)]
    return "Thank you for calling. " + " ".join(parts)


def menu_hints(teams: Sequence[TeamView]) -> str:
    """Speech hints: the teams' names (and ids) help the recogniser with words it would miss."""
    return ", ".join(dict.fromkeys([t.name for t in teams] + [t.id for t in teams]))


def menu_choice(teams: Sequence[TeamView], digits: str, speech: str) -> str | None:
    """The team a key (1..n) or words ("billing, please", "two") pick; None if they pick none."""
    key = (digits or "").strip()[:1]
    if not key:
        words = re.findall(r"[a-z0-9]+", (speech or "").lower())
        for team in teams:
            name = re.findall(r"[a-z0-9]+", team.name.lower())
            if name and any(words[i : i + len(name)] == name for i in range(len(words))):
                return team.id
            if team.id in words:
                return team.id
        key = next((_SPOKEN_DIGITS.get(w, w) for w in words if _SPOKEN_DIGITS.get(w, w).isdigit()), "")
    if key.isdigit() and 1 <= int(key) <= len(teams):
        return teams[int(key) - 1].id
    return None


# ------------------------------------------------------- choices while waiting
# A key or words during the hold loop: 1 / "voicemail" leaves a message; 2 / "call me back" asks
# for a callback that keeps the caller's place (they hang up; when their turn comes, the agent is
# offered the callback first, then we dial them). An unanswered callback is tried once more after
# CALLBACK_RETRY_S, then recorded as missed.
VOICEMAIL, CALLBACK = "voicemail", "callback"
CALLBACK_ATTEMPTS = 2
VOICEMAIL_CHOICE = "To leave a message instead, press 1 or say voicemail at any time."
CALLBACK_CHOICE = "To be called back instead, keeping your place in line, press 2 or say call me back."
CALLBACK_CONFIRMED = (
    "Of course. We will call you back at this number when it is your turn, and you keep your place "
    "in line. You can hang up now. Goodbye."
)
# A caller whose number is withheld is never offered the callback; asking anyway keeps them in line.
CALLBACK_WITHHELD = "We can't call you back because your number is withheld; please stay on the line."
CALLBACK_AGENT_GONE = (
    "We're sorry, the agent who was to take your call is no longer free. You keep your place in line, "
    "and we will call you back shortly. Goodbye."
)


def waiting_choice(digits: str, speech: str) -> str | None:
    """What a waiting caller asked for: VOICEMAIL, CALLBACK, or None (keep waiting)."""
    words = (speech or "").lower()
    if digits == "1" or any(w in words for w in ("voicemail", "message")):
        return VOICEMAIL
    if digits == "2" or any(w in words for w in ("call me back", "callback", "call back")):
        return CALLBACK
    return None


def callback_greeting(team_name: str | None) -> str:
    """What a caller we call back hears on answering, before the agent."""
    who = f" from {team_name}" if team_name and team_name.lower() != "default" else ""
    return f"Hello, this is the call back you asked for{who}. Connecting you to an agent now."


NOBODY_STAFFED = "We're sorry, there is no one available to take your call at the moment."
QUEUE_TIMED_OUT = "We're sorry, all of our agents are still busy."
