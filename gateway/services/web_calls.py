"""Web callers: a call placed from the caller page, straight into LiveKit (no Twilio leg).

A web call is a ``Call`` with ``channel='web'``: it enters the same team queue and routing as a
phone call, and every later move (ring, queue, hold, transfer, re-route) is the phone call's.
What differs is only how the caller is moved: a phone caller is redirected by Twilio REST, a web
caller's page follows the call's state (``status``) and asks for a token (``join``) whenever the
gateway has put the call in a room the page is not in yet. Each token is for one room and one
bridge generation, issued once, used once (``room_events`` removes a second join with it).

Endings a phone caller hears (goodbye, the apology) end a web call at once; Hang up on the page
ends it at once; a page that never joins in time gives the call up and its room is deleted.

A web caller who leaves their room (a reload, a dropped connection, a closed page: the gateway
cannot tell them apart) keeps their place — the queue entry, the agent — for WEB_CALL_REJOIN_S.
The page proves it is the same caller with the call's *rejoin secret*: random, given once at
creation, kept by the page in sessionStorage, stored here only as a digest, and replaced at every
rejoin (the one used is refused from then on). A rejoin is a fresh one-use token for the room the
call is in now, as a new bridge generation; whatever session the old secret's page still had in
the room is removed. Unless the page comes back, the grace timer ends the call as a hang-up.

A web caller waiting in line may ask to be called back instead (``call_back``): the number they
give becomes their queue entry's callback number, the entry keeps its place as a callback (the
same rules as a phone caller's: services/callbacks.py dials it when an agent accepts), and the
page's part ends — its room is deleted, its timers withdrawn, and join, rejoin and hang-up are
refused from then on. Once the callback dials their phone, the call has a Twilio leg like any phone
call (``W.on_the_page`` is false): it is moved by Twilio REST, no longer by the page.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from gateway.adapters.store import Store
from gateway.adapters.store.db import new_id
from gateway.adapters.store.models import Call, QueueEntry, Team, WebCallKey, WebJoin, utcnow
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

        def work(session: Session) -> tuple[Call, WebJoin | None, str]:
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
                twilio_sid=f"{W.WEB_SID_PREFIX}{call_id}",
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
                return call, None, ""
            secret = W.new_rejoin_secret()
            session.add(WebCallKey(id=call.id, secret_hash=W.secret_digest(secret), rotated_at=utcnow()))
            return call, self._issue(session, call), secret

        call, join, secret = self.store.run(work)
        if join is None:
            raise NobodyAvailable(
                Refusal.CONFLICT, "nobody can take calls right now; please try again later, or call us by phone"
            )
        return {
            "call_id": call.id,
            "state": call.state,
            "rejoin_secret": secret,
            "generation": 0,
            **self._token_reply(join),
        }

    def access_generation(self, call_id: str) -> int:
        """How many times the call was rejoined: the page's access token must carry this number, so a
        page whose call was taken over by a rejoin (another tab, another holder of the secret) is out."""
        key = self.store.peek(WebCallKey, call_id)
        return key.rotations if key is not None else 0

    # ----------------------------------------------------------- rejoin
    def rejoin(self, call_id: str, secret: object) -> dict[str, Any]:
        """The page is back (a reload, a dropped connection): a token for the room the call is in
        now, and the next rejoin secret in place of the one it used."""
        grace_s = self.gw.settings.web_call_rejoin_s

        def work(session: Session) -> tuple[str | None, Call, WebJoin | None, str, int]:
            call = self._web_call(session, call_id)
            key = session.get(WebCallKey, call.id, populate_existing=True)
            if key is None or not W.secret_matches(secret, key.secret_hash):
                raise WebCallError(
                    Refusal.FORBIDDEN,
                    "this rejoin secret is not (or no longer) valid for this call: each one works once",
                )
            self._refuse_if_called_back(session, call)
            joins = list(
                session.execute(select(WebJoin).where(WebJoin.call_id == call.id).order_by(WebJoin.gen.desc()))
                .scalars()
                .all()
            )
            newest = joins[0] if joins else None
            away_s = (
                (utcnow() - newest.left_at).total_seconds()
                if newest is not None and newest.left_at is not None and not call.caller_identity
                else None
            )
            refused = W.rejoin_refusal(call.state, away_s, grace_s)
            if refused == W.GONE:
                self.caller.hangup(session, call, W.LEFT)  # what the grace timer is about to do
            if refused is not None:
                return refused, call, None, "", key.rotations
            fresh = W.new_rejoin_secret()
            self.store.compare_and_set(
                session, key, secret_hash=W.secret_digest(fresh), rotations=key.rotations + 1, rotated_at=utcnow()
            )
            self.store.cancel_timers(session, J.WebRejoinDeadline.kind, *(join.id for join in joins))
            for join in joins:
                if join.joined_at is not None and join.left_at is None:
                    # The page that used to be the caller (this one before its reload, or another
                    # holder of the secret) is not any more: LiveKit takes it out of the room.
                    self.store.enqueue(session, J.RemoveParticipant(join.room, join.id, call.id))
            # A new bridge generation into the same room: the token is new, single use, its own.
            self.store.compare_and_set(session, call, bridge_gen=(call.bridge_gen or 0) + 1, caller_identity=None)
            # (LiveKit may have closed the room while it stood empty: its settings come back with it.)
            self.store.enqueue(session, J.CreateRoom(call.id, call.room))
            self.store.record(
                session, call.id, "web_caller_rejoined", away_s=round(away_s, 1) if away_s is not None else None
            )
            return None, call, self._issue(session, call), fresh, key.rotations

        refused, call, join, fresh, generation = self.store.run(work)
        if refused == W.GONE:
            raise WebCallError(
                Refusal.GONE,
                f"you were away longer than {grace_s:g} s, so the call has ended; please call again",
            )
        if refused is not None or join is None:
            raise WebCallError(Refusal.GONE, f"this call has ended: {W.ending_message(call.end_reason)}")
        return {
            "call_id": call.id,
            "state": self._page_state(call),
            "rejoin_secret": fresh,
            "generation": generation,
            **self._token_reply(join),
        }

    def rejoin_deadline(self, call_id: str, gen: int) -> None:
        """The web caller left (with the token of generation ``gen``) and their page has not come
        back for the call since: the call ends as a hang-up (queue entry left, agent told, rooms
        deleted)."""

        def work(session: Session) -> None:
            call = session.get(Call, call_id, populate_existing=True)
            if call is None or call.state == C.ENDED or call.caller_identity or self._called_back(session, call):
                return
            newest = session.execute(select(func.max(WebJoin.gen)).where(WebJoin.call_id == call.id)).scalar()
            if newest != gen:
                return  # the page came back for the call (a rejoin, or a join after a move)
            self.store.record(session, call.id, "web_caller_did_not_return", gen=gen)
            self.caller.hangup(session, call, W.LEFT)

        self.store.run(work)

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
            self._refuse_if_called_back(session, call)
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
            called_back = self._called_back(session, call) if state != W.ENDED else None
            if called_back is not None:
                waiting = called_back.active_call_id is not None
                number = called_back.callback_number
                return reply | {
                    "state": W.CALLBACK,
                    "message": W.callback_confirmation(number) if waiting else W.called_back_message(number),
                    "join": False,
                    "room": None,
                    "hold_music_url": None,
                }
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

    def _called_back(self, session: Session, call: Call) -> QueueEntry | None:
        """The callback entry of a web caller who chose to be called back (live while it waits or is
        being dialled; answered once they are on the phone), or None while the page is the caller."""
        entry = self.routing.queues.live_entry(session, call.id)
        if entry is not None:
            return entry if entry.kind == Q.CALLBACK else None
        if W.on_the_page(call.channel, call.twilio_sid):
            return None
        return (
            session.execute(
                select(QueueEntry)
                .where(QueueEntry.call_id == call.id, QueueEntry.kind == Q.CALLBACK)
                .order_by(QueueEntry.enqueued_at.desc())
            )
            .scalars()
            .first()
        )

    def _refuse_if_called_back(self, session: Session, call: Call) -> None:
        if call.state != C.ENDED and self._called_back(session, call) is not None:
            raise WebCallError(
                Refusal.CONFLICT,
                "this call waits as a callback (or goes on by phone): the page has no part in it any more",
            )

    # ------------------------------------------------------------ callback
    def call_back(self, call_id: str, number: object) -> dict[str, Any]:
        """The waiting caller would rather be called back at ``number`` than wait on the page: their
        place in line becomes a callback (services/queues.py, the phone caller's own rule), and the
        page's part of the call ends here (its room, its timers, its tokens)."""
        dialable = W.callback_number(number)
        if dialable is None:
            raise WebCallError(Refusal.INVALID, W.CALLBACK_NUMBER_INVALID)

        def work(session: Session) -> None:
            call = self._web_call(session, call_id)
            entry = self.routing.queues.live_entry(session, call.id)
            if (
                call.state != C.QUEUED
                or entry is None
                or entry.state != Q.WAITING
                or entry.kind == Q.CALLBACK
                or not W.on_the_page(call.channel, call.twilio_sid)
            ):
                state = W.CALLBACK if entry is not None and entry.kind == Q.CALLBACK else self._page_state(call)
                raise WebCallError(Refusal.CONFLICT, f"{W.CALLBACK_NOT_WAITING}: the call is {state}")
            if not self.routing.queues.request_callback(session, call, number=dialable):
                raise WebCallError(Refusal.CONFLICT, W.CALLBACK_NOT_WAITING)
            joins = list(session.execute(select(WebJoin).where(WebJoin.call_id == call.id)).scalars().all())
            ids = [join.id for join in joins]
            self.store.cancel_timers(session, J.WebJoinDeadline.kind, *ids)
            self.store.cancel_timers(session, J.WebRejoinDeadline.kind, *ids)
            now = utcnow()
            for join in joins:
                if join.left_at is None:  # the page's session ends with its room: not a caller "away"
                    self.store.compare_and_set(session, join, left_at=now)
            if call.caller_identity:
                self.store.compare_and_set(session, call, caller_identity=None)
            # Nobody waits in the room now; the agent who accepts the callback joins it afresh.
            self.store.enqueue(session, J.DeleteRoom(call.room, call.id), dedupe_key=f"callback-room:{call.id}")
            self.store.record(session, call.id, "caller_left_for_callback", team=entry.team_id, channel=W.CHANNEL_WEB)

        self.store.run(work)
        return self.status(call_id)

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
            self._refuse_if_called_back(session, call)
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
            if self._called_back(session, call) is not None:
                return  # the caller left the page for a callback: the token was not needed
            if (call.bridge_gen or 0) != gen or call.caller_identity:
                return  # moved on since (a newer token has its own deadline)
            self.caller.hangup(session, call, "web caller never joined")

        self.store.run(work)
