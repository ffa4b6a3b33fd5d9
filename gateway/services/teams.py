"""The team directory: teams (queues), who belongs to which, and which number goes to which team."""

from __future__ import annotations

import builtins  # list[...] inside TeamService would name its list() method
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from gateway.adapters.store import Store
from gateway.adapters.store.models import Agent, AgentTeam, QueueEntry, Team, TeamNumber
from gateway.domain import queues as Q

_UNSET = object()


class TeamService:
    def __init__(self, store: Store):
        self.store = store

    # ------------------------------------------------------------ teams
    def add(
        self,
        team_id: str,
        name: str,
        *,
        hold_music_url: str | None = None,
        max_wait_s: float | None = None,
        numbers: Sequence[str] = (),
    ) -> dict[str, Any]:
        Q.validate_team(team_id, name, hold_music_url, max_wait_s)
        for number in numbers:
            Q.validate_number(number)

        def work(session: Session) -> dict[str, Any]:
            if session.get(Team, team_id) is not None:
                raise Q.InvalidTeam(f"team {team_id!r} already exists")
            team = Team(id=team_id, name=name.strip(), hold_music_url=hold_music_url, max_wait_s=max_wait_s, version=1)
            session.add(team)
            self._map_numbers(session, team_id, numbers)
            session.flush()
            return self._as_dict(session, team)

        return self.store.run(work)

    def update(
        self,
        team_id: str,
        *,
        # Each is what the request gave (validated below), or _UNSET when it left the field alone.
        name: Any = _UNSET,
        hold_music_url: Any = _UNSET,
        max_wait_s: Any = _UNSET,
        numbers: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """Change a team's settings; ``numbers`` (when given) replaces its mapped numbers."""
        for number in numbers or ():
            Q.validate_number(number)

        def work(session: Session) -> dict[str, Any]:
            team = self._team(session, team_id)
            changes: dict[str, Any] = {}
            if name is not _UNSET:
                changes["name"] = (name or "").strip()
            if hold_music_url is not _UNSET:
                changes["hold_music_url"] = hold_music_url or None
            if max_wait_s is not _UNSET:
                changes["max_wait_s"] = max_wait_s
            merged: dict[str, Any] = {
                "name": team.name,
                "hold_music_url": team.hold_music_url,
                "max_wait_s": team.max_wait_s,
            }
            merged.update(changes)
            Q.validate_team(team_id, merged["name"], merged["hold_music_url"], merged["max_wait_s"])
            if changes:
                self.store.compare_and_set(session, team, **changes)
            if numbers is not None:
                session.execute(delete(TeamNumber).where(TeamNumber.team_id == team_id))
                session.flush()
                self._map_numbers(session, team_id, numbers)
            return self._as_dict(session, team)

        return self.store.run(work)

    def remove(self, team_id: str) -> None:
        """Remove a team with nobody waiting in it; its numbers go back to the default team and
        members left with no team join the default team (an agent always has a queue to serve)."""
        if team_id == Q.DEFAULT_TEAM:
            raise Q.InvalidTeam("the default team cannot be removed")

        def work(session: Session) -> None:
            team = self._team(session, team_id)
            waiting = session.execute(
                select(func.count()).where(QueueEntry.team_id == team_id, QueueEntry.state.in_(Q.LIVE))
            ).scalar()
            if waiting:
                raise Q.InvalidTeam(f"{waiting} caller(s) are waiting in team {team_id!r}; try again when it is empty")
            members = session.execute(select(AgentTeam.agent_id).where(AgentTeam.team_id == team_id)).scalars().all()
            session.execute(delete(AgentTeam).where(AgentTeam.team_id == team_id))
            session.execute(delete(TeamNumber).where(TeamNumber.team_id == team_id))
            session.flush()
            for agent_id in members:
                if session.execute(select(AgentTeam.team_id).where(AgentTeam.agent_id == agent_id)).first() is None:
                    session.add(AgentTeam(agent_id=agent_id, team_id=Q.DEFAULT_TEAM))
            session.delete(team)

        self.store.run(work)

    def list(self) -> list[dict[str, Any]]:
        def work(session: Session) -> list[dict[str, Any]]:
            return [self._as_dict(session, t) for t in session.execute(select(Team).order_by(Team.id)).scalars()]

        return self.store.read(work)

    def get(self, team_id: str) -> dict[str, Any] | None:
        def work(session: Session) -> dict[str, Any] | None:
            team = session.get(Team, team_id)
            return self._as_dict(session, team) if team else None

        return self.store.read(work)

    @staticmethod
    def teams_for_number(session: Session, number: str | None) -> builtins.list[str]:
        """Every team a dialled number goes to, in menu order (empty: unmapped)."""
        if not number:
            return []
        return list(
            session.execute(
                select(TeamNumber.team_id)
                .where(TeamNumber.number == number)
                .order_by(TeamNumber.position, TeamNumber.team_id)
            ).scalars()
        )

    def set_number(self, number: str, teams: Sequence[str]) -> builtins.list[str]:
        """Send ``number``'s callers to ``teams``: one team, straight there; several, a menu asks
        (press 1 for the first, 2 for the second, ...). No teams: back to the default team."""
        Q.validate_number(number)
        teams = Q.validate_team_list(teams) if teams else []
        if len(teams) > 9:
            raise Q.InvalidTeam("a menu offers at most 9 teams (one key each)")

        def work(session: Session) -> builtins.list[str]:
            for team_id in teams:
                self._team(session, team_id)
            session.execute(delete(TeamNumber).where(TeamNumber.number == number))
            session.flush()
            for position, team_id in enumerate(teams, start=1):
                session.add(TeamNumber(number=number, team_id=team_id, position=position))
            return teams

        return self.store.run(work)

    def numbers(self) -> dict[str, builtins.list[str]]:
        """Each mapped number and its teams, in menu order."""

        def work(session: Session) -> dict[str, builtins.list[str]]:
            found: dict[str, builtins.list[str]] = {}
            rows = session.execute(
                select(TeamNumber.number, TeamNumber.team_id).order_by(
                    TeamNumber.number, TeamNumber.position, TeamNumber.team_id
                )
            )
            for number, team_id in rows:
                found.setdefault(number, []).append(team_id)
            return found

        return self.store.read(work)

    # ------------------------------------------------------- membership
    def set_agent_teams(self, agent_id: str, teams: Sequence[str]) -> builtins.list[str]:
        teams = Q.validate_team_list(teams)

        def work(session: Session) -> builtins.list[str]:
            if session.get(Agent, agent_id) is None:
                raise Q.InvalidTeam(f"no agent {agent_id!r}")
            self.join(session, agent_id, teams, replace=True)
            return teams

        return self.store.run(work)

    @staticmethod
    def join(session: Session, agent_id: str, teams: Sequence[str], *, replace: bool = False) -> None:
        """Make ``agent_id`` a member of ``teams`` (all of which must exist) within a unit of work."""
        known = set(session.execute(select(Team.id).where(Team.id.in_(list(teams)))).scalars())
        unknown = [t for t in teams if t not in known]
        if unknown:
            raise Q.InvalidTeam(f"no team {unknown[0]!r} (add it first: flask --app gateway teams add)")
        if replace:
            session.execute(delete(AgentTeam).where(AgentTeam.agent_id == agent_id))
            session.flush()
        for team in teams:
            session.add(AgentTeam(agent_id=agent_id, team_id=team))

    @staticmethod
    def teams_of(session: Session, agent_ids: Sequence[str]) -> dict[str, builtins.list[str]]:
        rows = session.execute(
            select(AgentTeam.agent_id, AgentTeam.team_id)
            .where(AgentTeam.agent_id.in_(list(agent_ids)))
            .order_by(AgentTeam.team_id)
        ).all()
        found: dict[str, builtins.list[str]] = {agent_id: [] for agent_id in agent_ids}
        for agent_id, team_id in rows:
            found[agent_id].append(team_id)
        return found

    # ---------------------------------------------------------- helpers
    @staticmethod
    def _team(session: Session, team_id: str) -> Team:
        team = session.get(Team, team_id, populate_existing=True)
        if team is None:
            raise Q.InvalidTeam(f"no team {team_id!r}")
        return team

    @staticmethod
    def _map_numbers(session: Session, team_id: str, numbers: Sequence[str]) -> None:
        for number in dict.fromkeys(numbers):
            mapped = TeamService.teams_for_number(session, number)
            if mapped and team_id not in mapped:
                raise Q.InvalidTeam(
                    f"number {number} already goes to team {mapped[0]!r} (for a menu of both: "
                    f"flask --app gateway numbers set {number} {' '.join(f'--team {t}' for t in [*mapped, team_id])})"
                )
            if not mapped:
                session.add(TeamNumber(number=number, team_id=team_id, position=1))

    @staticmethod
    def _as_dict(session: Session, team: Team) -> dict[str, Any]:
        members = session.execute(
            select(AgentTeam.agent_id).where(AgentTeam.team_id == team.id).order_by(AgentTeam.agent_id)
        ).scalars()
        numbers = session.execute(
            select(TeamNumber.number).where(TeamNumber.team_id == team.id).order_by(TeamNumber.number)
        ).scalars()
        waiting = session.execute(
            select(func.count()).where(QueueEntry.team_id == team.id, QueueEntry.state.in_(Q.LIVE))
        ).scalar()
        return {
            "id": team.id,
            "name": team.name,
            "hold_music_url": team.hold_music_url,
            "max_wait_s": team.max_wait_s,
            "members": list(members),
            "numbers": list(numbers),
            "waiting": waiting,
        }
