"""Agents and the routing rule: available agents, longest idle first."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

AVAILABLE, BUSY, OFFLINE = "available", "busy", "offline"
STATUSES = (AVAILABLE, BUSY, OFFLINE)
AGENT_ROLE, SUPERVISOR_ROLE = "agent", "supervisor"
ROLES = (AGENT_ROLE, SUPERVISOR_ROLE)
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
AGENT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


class InvalidAgent(ValueError):
    pass


@dataclass(frozen=True)
class AgentView:
    id: str
    name: str
    phone: str | None
    browser: bool
    status: str
    idle_since: datetime | None

    @property
    def reachable(self) -> bool:
        return bool(self.phone) or self.browser


def validate_agent(agent_id: str, name: str, phone: str | None, browser: bool) -> None:
    if not AGENT_ID.match(agent_id or ""):
        raise InvalidAgent(f"agent id {agent_id!r} must be 1-40 lowercase letters, digits, '-' or '_'")
    if not (name or "").strip():
        raise InvalidAgent("agent name must not be empty")
    if phone is not None and not E164.match(phone):
        raise InvalidAgent(f"phone {phone!r} is not an E.164 number (like +15551234567)")
    if not phone and not browser:
        raise InvalidAgent("an agent needs a phone number, the browser console, or both")


def validate_status(status: str) -> None:
    if status not in STATUSES:
        raise InvalidAgent(f"status must be one of {', '.join(STATUSES)}, got {status!r}")


def validate_role(role: str) -> None:
    if role not in ROLES:
        raise InvalidAgent(f"role must be one of {', '.join(ROLES)}, got {role!r}")


def pick_agent(agents: Iterable[AgentView], exclude: Sequence[str] = ()) -> AgentView | None:
    """Longest idle available agent; never-used agents count as idle the longest."""
    candidates = [a for a in agents if a.status == AVAILABLE and a.reachable and a.id not in exclude]
    if not candidates:
        return None
    return min(candidates, key=lambda a: (a.idle_since is not None, a.idle_since or datetime.min, a.id))


def mask_phone(number: str | None) -> str:
    """Only the last four digits leave for logs."""
    if not number:
        return ""
    return "…" + number[-4:]
