"""Listen-in: a supervisor hears a live call, unseen and unheard.

The gateway issues a LiveKit token for the call's room only: subscribe only, hidden (LiveKit does
not show the participant to the others), living a minute; the request is recorded on the call's
timeline (``listen_in``). A listener's identity is ``listen:<supervisor id>`` (domain/access.py),
so the room events never take it for an agent or the caller: on ``participant_joined`` it is kept
only while the call is live, the supervisor is still one, and the timeline has that listen-in;
anyone else with such an identity is removed like any browser participant with no right to be there.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.adapters.store import Store
from gateway.adapters.store.models import Agent, Call, TimelineEntry
from gateway.domain import access
from gateway.domain import calls as C
from gateway.services.errors import Refusal, ServiceError
from gateway.services.ports import Rooms

LISTEN_IN = "listen_in"
# States in which the caller is in their room with an agent, so there is something to hear.
AUDIBLE = (C.CONNECTED,)


class ListenIn:
    def __init__(self, store: Store, rooms: Rooms, client_url: str):
        self.store, self.rooms, self.client_url = store, rooms, client_url

    def listen(self, call_id: str, supervisor: dict[str, Any], *, ttl_s: int) -> dict[str, Any]:
        actor = access.Actor.of(supervisor)
        identity = access.listener_identity(actor.id)

        def work(session: Session) -> str:
            call = session.get(Call, call_id)
            if call is None:
                raise ServiceError(Refusal.NOT_FOUND, "unknown call")
            if call.state == C.ENDED or not access.may_listen_in(actor, _facts(call)):
                raise ServiceError(Refusal.CONFLICT, "this call has ended; listen to a call in progress")
            if call.state not in AUDIBLE:
                raise ServiceError(
                    Refusal.CONFLICT,
                    f"the caller is not talking with an agent now ({call.state.replace('_', ' ')}); "
                    "listen again once the call is connected",
                )
            self.store.record(session, call.id, LISTEN_IN, agent_id=actor.id, room=call.room, identity=identity)
            return call.room

        room = self.store.run(work)
        token = self.rooms.listen_token(
            identity=identity, name=f"{supervisor.get('name') or actor.id} (listening)", room=room, ttl_s=ttl_s
        )
        return {"call_id": call_id, "room": room, "identity": identity, "token": token, "url": self.client_url}


def _facts(call: Call) -> access.CallFacts:
    return access.CallFacts(owner=call.agent_id, live=call.state != C.ENDED)


def listener_entitled(session: Session, room: str, identity: str) -> bool | None:
    """For a browser participant in ``room``: None if it is no listener (the agents' rule applies),
    else whether it may stay (the call is live, the supervisor still one, and it asked to listen)."""
    supervisor_id = access.listener_of(identity)
    if supervisor_id is None:
        return None
    agent = session.get(Agent, supervisor_id)
    if agent is None or not access.Actor.of({"id": agent.id, "role": agent.role}).oversees:
        return False
    call = session.execute(select(Call).where(Call.room == room, Call.state != C.ENDED)).scalars().first()
    if call is None:
        return False
    asked = session.execute(
        select(TimelineEntry.id).where(
            TimelineEntry.call_id == call.id, TimelineEntry.kind == LISTEN_IN, TimelineEntry.agent_id == supervisor_id
        )
    ).first()
    return asked is not None
