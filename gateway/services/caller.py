"""The caller's lifecycle: the voice webhook, bridged into a room, held, sent to voicemail, ended.

Webhook-facing functions only read and write the store and enqueue jobs (the provider calls
are jobs, ``services.work``); each answers a reply (``services/replies.py``): what the caller
hears next, which the web layer renders as TwiML.
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy.exc import IntegrityError

from gateway.adapters.store.db import new_id
from gateway.adapters.store.models import Call, Voicemail, utcnow
from gateway.domain import calls as C
from gateway.domain import queues as Q
from gateway.domain.caller_id import callable_number, mask_caller
from gateway.services import job_types as J
from gateway.services.answers import Answers
from gateway.services.legs import Legs
from gateway.services.ports import Dest, Gateway, LegOutcomes, LiveKitHealth
from gateway.services.replies import Goodbye, Hold, Menu, Nothing, Reply, Webhook
from gateway.services.routing import Routing
from gateway.services.uow import UnitOfWork, UnitsOfWork

CALLER_GONE = ("completed", "canceled", "failed", "busy", "no-answer")


class Caller:
    def __init__(
        self,
        gw: Gateway,
        legs: Legs,
        routing: Routing,
        answers: Answers,
        transfers: LegOutcomes,
        livekit: LiveKitHealth,
    ):
        self.gw, self.legs, self.routing, self.answers = gw, legs, routing, answers
        self.transfers, self.livekit = transfers, livekit
        self.units: UnitsOfWork = gw.store

    # -------------------------------------------------------- voice webhook
    def inbound(self, *, call_sid: str, from_number: str, to_number: str) -> Reply:
        """Record the call, pick agent A, answer the bridge. Only database work here."""
        if self.livekit.down:
            return self._livekit_down(call_sid, from_number, to_number)

        def work(uow: UnitOfWork, retried: bool) -> Call:
            # A new CallSid is the rule: insert at once, and look for an earlier copy of this
            # webhook only when the unique sid refused the insert (a retry or a duplicate).
            call = uow.calls.by_sid(call_sid) if retried else None
            if call is not None:
                return call  # Twilio retried the webhook: same answer, nothing new
            call = self._new_call(uow, call_sid, from_number, to_number)
            # Insert the call before touching agents: a duplicate webhook racing in on another
            # worker now waits on the unique sid and then reads this call, instead of finding
            # the agent row locked by us, storing a "no agent" call and winning the commit.
            uow.flush()
            # A number with a menu asks the caller which team first (the call waits, unrouted).
            if len(uow.teams.for_number(to_number)) > 1:
                uow.timeline.record(call.id, "menu_offered")
                return call
            self._route_new(uow, call)
            return call

        try:
            call = self.units.run(lambda uow: work(uow, retried=False))
        except IntegrityError:
            # This CallSid is stored already (a retried webhook, or a copy that raced in on another
            # worker and committed first): answer the same.
            call = self.units.run(lambda uow: work(uow, retried=True))
        if self._at_menu(call):
            return self.menu(call.id, attempt=1)
        return self._answer_routed(call)

    def _route_new(self, uow: UnitOfWork, call: Call) -> None:
        # (No CreateRoom: the dispatch rule makes the room, configured, when the caller's SIP leg arrives.)
        # A free member of the call's team is rung (the caller hears ringback); with none free the
        # caller waits in the team's line; with nobody signed in at all they hear so at once.
        if not self.routing.route_new_call(uow, call):
            uow.timeline.record(call.id, "no_agent", reason="nobody staffed")

    def _answer_routed(self, call: Call) -> Reply:
        if call.state == C.VOICEMAIL:
            return self.answers.apology(call.id)
        if call.state == C.ENDED:
            return Goodbye()
        if call.state == C.QUEUED:
            return self.routing.queues.waiting(call.id, first=True) or self.bridge_for(call.id, redirected=False)
        return self.answers.bridge(call)

    def _at_menu(self, call: Call) -> bool:
        return self.units.read(lambda uow: self._at_menu_in(uow, call))

    @staticmethod
    def _at_menu_in(uow: UnitOfWork, call: Call) -> bool:
        """Still choosing a team: the call's number has a menu and nothing was chosen yet."""
        return (
            call.state == C.BRIDGING
            and len(uow.teams.for_number(call.to_number)) > 1
            and not uow.legs.any_for(call.id)
            and not uow.timeline.has(call.id, "menu_chosen")
        )

    # ------------------------------------------------------------- the menu
    def _menu_teams(self, uow: UnitOfWork, call: Call) -> list[Q.TeamView]:
        teams = []
        for team_id in uow.teams.for_number(call.to_number):
            team = uow.teams.get(team_id)
            if team is not None:
                teams.append(Q.TeamView(id=team.id, name=team.name))
        return teams

    def menu(self, call_id: str, attempt: int, again: bool = False) -> Reply:
        """The menu: which team the caller wants (a key or the team's name)."""
        teams = self.units.read(lambda uow: self._menu_teams(uow, c) if (c := uow.calls.get(call_id)) else [])
        if not teams:
            return self.bridge_for(call_id, redirected=False)
        prompt = Q.menu_prompt(teams)
        if again:
            prompt = "Sorry, I didn't catch that. " + prompt.removeprefix("Thank you for calling. ")
        return Menu(
            prompt=prompt, choice=Webhook.to(Dest.MENU, call=call_id, attempt=attempt), hints=Q.menu_hints(teams)
        )

    def menu_choice(self, call_id: str, digits: str, speech: str, attempt: int) -> Reply:
        """The caller pressed a key or said a team's name at the menu (or nothing: asked once more,
        then the first team). The call then goes where a call to that team's number goes."""

        def work(uow: UnitOfWork) -> Call | str | None:
            call = uow.calls.get(call_id, fresh=True)
            if call is None:
                return None
            if not self._at_menu_in(uow, call):
                return call  # chosen already (a retried webhook): where the call is now
            teams = self._menu_teams(uow, call)
            chosen = Q.menu_choice(teams, digits, speech)
            if chosen is None and attempt < Q.MENU_ATTEMPTS:
                return "again"
            how = "key" if chosen and digits else "speech" if chosen else "default"
            team_id = chosen or (teams[0].id if teams else Q.DEFAULT_TEAM)
            uow.compare_and_set(call, team_id=team_id)
            uow.timeline.record(call.id, "menu_chosen", team=team_id, by=how)
            self._route_new(uow, call)
            return call

        outcome = self.units.run(work)
        if outcome is None:
            return self.answers.apology(None, technical=True)
        if outcome == "again":
            return self.menu(call_id, attempt=attempt + 1, again=True)
        assert isinstance(outcome, Call)
        return self._answer_routed(outcome)

    def _livekit_down(self, call_sid: str, from_number: str, to_number: str) -> Reply:
        """LiveKit failed moments ago: don't send the caller into a bridge that cannot work."""

        def work(uow: UnitOfWork) -> str:
            call = uow.calls.by_sid(call_sid) or self._new_call(uow, call_sid, from_number, to_number)
            if call.state == C.BRIDGING:
                uow.transition(call, C.CALL, "no_agent", end_reason="livekit_unavailable")
                uow.timeline.record(call.id, "livekit_unavailable")
            return call.id

        return self.answers.apology(self.units.run(work), technical=True)

    def _new_call(self, uow: UnitOfWork, sid: str, from_number: str, to_number: str) -> Call:
        call = Call(
            id=new_id("call"),
            twilio_sid=sid,
            from_number=from_number,
            to_number=to_number,
            room=self.gw.room_name(sid),
            state=C.BRIDGING,
            team_id=(uow.teams.for_number(to_number) or [Q.DEFAULT_TEAM])[0],  # its first team, if several
            created_at=utcnow(),  # (set now: a caller's place in a line counts from it)
        )
        uow.calls.add(call)
        uow.timeline.record(call.id, "call_received", caller=mask_caller(from_number))
        return call

    # ------------------------------------------------------ the caller's <Dial>
    def dial_ended(
        self, call_id: str, room: str, dial_status: str, call_status: str, sip_code: str | None, gen: str = "0"
    ) -> Reply:
        """The caller's <Dial> into a room ended. Decide what the caller hears next."""
        if call_status in CALLER_GONE:
            return Nothing()  # the caller is gone; Twilio ignores this reply

        def work(uow: UnitOfWork) -> tuple[str, Call | None]:
            call = uow.calls.get(call_id)
            if call is None:
                return "apology", None
            if call.state == C.ENDED or call.end_reason == C.AGENT_ENDED:
                # An agent ended the call: its <Dial> ending (the agent left the room) is no lost bridge.
                return "goodbye", call
            if call.state == C.VOICEMAIL:
                return "apology", call
            if call.state == C.QUEUED:
                return "queue", call  # our redirect took the caller from ringback into the line
            if call.state == C.ON_HOLD or call.room != room or gen != str(call.bridge_gen or 0) or call.redirecting:
                # We moved the caller on purpose (REST redirect), or served a newer <Dial> since:
                # Twilio ignores this reply. Were we ever wrong, the hold loop re-bridges the caller.
                return "hold", call
            if dial_status in ("failed", "busy", "no-answer", "canceled"):
                uow.timeline.record(call.id, "bridge_failed", status=dial_status, sip_code=sip_code)
                self.routing.to_voicemail_now(uow, call, f"bridge {dial_status}")
                return ("apology_technical" if dial_status == "failed" else "apology"), call
            return self._bridge_lost(uow, call, dial_status), call

        verdict, call = self.units.run(work)
        if verdict in ("apology", "apology_technical"):
            return self.answers.apology(call.id if call else None, technical=call is None or verdict != "apology")
        if verdict == "goodbye":
            return Goodbye()
        assert call is not None  # only "apology" comes without the call
        if verdict == "queue":
            return self.routing.queues.waiting(call.id, first=False) or self.answers.hold(call.id, first=True)
        return self.answers.hold(call.id, first=True)

    def _bridge_lost(self, uow: UnitOfWork, call: Call, dial_status: str) -> str:
        """The room side hung up (room closed, participant removed) while the caller stays on the line."""
        uow.timeline.record(call.id, "bridge_lost", status=dial_status)
        uow.transition(call, C.CALL, "hold")
        for leg in uow.legs.live(call.id, transfer_id=None):
            self.legs.end_leg(uow, leg, "cancel", "bridge lost")
        verdict = self.routing.route(uow, call, room=call.room)
        if verdict == "nobody":
            self.routing.to_voicemail_now(uow, call, "nobody available after bridge lost")
            return "apology"
        return "queue" if verdict == "queued" else "hold"

    def bridge_for(self, call_id: str, redirected: bool = True) -> Reply:
        """The caller's next step; a bridge (<Dial>) served here is a new bridge generation.

        Only the newest <Dial> counts: the action of any earlier one (the hold loop and a REST
        redirect can each fetch one) is then recognised as superseded. ``redirected`` says this
        fetch is the one our REST redirect caused, which ends the redirect's in-flight window.
        """

        def work(uow: UnitOfWork) -> Call | None:
            call = uow.calls.get(call_id, fresh=True)
            if call is not None and call.state in (C.BRIDGING, C.CONNECTED):
                changes = {"bridge_gen": (call.bridge_gen or 0) + 1}
                if redirected and call.redirecting:
                    changes["redirecting"] = False
                uow.compare_and_set(call, **changes)
            return call

        call = self.units.run(work)
        if call is None:
            return self.answers.apology(None, technical=True)
        if call.state == C.ENDED:
            return Goodbye()
        if call.state in (C.VOICEMAIL,):
            return self.answers.apology(call.id)
        if call.state == C.ON_HOLD:
            return self.answers.hold(call.id, first=False)
        if call.state == C.QUEUED:
            return self.routing.queues.waiting(call.id, first=False) or self.answers.hold(call.id, first=False)
        return self.answers.bridge(call)

    def queue_for(self, call_id: str, first: bool) -> Reply:
        """The queue's hold loop, only while the caller waits in line: otherwise where they are now."""
        call = self.units.read(lambda uow: uow.calls.get(call_id))
        if call is not None and call.state == C.QUEUED:
            heard = self.routing.queues.waiting(call.id, first=first)
            if heard is not None:
                return heard
        return self.bridge_for(call_id, redirected=False)

    def queue_choice(self, call_id: str, digits: str, speech: str) -> Reply:
        """A waiting caller pressed a key or spoke during the hold loop: 1 or "voicemail"/"message"
        leaves the line for voicemail; 2 or "call me back" turns their place into a callback (they
        may hang up), unless their number is withheld (told so, they keep waiting); anything else,
        back to waiting (same place)."""
        choice = Q.waiting_choice(digits, speech)
        if choice is None or (choice == Q.VOICEMAIL and not self.gw.settings.voicemail_enabled):
            return self.queue_for(call_id, first=False)
        if choice == Q.CALLBACK and self._withheld(call_id):
            heard = self.queue_for(call_id, first=False)
            if isinstance(heard, Hold):  # told why, then the same pass of the hold loop: same place
                return replace(heard, message=" ".join(filter(None, (Q.CALLBACK_WITHHELD, heard.message))))
            return heard

        def work(uow: UnitOfWork) -> bool:
            call = uow.calls.get(call_id, fresh=True)
            if call is None or call.state != C.QUEUED:
                return False
            if choice == Q.CALLBACK:
                return self.routing.queues.request_callback(uow, call)
            entry = self.routing.queues.live_entry(uow, call.id)
            if entry is not None:  # out of the line first: an agent freed below is not offered them
                self.routing.queues.end(uow, entry, "leave", "caller chose voicemail")
            self.routing.to_voicemail_now(uow, call, "caller chose voicemail")
            return True

        if not self.units.run(work):
            return self.queue_for(call_id, first=False)
        if choice == Q.CALLBACK:
            return Goodbye(Q.CALLBACK_CONFIRMED)
        return self.answers.apology(call_id, message="Of course.")

    def _withheld(self, call_id: str) -> bool:
        """The caller reached us with no number we could dial (withheld, or invalid caller ID)."""
        call = self.units.read(lambda uow: uow.calls.get(call_id))
        return call is not None and callable_number(call.from_number) is None

    def apology_for(self, call_id: str | None) -> Reply:
        """The apology a caller is redirected to: why nobody came, then voicemail."""
        call = self.units.read(lambda uow: uow.calls.get(call_id)) if call_id else None
        message = Q.QUEUE_TIMED_OUT if call is not None and call.end_reason == "queue timeout" else None
        return self.answers.apology(call_id, message=message)

    def hold_for(self, call_id: str, first: bool) -> Reply:
        """The hold loop, only while the call is on hold: otherwise where the call is now."""
        call = self.units.read(lambda uow: uow.calls.get(call_id))
        if call is not None and call.state == C.ON_HOLD:
            return self.answers.hold(call.id, first=first)
        return self.bridge_for(call_id, redirected=False)

    def redirect_abandoned(self, call_id: str) -> None:
        """Our REST redirect never reached Twilio: a <Dial> ending from now on is real again.
        (The caller is not stuck: a closed room or the hold loop brings them to the current bridge.)"""

        def work(uow: UnitOfWork) -> None:
            call = uow.calls.get(call_id, fresh=True)
            if call is not None and call.redirecting:
                uow.compare_and_set(call, redirecting=False)

        self.units.run(work)

    def sip_leg_status(self, call_id: str, child_sid: str, status: str) -> None:
        """<Sip> child-leg progress: remember the child CallSid LiveKit will report."""
        if status != "initiated" or not child_sid:
            return  # ringing, answered, completed: acknowledged (and logged), nothing to store

        def work(uow: UnitOfWork) -> None:
            call = uow.calls.get(call_id)
            if call is not None and call.dial_sid != child_sid:
                uow.compare_and_set(call, dial_sid=child_sid)

        self.units.run(work)

    # ------------------------------------------------------------- endings
    def caller_status(self, call_sid: str, status: str) -> None:
        if status not in CALLER_GONE:
            return

        def work(uow: UnitOfWork) -> None:
            call = uow.calls.by_sid(call_sid)
            if call is not None:
                self.hangup(uow, call, f"caller {status}")

        self.units.run(work)

    def hangup(self, uow: UnitOfWork, call: Call, reason: str) -> None:
        if call.end_reason == C.AGENT_ENDED:
            reason = C.AGENT_ENDED  # the caller's line closes after the goodbye the agent caused
        entry = uow.queue.live(call.id)
        if entry is not None and entry.kind == Q.CALLBACK and call.state == C.QUEUED and reason.startswith("caller "):
            # They asked to be called back: the line ends, their place in the queue does not.
            uow.timeline.record(call.id, "caller_left_for_callback", team=entry.team_id)
            return
        outcome = uow.transition(call, C.CALL, "hangup", end_reason=reason, ended_at=utcnow())
        if not outcome.changed:
            return
        uow.timeline.record(call.id, "call_ended", reason=reason)
        entry = uow.queue.live(call.id)
        if entry is not None:  # hung up while waiting in line (or while being offered): abandoned
            self.routing.queues.end(uow, entry, "hangup", reason)
        transfer = uow.transfers.active(call.id)
        if transfer is not None:
            self.transfers.on_caller_hangup(uow, transfer)
        rooms = {call.room}
        for leg in uow.legs.live(call.id):
            rooms.add(leg.room)
            self.legs.end_leg(uow, leg, "cancel", "caller hung up")
        for room in sorted(rooms):
            uow.jobs.add(J.DeleteRoom(room, call.id), dedupe_key=f"delete:{room}")
        uow.jobs.add(J.PurgeCallData(call.id), delay_s=self.gw.settings.retention_hours * 3600)

    def queue_timeout(self, call_id: str) -> None:
        def work(uow: UnitOfWork) -> None:
            call = uow.calls.get(call_id)
            if call is None or call.connected_at is not None:
                return
            entry = self.routing.queues.live_entry(uow, call.id)
            if entry is not None and entry.state == Q.OFFERED:
                return  # being offered right now: should the offer fail, the caller's wait is checked then
            if entry is not None and entry.kind == Q.CALLBACK:
                return  # a callback keeps its place however long the line is
            if call.state in (C.BRIDGING, C.QUEUED):
                self.routing.to_voicemail(uow, call, "queue timeout")

        self.units.run(work)

    def voicemail(self, call_id: str, recording_url: str, duration: str | None) -> None:
        def work(uow: UnitOfWork) -> None:
            if uow.calls.get(call_id) is None:
                return
            uow.calls.add_voicemail(
                Voicemail(
                    call_id=call_id,
                    recording_url=recording_url,
                    duration_s=float(duration) if duration and duration.isdigit() else None,
                )
            )
            uow.timeline.record(call_id, "voicemail_left")

        self.units.run(work)
