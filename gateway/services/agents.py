"""The agent directory: add, list, remove, presence, and per-agent credentials."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select

from gateway.adapters.store import Store
from gateway.adapters.store.models import Agent, AgentSession, AgentTeam, Call, Leg, TimelineEntry, utcnow
from gateway.adapters.store.uow import Session
from gateway.domain import agents as rules
from gateway.domain import legs as L
from gateway.domain import queues as Q
from gateway.services import job_types as J
from gateway.services.teams import TeamService


def _hash(secret: str) -> str:
    # Credentials are 32 random bytes: a fast hash is enough (no dictionary to attack).
    return hashlib.sha256(secret.encode()).hexdigest()


class AgentService:
    def __init__(self, store: Store):
        self.store = store
        # Told (session, agent) in the unit of work that made an agent available: the oldest
        # caller waiting in their teams is offered to them at once (services.queues).
        self.on_available: Callable[[Session, Agent], object] | None = None

    def add(
        self,
        agent_id: str,
        name: str,
        phone: str | None,
        browser: bool,
        status: str = rules.OFFLINE,
        teams: list[str] | None = None,
        role: str = rules.AGENT_ROLE,
    ) -> str:
        """Create an agent in ``teams`` (default: the default team); returns its credential (shown once).
        ``role`` supervisor: also sees the board and may listen in (domain/access.py)."""
        rules.validate_agent(agent_id, name, phone, browser)
        rules.validate_status(status)
        rules.validate_role(role)
        teams = Q.validate_team_list(teams or [Q.DEFAULT_TEAM])
        secret = f"{agent_id}.{secrets.token_urlsafe(24)}"

        def work(session: Session) -> None:
            if session.get(Agent, agent_id) is not None:
                raise rules.InvalidAgent(f"agent {agent_id!r} already exists")
            session.add(
                Agent(
                    id=agent_id,
                    name=name.strip(),
                    phone=phone,
                    browser=browser,
                    status=status,
                    role=role,
                    secret_hash=_hash(secret),
                )
            )
            TeamService.join(session, agent_id, teams)

        self.store.run(work)
        return secret

    def reset_secret(self, agent_id: str) -> str:
        secret = f"{agent_id}.{secrets.token_urlsafe(24)}"

        def work(session: Session) -> None:
            agent = session.get(Agent, agent_id)
            if agent is None:
                raise rules.InvalidAgent(f"no agent {agent_id!r}")
            self.store.compare_and_set(session, agent, secret_hash=_hash(secret))
            end_all_sessions(session, agent_id)  # whoever held the old credential is out at once

        self.store.run(work)
        return secret

    def presence(self) -> list[tuple[str, str, str, bool, bool, bool]]:
        """Every agent's (id, name, status, browser, has a phone, not responding), by id: what every
        open console shows. Each process's stream notifier reads it twice a second, so it reads the
        columns only (no ORM objects, no teams)."""

        def work(session: Session) -> list[tuple[str, str, str, bool, bool, bool]]:
            rows = session.execute(
                select(Agent.id, Agent.name, Agent.status, Agent.browser, Agent.phone, Agent.not_responding).order_by(
                    Agent.id
                )
            )
            return [
                (i, name, status, bool(browser), bool(phone), nr is not None)
                for i, name, status, browser, phone, nr in rows
            ]

        return self.store.read(work)

    def list(self) -> list[dict[str, Any]]:
        def work(session: Session) -> list[dict[str, Any]]:
            agents = session.execute(select(Agent).order_by(Agent.id)).scalars().all()
            teams = TeamService.teams_of(session, [a.id for a in agents])
            return [as_dict(a) | {"teams": teams[a.id]} for a in agents]

        return self.store.read(work)

    def get(self, agent_id: str, *, with_teams: bool = False) -> dict[str, Any] | None:
        def work(session: Session) -> dict[str, Any] | None:
            agent = session.get(Agent, agent_id)
            if agent is None:
                return None
            return as_dict(agent) | (
                {"teams": TeamService.teams_of(session, [agent_id])[agent_id]} if with_teams else {}
            )

        return self.store.read(work)

    def remove(self, agent_id: str) -> None:
        def work(session: Session) -> None:
            agent = session.get(Agent, agent_id)
            if agent is None:
                raise rules.InvalidAgent(f"no agent {agent_id!r}")
            live = session.execute(
                select(Leg.id).where(Leg.agent_id == agent_id, Leg.state.in_((L.RINGING, L.ACCEPTED, L.JOINED)))
            ).first()
            if live:
                raise rules.InvalidAgent(f"agent {agent_id!r} is on a call; try again when it ends")
            session.execute(delete(AgentTeam).where(AgentTeam.agent_id == agent_id))
            session.delete(agent)
            end_all_sessions(session, agent_id)

        self.store.run(work)

    def set_role(self, agent_id: str, role: str) -> dict[str, Any]:
        """Make an agent a supervisor, or a supervisor an agent again. A supervisor made an agent
        stops listening at once: its listeners leave every live call's room."""
        rules.validate_role(role)

        def work(session: Session) -> dict[str, Any]:
            agent = session.get(Agent, agent_id)
            if agent is None:
                raise rules.InvalidAgent(f"no agent {agent_id!r}")
            if agent.role != role:
                self.store.compare_and_set(session, agent, role=role)
                if role == rules.AGENT_ROLE:
                    end_listening(self.store, session, agent_id)
            return as_dict(agent)

        return self.store.run(work)

    def set_status(self, agent_id: str, status: str, *, by: str = "agent") -> dict[str, Any]:
        """Presence set by the agent (or ``by`` an admin). Busy-on-a-call is kept by the gateway
        itself. A change is an ``agent_status`` entry in the agent's activity (no call's timeline)."""
        rules.validate_status(status)

        def work(session: Session) -> dict[str, Any]:
            agent = session.get(Agent, agent_id)
            if agent is None:
                raise rules.InvalidAgent(f"no agent {agent_id!r}")
            on_call = session.execute(
                select(Leg.id).where(Leg.agent_id == agent_id, Leg.state.in_((L.RINGING, L.ACCEPTED, L.JOINED)))
            ).first()
            if status == rules.AVAILABLE and on_call:
                raise rules.InvalidAgent("you are on a call; you become available when it ends")
            if agent.status != status or agent.not_responding is not None:
                # Any status the agent sets answers the "not responding" notice.
                self.store.record(
                    session,
                    NO_CALL,
                    "agent_status",
                    agent_id=agent_id,
                    status=status,
                    was="not_responding" if agent.not_responding is not None else agent.status,
                    by=by,
                )
                changes: dict[str, object] = {"status": status, "not_responding": None}
                if status == rules.AVAILABLE:
                    changes["idle_since"] = utcnow()
                self.store.compare_and_set(session, agent, **changes)
                if status == rules.AVAILABLE and self.on_available is not None:
                    self.on_available(session, agent)
            return as_dict(agent)

        return self.store.run(work)

    # --------------------------------------------------------------- sessions
    def open_session(self, agent_id: str, lifetime_s: float) -> str:
        """A new console session for the agent; returns the token the cookie carries."""
        token = secrets.token_urlsafe(32)

        def work(session: Session) -> None:
            now = utcnow()
            # The agent's expired sessions go as a new one comes: the table holds live ones only.
            session.execute(
                delete(AgentSession).where(AgentSession.agent_id == agent_id, AgentSession.expires_at < now)
            )
            session.add(
                AgentSession(
                    id=_hash(token), agent_id=agent_id, created_at=now, expires_at=now + timedelta(seconds=lifetime_s)
                )
            )

        self.store.run(work)
        return token

    def session_agent(self, token: str) -> dict[str, Any] | None:
        """The agent a live session token belongs to, or None (ended, expired, or never was)."""
        if not token:
            return None

        def work(s: Session) -> dict[str, Any] | None:
            row = s.execute(
                select(Agent)
                .join(AgentSession, AgentSession.agent_id == Agent.id)
                .where(AgentSession.id == _hash(token), AgentSession.expires_at > utcnow())
            ).scalar_one_or_none()
            return as_dict(row) if row is not None else None

        return self.store.read(work)

    def live_sessions(self, tokens: set[str]) -> set[str]:
        """Which of these session tokens are still live (one query for every open console stream)."""
        if not tokens:
            return set()
        by_hash = {_hash(t): t for t in tokens}

        def work(s: Session) -> set[str]:
            rows = s.execute(
                select(AgentSession.id).where(AgentSession.id.in_(sorted(by_hash)), AgentSession.expires_at > utcnow())
            ).scalars()
            return {by_hash[h] for h in rows}

        return self.store.read(work)

    def fingerprints(self, agent_ids: set[str]) -> dict[str, str]:
        """``fingerprint`` of several agents in one query; a removed agent is absent."""
        if not agent_ids:
            return {}

        def work(s: Session) -> dict[str, str]:
            rows = s.execute(select(Agent.id, Agent.secret_hash).where(Agent.id.in_(sorted(agent_ids))))
            return {row.id: row.secret_hash[:16] for row in rows}

        return self.store.read(work)

    def end_session(self, token: str) -> None:
        self.store.run(lambda s: s.execute(delete(AgentSession).where(AgentSession.id == _hash(token))))

    def end_sessions(self, agent_id: str) -> None:
        self.store.run(lambda s: end_all_sessions(s, agent_id))

    def fingerprint(self, agent_id: str) -> str | None:
        """A short digest of the current credential: resetting it signs every console session out."""
        agent = self.store.peek(Agent, agent_id)
        return agent.secret_hash[:16] if agent else None

    def authenticate(self, secret: str) -> dict[str, Any] | None:
        agent_id = secret.split(".", 1)[0] if secret and "." in secret else None
        if not agent_id:
            return None
        agent = self.store.peek(Agent, agent_id)  # on every API request: no ORM session
        if agent is None or not hmac.compare_digest(agent.secret_hash, _hash(secret)):
            return None
        return as_dict(agent)


# The call id of timeline entries about an agent alone (presence): the agent's activity, no call's.
NO_CALL = ""


def end_listening(store: Store, session: Session, agent_id: str) -> None:
    """Take the agent's listener out of the rooms of the live calls it asked to listen to."""
    since = utcnow() - timedelta(days=1)
    rows = session.execute(
        select(Call.id, Call.room)
        .join(TimelineEntry, TimelineEntry.call_id == Call.id)
        .where(
            TimelineEntry.kind == "listen_in",
            TimelineEntry.at >= since,
            TimelineEntry.agent_id == agent_id,
            Call.state != "ended",
        )
        .distinct()
    ).all()
    for call_id, room in rows:
        store.enqueue(session, J.RemoveParticipant(room, f"listen:{agent_id}", call_id))


def end_all_sessions(session: Session, agent_id: str) -> None:
    session.execute(delete(AgentSession).where(AgentSession.agent_id == agent_id))


def as_dict(agent: Agent) -> dict[str, Any]:
    return {
        "id": agent.id,
        "name": agent.name,
        "phone": agent.phone,
        "browser": agent.browser,
        "status": agent.status,
        "role": agent.role or rules.AGENT_ROLE,
        "idle_since": agent.idle_since.isoformat() + "Z" if agent.idle_since else None,
        "not_responding": agent.not_responding,
    }
