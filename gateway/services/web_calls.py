"""Web callers: a call placed from the caller page, straight into LiveKit (no Twilio leg).

A web call is a ``Call`` with ``channel='web'``: it enters the same team queue and routing as a
phone call, and every later move (ring, queue, hold, transfer, re-route) is the phone call's.
What differs is only how the caller is moved: a phone caller is redirected by Twilio REST, a web
caller's page follows the call's state (``status``) and asks for a token (``join``) whenever the
gateway has put the call in a room the page is not in yet. Each token is for one room and one
bridge generation, issued once, used once (``room_events`` removes a second join with it).

Endings a phone caller hears (goodbye, the apology) end a web call at once; a web caller who
leaves their room (closes the page) has hung up; a page that never joins in time gives the call
up and its room is deleted.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from gateway.adapters.store import Store
from gateway.adapters.store.db import new_id
from gateway.adapters.store.models import Call, Team, WebJoin, utcnow
from gateway.adapters.store.uow import Session
from gateway.domain import calls as C
from gateway.domain import queues as Q
from gateway.domain import web_calls as W
from gateway.services import job_types as J
from gateway.services.caller import Caller
from gateway.services.errors import Refusal, ServiceError
from gateway.services.lookups import active_transfer
from gateway.services.ports import Dest, Gateway
from gateway.services.routing import Routing


class WebCallError(ServiceError):
    """A web call request the rules refuse (``kind``: why)."""


class TooManyWebCalls(ServiceError):
    """WEB_CALLS_MAX web calls are live already: nothing was recorded."""


class NobodyAvailable(ServiceError):
    """Nobody of the team is signed in: the call was recorded and ended at once."""


class WebCallers:
    def __init__(self, gw: Gateway, routing: Routing, caller: Caller):
        self.gw, self.routing, self.caller = gw, routing, caller
        self.store: Store = gw.store

    # ----------------------------------------------------------------- create
    @staticmethod
    def _live(session: Session) -> int:
        return session.execute(
            select(func.count()).select_from(Call).where(Call.channel == W.CHANNEL_WEB, Call.state != C.ENDED)
        ).scalar_one()

    def create(
        self, *, team_id: str | None, facts: dict[str, str] | None, context: str, origin: str | None
    ) -> dict[str, Any]:
        """Record the web call, route it like a phone call, and give the page its first token."""

        def work(session: Session) -> tuple[Call, WebJoin | None]:
            team = team_id or Q.DEFAULT_TEAM
            if team_id and session.get(Team, team_id) is None:
                raise WebCallError(Refusal.INVALID, f"unknown team {team_id!r}")
            # Counted in the call's own unit of work (callers arriving at the very same moment on two
            # workers may both take the last place: the cap bounds load, it is not a quota).
            cap = self.gw.settings.web_calls_max
            if self._live(session) >= cap:
                raise TooManyWebCalls(
                    Refusal.CONFLICT,
                    f"too many web calls at once (at most {cap}); try again in a minute, or call us by phone",
                )
            call_id = new_id("call")
            call = Call(
                id=call_id,
                twilio_sid=f"web:{call_id}",
                from_number="web",
                to_number="web",
                room=self.gw.room_name("w" + call_id),
                state=C.BRIDGING,
                team_id=team,
                channel=W.CHANNEL_WEB,
                facts={"context": facts} if facts else None,
                created_at=utcnow(),
            )
            session.add(call)
            self.store.record(session, call.id, "call_received", caller="web caller", channel=W.CHANNEL_WEB)
            if facts:
                self.store.record(session, call.id, "web_context_verified", fields=sorted(facts))
            elif context != "none":
                self.store.record(session, call.id, "web_context_ignored", reason=context)
            session.flush()
            self.store.enqueue(session, J.CreateRoom(call.id, call.room))
            if not self.routing.route_new_call(session, call):
                self.caller.hangup(session, call, "nobody staffed")
                return call, None
            return call, self._issue(session, call)

        call, join = self.store.run(work)
        if join is None:
            raise NobodyAvailable(
                Refusal.CONFLICT, "nobody can take calls right now; please try again later, or call us by phone"
            )
        return {"call_id": call.id, "state": call.state, **self._token_reply(join)}

    # ------------------------------------------------------------- tokens
    def _issue(self, session: Session, call: Call) -> WebJoin:
        """One token for the call's room at its current bridge generation, and the timer that gives
        the call up if the page never joins with it."""
        gen = call.bridge_gen or 0
        now = utcnow()
        join = WebJoin(
            id=W.identity(call.id, gen),
            call_id=call.id,
            room=call.room,
            gen=gen,
            issued_at=now,
            expires_at=now + timedelta(seconds=W.JOIN_TTL_S),
        )
        session.add(join)
        self.store.enqueue(
            session,
            J.WebJoinDeadline(call.id, gen),
            delay_s=W.JOIN_TTL_S + W.JOIN_GRACE_S,
            timer_of=join.id,
        )
        self.store.record(session, call.id, "web_token_issued", room=call.room, gen=gen)
        # LiveKit's webhook says when the page has joined; should it be lost, a look at the room will.
        self.routing.expect_in_room(session, call.id, call.room)
        return join

    def _token_reply(self, join: WebJoin) -> dict[str, Any]:
        token = self.gw.rooms.caller_token(identity=join.id, name="Web caller", room=join.room, ttl_s=W.JOIN_TTL_S)
        return {"room": join.room, "identity": join.id, "token": token, "expires_in": W.JOIN_TTL_S}

    def join(self, call_id: str) -> dict[str, Any]:
        """A token for the room the call is in now, when the page is not in it yet: once per move."""

        def work(session: Session) -> WebJoin:
            call = self._web_call(session, call_id)
            if call.state not in (C.BRIDGING, C.CONNECTED, C.QUEUED) or call.caller_identity:
                raise WebCallError(Refusal.CONFLICT, f"nothing to join now: the call is {self._page_state(call)}")
            taken = session.execute(
                select(WebJoin.id).where(WebJoin.call_id == call.id, WebJoin.gen == (call.bridge_gen or 0))
            ).first()
            if taken:
                raise WebCallError(Refusal.CONFLICT, "a token for this room was given already (each is single use)")
            return self._issue(session, call)

        try:
            join = self.store.run(work)
        except IntegrityError:
            raise WebCallError(
                Refusal.CONFLICT, "a token for this room was given already (each is single use)"
            ) from None
        return self._token_reply(join)

    # -------------------------------------------------------------- status
    def status(self, call_id: str) -> dict[str, Any]:
        """Where the caller is, for the page: its state, what it should say and play, and whether
        it should join a room now."""

        def work(session: Session) -> dict[str, Any]:
            call = self._web_call(session, call_id)
            state = self._page_state(call)
            reply: dict[str, Any] = {"call_id": call.id, "state": state, "position": None, "message": ""}
            # The page should ask for a token: the call is in a room the page is not in, and no
            # token was given for it yet (one given and not used yet is the page's to use).
            reply["join"] = (
                call.state in (C.BRIDGING, C.CONNECTED, C.QUEUED)
                and not call.caller_identity
                and session.get(WebJoin, W.identity(call.id, call.bridge_gen or 0)) is None
            )
            reply["room"] = call.room if state != W.ENDED else None
            music = self.routing.queues.music_url(self.routing.queues.team(session, call.team_id))
            reply["hold_music_url"] = music if state in (W.QUEUED, W.ON_HOLD) else None
            if state == W.QUEUED:
                entry = self.routing.queues.live_entry(session, call.id)
                reply["position"] = self.routing.queues.position(session, entry) if entry is not None else None
                reply["message"] = (
                    self.routing.queues.heard(session, entry)[1]
                    if entry is not None
                    else "Please wait: you are in line."
                )
            elif state == W.ON_HOLD:
                reply["message"] = W.HOLD_ANNOUNCEMENT
                reply["transfer"] = active_transfer(session, call.id) is not None
            elif state == W.RINGING:
                reply["message"] = W.RINGING_ANNOUNCEMENT
            elif state == W.CONNECTING:
                reply["message"] = W.CONNECTING_ANNOUNCEMENT
            elif state == W.CONNECTED:
                reply["message"] = "You are connected."
            else:
                reply["message"] = W.ending_message(call.end_reason)
            return reply

        return self.store.read(work)

    @staticmethod
    def _page_state(call: Call) -> str:
        return W.page_state(call.state, caller_in_room=bool(call.caller_identity))

    @staticmethod
    def _web_call(session: Session, call_id: str) -> Call:
        call = session.get(Call, call_id, populate_existing=True)
        if call is None or call.channel != W.CHANNEL_WEB:
            raise WebCallError(Refusal.NOT_FOUND, "unknown web call")
        return call

    # ------------------------------------------------------------- endings
    def hangup(self, call_id: str) -> dict[str, Any]:
        """The caller pressed Hang up (or closed the page)."""

        def work(session: Session) -> None:
            call = self._web_call(session, call_id)
            if call.state != C.ENDED:
                self.caller.hangup(session, call, "web caller hung up")

        self.store.run(work)
        return self.status(call_id)

    def redirected(self, call_id: str, dest: Dest) -> None:
        """Where a phone caller would be redirected: a web caller's page follows the state by
        itself, and the endings (goodbye, the apology: a web call has no voicemail) end the call."""
        if dest not in (Dest.GOODBYE, Dest.APOLOGY):
            return

        def work(session: Session) -> None:
            call = session.get(Call, call_id, populate_existing=True)
            if call is not None and call.state != C.ENDED:
                self.caller.hangup(session, call, call.end_reason or "ended")

        self.store.run(work)

    def join_deadline(self, call_id: str, gen: int) -> None:
        """The page was given a token and never joined with it: the call is given up."""

        def work(session: Session) -> None:
            call = session.get(Call, call_id, populate_existing=True)
            join = session.get(WebJoin, W.identity(call_id, gen))
            if call is None or call.state == C.ENDED or join is None or join.joined_at is not None:
                return
            if (call.bridge_gen or 0) != gen or call.caller_identity:
                return  # moved on since (a newer token has its own deadline)
            self.caller.hangup(session, call, "web caller never joined")

        self.store.run(work)
