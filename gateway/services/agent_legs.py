"""Agent legs, the use cases: an offer is accepted or declined in the console, a phone leg is
answered, keyed (1/2) or hung up, a ring times out, an agent leaves.

When a leg belongs to a transfer, its outcome goes to the transfer process manager through the
``LegOutcomes`` port; otherwise the caller's routing moves on (next agent, or voicemail).

A phone leg's timers match people (domain/legs.py): the ring timer covers ringing only and stops
at the answer; answering-machine detection counts against neither budget (only a generous
allowance until Twilio asks for the whisper); the whisper and its key press get a budget of their
own, from the words said at Polly's pace plus the wait after the prompt; no key repeats the
prompt once, with a budget of its own again. Each phase is a ``whisper_timeout`` timer keyed
``<leg>:<phase>``; that a phase's timer was set is also the record that the phase began.
"""

from __future__ import annotations

from collections.abc import Iterable

from gateway.adapters.store.db import timer_key
from gateway.adapters.store.models import Call, Leg
from gateway.domain import calls as C
from gateway.domain import legs as L
from gateway.domain import queues as Q
from gateway.domain.caller_id import callable_number
from gateway.domain.machine import IllegalTransition
from gateway.services import job_types as J
from gateway.services.answers import Answers
from gateway.services.legs import Legs
from gateway.services.ports import Dest, Gateway, LegOutcomes
from gateway.services.replies import (
    ALREADY_ANSWERED,
    WHISPER_PROMPT,
    AgentPrompt,
    Goodbye,
    Reply,
    Webhook,
    Whisper,
    WhisperAgain,
)
from gateway.services.routing import Routing
from gateway.services.summaries import Summaries
from gateway.services.uow import UnitOfWork, UnitsOfWork

WHISPER = J.WhisperTimeout.kind
ANSWER, OFFER, AGAIN = "answer", "offer", "again"
WHISPER_PHASES = (ANSWER, OFFER, AGAIN)


class AgentLegs:
    def __init__(
        self,
        gw: Gateway,
        legs: Legs,
        routing: Routing,
        answers: Answers,
        summaries: Summaries,
        transfers: LegOutcomes,
    ):
        self.gw, self.legs, self.routing, self.answers = gw, legs, routing, answers
        self.summaries, self.transfers = summaries, transfers
        self.units: UnitsOfWork = gw.store

    # ----------------------------------------------------------- accepting
    def accept_leg(self, uow: UnitOfWork, leg: Leg) -> bool:
        """First accept wins: the agent's other channel and nobody else keeps ringing."""
        try:
            outcome = uow.transition(leg, L.LEG, "accept")
        except IllegalTransition:
            return False
        if not outcome.changed:
            return True
        self.stop_ringing(uow, leg)
        if leg.kind == "phone":  # the key was pressed: the whisper's budget is moot
            uow.jobs.cancel_timers(WHISPER, *(f"{leg.id}:{phase}" for phase in WHISPER_PHASES))
        uow.timeline.record(
            leg.call_id, "leg_accepted", transfer_id=leg.transfer_id, agent_id=leg.agent_id, channel=leg.kind
        )
        self.routing.expect_in_room(uow, leg.call_id, leg.room)  # the agent joins next
        if leg.transfer_id:
            self.transfers.on_target_accepted(uow, leg)
        return True

    def stop_ringing(self, uow: UnitOfWork, leg: Leg) -> None:
        """``leg`` was answered: the rest of its offer stops ringing, and so does the offer's ring
        timer (it is keyed by one of the offer's legs: this one or a sibling ended here)."""
        offer = [leg.id]
        for other in uow.legs.live(leg.call_id, transfer_id=leg.transfer_id):
            if other.id != leg.id and other.state == L.RINGING:
                self.legs.end_leg(uow, other, "cancel", "answered elsewhere")
                if other.agent_id == leg.agent_id:
                    offer.append(other.id)
        uow.jobs.cancel_timers(J.RingTimeout.kind, *offer)

    def browser_accept(self, agent_id: str, call_id: str) -> Leg | None:
        def work(uow: UnitOfWork) -> Leg | None:
            consoles = [
                leg for leg in uow.legs.of_agent(agent_id, call_id=call_id, states=L.LIVE) if leg.kind == "browser"
            ]
            leg = consoles[-1] if consoles else None  # the newest offer
            if leg is None or not self.accept_leg(uow, leg):
                return None
            return leg

        return self.units.run(work)

    def browser_decline(self, agent_id: str, call_id: str) -> bool:
        def work(uow: UnitOfWork) -> bool:
            ringing = uow.legs.of_agent(agent_id, call_id=call_id, states=[L.RINGING])
            leg = next((leg for leg in ringing if leg.kind == "browser"), None)
            if leg is None:
                return False
            self.legs.end_leg(uow, leg, "decline", "declined in console")
            self.after_leg_failed(uow, leg)
            return True

        return self.units.run(work)

    def after_leg_failed(self, uow: UnitOfWork, leg: Leg) -> None:
        """When every channel of an offer has failed, move on: next agent, or the transfer's fallback."""
        # The agent's other channel of the same offer (console and phone ring together).
        offer = uow.legs.live(leg.call_id, transfer_id=leg.transfer_id)
        if any(other.agent_id == leg.agent_id and other.id != leg.id for other in offer):
            return
        if leg.transfer_id:
            self.transfers.on_target_failed(uow, leg)
            return
        call = uow.calls.get(leg.call_id, fresh=True)
        if (
            call is None
            or call.state not in (C.BRIDGING, C.ON_HOLD, C.QUEUED)
            or uow.legs.live(call.id, transfer_id=None)
        ):
            return
        if call.state == C.QUEUED:
            self.routing.queue_offer_failed(uow, call)  # back to the head of the line
            return
        verdict = self.routing.route(uow, call)
        if verdict == "queued":  # from ringback into the line: greeting, place, music
            uow.jobs.add(J.RedirectCaller(call.id, Dest.QUEUE))
        elif verdict == "nobody":
            self.routing.to_voicemail(uow, call, "nobody answered")

    def ring_timeout(self, leg_ids: Iterable[str]) -> None:
        def work(uow: UnitOfWork) -> None:
            ended = []
            for leg_id in leg_ids:
                leg = uow.legs.get(leg_id, fresh=True)
                if leg is None or leg.state != L.RINGING:
                    continue
                if leg.kind == "phone" and self._phases(uow, leg):
                    continue  # answered: ringing is over, the whisper runs on its own budget
                self.legs.end_leg(uow, leg, "no_answer", "ring timeout")
                ended.append(leg)
            if ended:
                self.after_leg_failed(uow, ended[-1])

        self.units.run(work)

    # ------------------------------------------------- whisper phases
    def _phases(self, uow: UnitOfWork, leg: Leg, *phases: str) -> set[str]:
        """Which whisper phases of this leg have begun (their timer was set)."""
        names = phases or WHISPER_PHASES
        return {s.rsplit(":", 1)[1] for s in uow.jobs.timers_set(WHISPER, *(f"{leg.id}:{p}" for p in names))}

    def _begin_phase(self, uow: UnitOfWork, leg: Leg, phase: str, budget_s: float) -> bool:
        """Start ``phase`` with its own budget, withdrawing the earlier phases' timers; False if
        it had begun already (a repeated webhook)."""
        subject = f"{leg.id}:{phase}"
        earlier = [f"{leg.id}:{p}" for p in WHISPER_PHASES[: WHISPER_PHASES.index(phase)]]
        uow.jobs.cancel_timers(WHISPER, *earlier)
        job = uow.jobs.add(
            J.WhisperTimeout(leg.id, phase, leg.call_id),
            delay_s=budget_s,
            dedupe_key=timer_key(WHISPER, subject),
            timer_of=subject,
        )
        return job is not None

    def _answered(self, uow: UnitOfWork, leg: Leg) -> None:
        """The phone picked up: ringing is over (the ring timer no longer applies to this leg);
        answering-machine detection may hold Twilio's request for the whisper for a while."""
        if self._phases(uow, leg):
            return
        if self._begin_phase(uow, leg, ANSWER, L.DETECTION_ALLOWANCE_S):
            uow.timeline.record(leg.call_id, "agent_answered", transfer_id=leg.transfer_id, agent_id=leg.agent_id)

    def _whisper_served(self, leg_id: str, prompt: AgentPrompt | Goodbye, phase: str) -> None:
        """The whisper (or the repeated prompt) goes out now: its budget covers the words at a
        person's pace, then the wait for a key that starts once the prompt has been said."""
        if isinstance(prompt, Goodbye) or not prompt.asks_for_a_key:
            return  # e.g. "one moment, preparing the summary": the answer phase still covers it

        def work(uow: UnitOfWork) -> None:
            leg = uow.legs.get(leg_id, fresh=True)
            if leg is not None and leg.state == L.RINGING:
                self._begin_phase(uow, leg, phase, L.whisper_budget_s(*prompt.said()))

        self.units.run(work)

    def whisper_timeout(self, leg_id: str, phase: str) -> None:
        """A phase ran out: no key came (or Twilio never asked for the whisper after the answer)."""

        def work(uow: UnitOfWork) -> None:
            leg = uow.legs.get(leg_id, fresh=True)
            if leg is None or leg.state != L.RINGING:
                return
            later = WHISPER_PHASES[WHISPER_PHASES.index(phase) + 1 :]
            if later and self._phases(uow, leg, *later):
                return  # a later phase began (a race between webhooks): its own timer decides
            reason = "whisper never requested after the answer" if phase == ANSWER else "no key pressed in time"
            self.legs.end_leg(uow, leg, "no_answer", reason)
            self.after_leg_failed(uow, leg)

        self.units.run(work)

    # ---------------------------------------------------- phone agent legs
    def leg_answered(self, leg_id: str, answered_by: str | None) -> Reply:
        """The agent's phone picked up: whisper and ask for a key (a machine gets nothing)."""

        def work(uow: UnitOfWork) -> tuple[str, Leg | None, Call | None]:
            leg = uow.legs.get(leg_id)
            if leg is None or leg.state != L.RINGING:
                return "taken", leg, None
            if answered_by and (answered_by.startswith("machine") or answered_by == "fax"):
                self.legs.end_leg(uow, leg, "no_answer", "voicemail answered")
                self.after_leg_failed(uow, leg)
                return "machine", leg, None
            self._answered(uow, leg)  # (when the 'answered' status callback is late or lost)
            return "offer", leg, uow.calls.get(leg.call_id)

        verdict, leg, call = self.units.run(work)
        if verdict == "taken":
            return Goodbye(ALREADY_ANSWERED)
        if verdict == "machine":
            return Goodbye()
        assert leg is not None and call is not None  # an "offer" comes with both
        if leg.transfer_id:
            prompt = self.summaries.whisper(leg)
        else:
            callback_to = self._callback_number(call.id)  # the caller's number, or the one a web caller gave
            prompt = Whisper(
                announcement=(
                    f"Callback for {spoken_number(callback_to)}. Accept, and we dial them."
                    if callback_to is not None
                    else "Incoming web call from the website."
                    if call.channel == "web"
                    else f"Incoming call from {spoken_number(call.from_number)}."
                ),
                keys=Webhook.to(Dest.LEG_GATHER, leg=leg.id),
                wait_s=L.GATHER_TIMEOUT_S,
            )
        self._whisper_served(leg.id, prompt, OFFER)
        return prompt

    def _callback_number(self, call_id: str) -> str | None:
        """The number a waiting callback will be dialled at, or None if the call is no callback."""

        def read(uow: UnitOfWork) -> str | None:
            entry = uow.queue.live(call_id)
            return (entry.callback_number or "") if entry is not None and entry.kind == Q.CALLBACK else None

        return self.units.read(read)

    def leg_digits(self, leg_id: str, digits: str, again: bool = False) -> Reply:
        """A key (or none: Twilio posts empty Digits when the wait after the prompt ran out). No
        key or a wrong one asks once more, on a budget of its own; the second time ends the offer."""

        def work(uow: UnitOfWork) -> tuple[str, Leg | None]:
            leg = uow.legs.get(leg_id)
            if leg is None:
                return "gone", None
            if digits == "1":
                return ("accepted" if self.accept_leg(uow, leg) else "taken"), leg
            if leg.state != L.RINGING:
                return "taken", leg
            if digits == "2":
                self.legs.end_leg(uow, leg, "decline", "declined by key 2")
            elif not again:
                return ("silence" if not digits else "retry"), leg
            else:
                self.legs.end_leg(uow, leg, "no_answer", "no key pressed" if not digits else "no valid key")
            self.after_leg_failed(uow, leg)
            return "ended", leg

        verdict, leg = self.units.run(work)
        if verdict == "gone" or leg is None:  # the leg no longer exists: as any other ending
            return Goodbye()
        if verdict == "accepted":
            return self.answers.leg_bridge(leg)
        if verdict in ("silence", "retry"):
            assert leg is not None
            opening = "I did not hear a key." if verdict == "silence" else "Sorry, that key does nothing here."
            prompt = WhisperAgain(
                message=f"{opening} {WHISPER_PROMPT}",
                keys=Webhook.to(Dest.LEG_GATHER, leg=leg.id, again=1),
                wait_s=L.GATHER_TIMEOUT_S,
            )
            self._whisper_served(leg.id, prompt, AGAIN)
            return prompt
        if verdict == "taken":
            return Goodbye(ALREADY_ANSWERED)
        return Goodbye("Goodbye." if verdict == "ended" else None)

    def leg_bridge_for(self, leg_id: str) -> Reply:
        leg = self.units.read(lambda uow: uow.legs.get(leg_id))
        if leg is None or leg.state not in (L.ACCEPTED, L.JOINED):
            return Goodbye()
        return self.answers.leg_bridge(leg)

    def leg_status(self, leg_id: str, status: str, call_sid: str | None) -> None:
        """Twilio status callback of an agent's phone call."""

        def work(uow: UnitOfWork) -> None:
            leg = uow.legs.get(leg_id)
            if leg is None:
                return
            if call_sid and not leg.twilio_sid:
                uow.compare_and_set(leg, twilio_sid=call_sid)
            if status == "in-progress" and leg.state == L.RINGING and leg.kind == "phone":
                self._answered(uow, leg)
            elif status in L.TWILIO_END_EVENTS and leg.state == L.RINGING:
                self.legs.end_leg(uow, leg, L.TWILIO_END_EVENTS[status], f"phone {status}")
                self.after_leg_failed(uow, leg)
            elif status == "completed":
                if leg.state == L.RINGING:
                    self.legs.end_leg(uow, leg, "no_answer", "hung up before accepting")
                    self.after_leg_failed(uow, leg)
                elif leg.state in (L.ACCEPTED, L.JOINED):
                    self.leg_left(uow, leg, "agent hung up")

        self.units.run(work)

    def leg_dial_ended(self, leg_id: str) -> Reply:
        """The agent's <Dial> into the room ended: the agent's phone call ends too."""
        return Goodbye()

    # ------------------------------------------------------------- leaving
    def leg_left(self, uow: UnitOfWork, leg: Leg, reason: str) -> None:
        if not self.legs.end_leg(uow, leg, "leave", reason):
            return
        if leg.transfer_id or self.transfers.involves(uow, leg):
            self.transfers.on_agent_left(uow, leg)
            return
        call = uow.calls.get(leg.call_id, fresh=True)
        if call is not None and call.state == C.QUEUED and not uow.legs.live(call.id, transfer_id=None):
            self.routing.queue_offer_failed(uow, call)  # accepted, then left before the caller came
            return
        if call is None or call.state != C.CONNECTED or call.room != leg.room:
            return
        others = [leg_ for leg_ in uow.legs.live(call.id) if leg_.room == call.room and leg_.state == L.JOINED]
        if not others:
            # The last agent hung up outside a transfer: end the call politely, never leave dead air.
            self.end_for_caller(uow, call, leg.agent_id)

    def agent_leave_room(self, agent_id: str, room: str) -> bool:
        """The agent leaves a room from the console: their leg ends and LiveKit removes them."""

        def work(uow: UnitOfWork) -> bool:
            present = uow.legs.of_agent(agent_id, states=(L.ACCEPTED, L.JOINED))
            leg = next((leg for leg in present if leg.room == room), None)
            if leg is None:
                return False
            uow.jobs.add(J.RemoveParticipant(room, leg.identity or "", leg.call_id))
            self.leg_left(uow, leg, "left from the console")
            return True

        return self.units.run(work)

    def agent_end_call(self, agent_id: str, call_id: str) -> bool:
        """The agent pressed hang up: the caller hears goodbye, every leg ends."""

        def work(uow: UnitOfWork) -> bool:
            call = uow.calls.get(call_id)
            if call is None or call.state == C.ENDED or call.agent_id != agent_id:
                return False
            self.end_for_caller(uow, call, agent_id)
            return True

        return self.units.run(work)

    def end_for_caller(self, uow: UnitOfWork, call: Call, agent_id: str | None) -> None:
        """The agent ended the call: the caller hears goodbye. The reason is kept on the call at once:
        the caller's <Dial> ends as the agent leaves the room (often before our redirect lands), and
        that ending must read as the agent's hang-up, not as a lost bridge to re-route; the caller's
        final status callback then records the call as ended by the agent."""
        uow.timeline.record(call.id, "agent_ended_call", agent_id=agent_id)
        self.routing.send_caller_to_goodbye(uow, call, end_reason=C.AGENT_ENDED)


def spoken_number(number: str) -> str:
    """Digits read one by one, so TTS does not say 'fifteen billion…'; a withheld number says so
    (its keypad spelling, "+266696687", is no one's number)."""
    if callable_number(number) is None:
        return "a withheld number"
    return " ".join(ch for ch in number if ch.isdigit())
