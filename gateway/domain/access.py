"""Who may do what with a call's data: the one access rule every endpoint asks.

A call carries what a contact centre must protect (card numbers, names, account details in
its transcript, notes and summary), so having once touched a call gives no right to it:
declining an offer, missing it, or having handed it on does not. The rule, per action:

- view (the call's record, its timeline and its transfers without their summaries: who, when, how
  it ended; no word of what was said): also every agent who took part (accepted or joined a leg, or
  handed the call on), so a console can show how a call it handled ended. Not one who only declined
  or missed the offer.
- read (transcript, notes, summaries) and annotate (add a note): the agent
  now on the call (its owner), the source and the target of a transfer while it is active,
  and supervisors and admins. The owner keeps read and annotate after the call ends (wrap-up).
- summarise (an OpenAI call on the transcript) and resend (the summary by SMS): the same
  people, but only while the call is live.
- transfer: the agent now on the call while it is live, and supervisors and admins.
- be in a room: only an agent whose leg in that room is live (``may_be_in_room``); anyone else is
  removed when LiveKit reports them joined.

- the board (live picture, the day's figures, the export) and listen-in: supervisors and admins
  only; listen-in only while the call is live. A listener is in the call's room hidden, subscribe
  only (``may_listen_in``, ``is_listener``).

Roles: every agent is an ``agent``; ``supervisor`` and ``admin`` see every call. The directory
stores an agent's role (``agents add … --supervisor``); an actor carries it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

AGENT, SUPERVISOR, ADMIN = "agent", "supervisor", "admin"
INTEGRATION = "integration"  # an API key (a CRM's back end): views and reads every call, acts on none
ROLES = (AGENT, SUPERVISOR, ADMIN, INTEGRATION)
DIRECTORY_ROLES = (AGENT, SUPERVISOR)  # what an agent in the directory may be
# A listener's LiveKit identity: the prefix cannot begin an agent id (AGENT_ID: letters, digits).
LISTENER_PREFIX = "listen:"
OVERSEERS = frozenset({SUPERVISOR, ADMIN})


class Action(StrEnum):
    VIEW = "view"
    READ = "read"
    ANNOTATE = "annotate"
    SUMMARISE = "summarise"
    TRANSFER = "transfer"
    RESEND = "resend"


@dataclass(frozen=True)
class Actor:
    id: str
    role: str = AGENT

    @classmethod
    def of(cls, agent: Mapping[str, Any]) -> Actor:
        role = agent.get("role") or AGENT
        return cls(agent["id"], role if role in ROLES else AGENT)

    @property
    def oversees(self) -> bool:
        return self.role in OVERSEERS


@dataclass(frozen=True)
class CallFacts:
    """What the rule needs to know about one call, read in one go by the store."""

    owner: str | None  # the agent the call is assigned to now (after a completed transfer: B)
    live: bool  # the call has not ended
    on_call: frozenset[str] = field(default_factory=frozenset)  # agents with an accepted/joined leg
    transfer_source: str | None = None  # of the active transfer, if one is active
    transfer_target: str | None = None
    took_part: frozenset[str] = field(default_factory=frozenset)  # accepted/joined a leg, or handed it on


def may(actor: Actor, action: Action, facts: CallFacts) -> bool:
    if actor.oversees:
        return True
    if actor.role == INTEGRATION:
        return action in (Action.VIEW, Action.READ)
    owner_now = facts.owner == actor.id and (facts.live and actor.id in facts.on_call or not facts.live)
    in_transfer = actor.id in {facts.transfer_source, facts.transfer_target} - {None}
    reads = facts.owner == actor.id or in_transfer or (facts.live and actor.id in facts.on_call)
    if action is Action.VIEW:
        return reads or actor.id in facts.took_part
    if action in (Action.READ, Action.ANNOTATE):
        return reads
    if action in (Action.SUMMARISE, Action.RESEND):
        return facts.live and (owner_now or in_transfer)
    if action is Action.TRANSFER:
        return facts.live and owner_now
    return False


def may_see_board(actor: Actor) -> bool:
    """The supervisor's board, the day's figures and their export."""
    return actor.oversees


def may_listen_in(actor: Actor, facts: CallFacts) -> bool:
    """Listen to a call (hidden, subscribe only): an overseer, while the call is live."""
    return actor.oversees and facts.live


def listener_identity(supervisor_id: str) -> str:
    return f"{LISTENER_PREFIX}{supervisor_id}"


def listener_of(identity: str) -> str | None:
    """The supervisor a listener identity stands for, or None for anyone else."""
    return identity[len(LISTENER_PREFIX) :] or None if identity.startswith(LISTENER_PREFIX) else None


def allowed_actions(actor: Actor, facts: CallFacts) -> list[str]:
    return [a.value for a in Action if may(actor, a, facts)]


def may_be_in_room(identity: str, room: str, live_legs: Iterable[tuple[str, str]]) -> bool:
    """A standard (browser) participant belongs in ``room`` only while its agent has a live leg
    there (accepted or joined; or ringing, as a join may overtake the accept); ``live_legs`` are
    (agent id, room) pairs of such legs.
    Whatever the agent's earlier legs were (left, declined, cancelled), a token it kept does not
    let it back in."""
    return (identity, room) in set(live_legs)


def resend_destination(
    *, to: str | None, agent_phone: str | None, agent_known: bool, target_number: str | None
) -> str | None:
    """Where a summary may be sent again: the transfer's own target number, or the phone of an
    agent in the directory. Never a free-form number (a transcript leaving to anyone's phone)."""
    if agent_known:
        return agent_phone or None
    if to and target_number and to == target_number:
        return to
    return None
