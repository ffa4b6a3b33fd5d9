"""Warm and cold transfers: what an agent asks for (initiate, complete, leave, cancel).

What happens afterwards, as B's phone rings, answers or fails and agents join or leave, is the
process manager's (``transfer_events``); the moves both use are in ``transfer_moves``.
"""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from gateway.adapters.store.db import new_id
from gateway.adapters.store.models import Agent, Call, Leg, Note, Team, Transfer, utcnow
from gateway.domain import agents as agent_rules
from gateway.domain import calls as C
from gateway.domain import legs as L
from gateway.domain import queues as Q
from gateway.domain import summary as S
from gateway.domain import transfers as T
from gateway.services import job_types as J
from gateway.services.errors import Refusal, ServiceError
from gateway.services.ports import Dest, Gateway
from gateway.services.queues import Queues
from gateway.services.transfer_moves import TransferMoves
from gateway.services.uow import UnitOfWork, UnitsOfWork


class TransferError(ServiceError):
    """A request the transfer rules refuse (``kind``: why; the web layer picks the status)."""


class TransferService:
    def __init__(self, gw: Gateway, moves: TransferMoves, queues: Queues):
        self.gw, self.moves, self.queues = gw, moves, queues
        self.units: UnitsOfWork = gw.store

    def get(self, transfer_id: str) -> Transfer | None:
        return self.units.read(lambda uow: uow.transfers.get(transfer_id))

    # ---------------------------------------------------------- initiate
    def initiate(
        self,
        *,
        agent_id: str,
        call_id: str,
        target_agent_id: str | None,
        target_number: str | None,
        mode: str,
        notes: str | None,
        target_team: str | None = None,
    ) -> Transfer:
        if mode not in ("warm", "cold"):
            raise TransferError(Refusal.INVALID, "mode must be warm or cold")
        if sum(1 for t in (target_agent_id, target_number, target_team) if t) != 1:
            raise TransferError(
                Refusal.INVALID, "give exactly one target: target_agent_id, target_number or target_team"
            )
        if target_number and not agent_rules.E164.match(target_number):
            raise TransferError(Refusal.INVALID, f"target_number {target_number!r} is not an E.164 number")

        def work(uow: UnitOfWork) -> Transfer:
            nonlocal target_agent_id
            call, source_leg = self._transferable_call(uow, call_id, agent_id)
            team = None
            if target_team:
                # The team's first free member (longest idle), offered as any target is; none: A decides.
                team = self._team_with_someone(uow, target_team)
                member = self.queues.free_agent(uow, team.id, tried=[agent_id])
                target_agent_id = member.id if member is not None else None
            target = self._available_target(uow, target_agent_id, agent_id) if target_agent_id else None
            transfer = Transfer(
                id=new_id("xfer"),
                call_id=call.id,
                source_agent_id=agent_id,
                source_leg_id=source_leg.id,
                target_agent_id=target_agent_id,
                target_number=target_number,
                target_team=target_team,
                mode=mode,
                state=T.INITIATED,
                active_call_id=call.id,
                consult_room=self.gw.room_name("x" + new_id("")[1:]),
                notes=S.redact(notes.strip()) if notes else None,
                created_at=utcnow(),  # now, not at the commit: offered_at (set before it) follows it
            )
            # Inserted with the rest at commit, where the unique active_call_id refuses a concurrent
            # second transfer (IntegrityError below): until then its changes are plain attributes.
            uow.transfers.add(transfer)
            if notes:
                uow.calls.add_note(Note(call_id=call.id, agent_id=agent_id, text=transfer.notes))
            uow.timeline.record(
                call.id,
                "transfer_initiated",
                transfer_id=transfer.id,
                agent_id=agent_id,
                mode=mode,
                target=target_agent_id or agent_rules.mask_phone(target_number) or target_team,
                **({"team": target_team} if target_team else {}),
            )
            if team is not None and target is None:
                self._team_busy(uow, transfer, team)
                return transfer
            self._start(uow, transfer, call, target)
            return transfer

        try:
            return self.units.run(work)
        except IntegrityError:  # the call's one active transfer (a unique key) was taken meanwhile
            raise TransferError(Refusal.CONFLICT, "a transfer is already in progress for this call") from None

    @staticmethod
    def _transferable_call(uow: UnitOfWork, call_id: str, agent_id: str) -> tuple[Call, Leg]:
        """The call and A's joined leg in its room, if A may transfer it now."""
        # One round trip: the call, A's leg in its room, and any transfer already active.
        found = uow.transfers.transferable(call_id, agent_id)
        if found is None:
            raise TransferError(Refusal.NOT_FOUND, "unknown call")
        call, source_leg, active_transfer_id = found
        if call.agent_id != agent_id:
            raise TransferError(Refusal.FORBIDDEN, "only the agent currently on this call may transfer it")
        if active_transfer_id is not None:
            raise TransferError(Refusal.CONFLICT, "a transfer is already in progress for this call")
        if source_leg is None:
            raise TransferError(Refusal.CONFLICT, "you are not connected to this call's room")
        if call.state != C.CONNECTED:
            raise TransferError(Refusal.CONFLICT, f"the call is {call.state}, not connected")
        return call, source_leg

    def _team_with_someone(self, uow: UnitOfWork, team_id: str) -> Team:
        team = self.queues.team(uow, team_id)
        if team is None:
            raise TransferError(Refusal.NOT_FOUND, f"unknown team {team_id!r}")
        if not self.queues.staffed(uow, team.id):
            raise TransferError(Refusal.CONFLICT, f"no one in {team.name} is signed in")
        return team

    def _team_busy(self, uow: UnitOfWork, transfer: Transfer, team: Team) -> None:
        """Nobody in the team is free: A hears how long the caller would wait, and chooses."""
        ahead = uow.queue.waiting_at_least(team.id, Q.PRIORITY_TRANSFER)
        wait_s = Q.estimate_wait_s(ahead + 1, self.queues.staffed(uow, team.id), self.queues.handle_times(uow, team.id))
        notice = T.team_busy_notice(team.name, wait_s)
        self.moves.apply(uow, transfer, "team_busy", end_reason=notice)
        uow.timeline.record(
            transfer.call_id,
            "transfer_team_wait",
            transfer_id=transfer.id,
            team=team.id,
            wait_s=round(wait_s) if wait_s is not None else None,
        )

    def queue(self, transfer_id: str, agent_id: str) -> Transfer:
        """A keeps the caller in the busy team's line: on hold at transfer priority, the summary
        made now for whoever takes them; A is free. The transfer ends as queued."""

        def work(uow: UnitOfWork) -> Transfer:
            transfer = self._owned(uow, transfer_id, agent_id)
            if transfer.state == T.QUEUED:
                return transfer  # double click
            if transfer.state != T.TEAM_BUSY or not transfer.target_team:
                raise TransferError(Refusal.CONFLICT, f"cannot queue now: transfer is {transfer.state}")
            call = self.moves.call_of(uow, transfer)
            self.moves.apply(uow, transfer, "queue", end_reason=f"queued in {transfer.target_team}")
            uow.jobs.add(J.Summarize(transfer.id))
            uow.compare_and_set(call, team_id=transfer.target_team)
            uow.transition(call, C.CALL, "hold")
            uow.compare_and_set(call, caller_identity=None, agent_id=None)
            source = uow.legs.get(transfer.source_leg_id, fresh=True) if transfer.source_leg_id else None
            if source is not None and source.state in L.LIVE:
                # A is done with this caller (free for the next one); their participant goes.
                self.moves.legs.end_leg(uow, source, "cancel", "caller queued in another team")
            uow.transition(call, C.CALL, "enqueue")
            self.queues.enqueue(
                uow,
                call,
                team_id=transfer.target_team,
                priority=Q.PRIORITY_TRANSFER,
                kind="transfer",
                transfer_id=transfer.id,
            )
            uow.jobs.add(J.RedirectCaller(call.id, Dest.QUEUE))
            self.queues.dispatch(uow, transfer.target_team)  # someone freed up meanwhile: at once
            self.queues.sweep_later(uow, [transfer.target_team])
            return transfer

        return self.units.run(work)

    @staticmethod
    def _available_target(uow: UnitOfWork, target_agent_id: str, agent_id: str) -> Agent:
        target = uow.agents.get(target_agent_id, fresh=True)
        if target is None:
            raise TransferError(Refusal.NOT_FOUND, "unknown target agent")
        if target.id == agent_id:
            raise TransferError(Refusal.INVALID, "cannot transfer to yourself")
        if target.status != agent_rules.AVAILABLE:
            raise TransferError(Refusal.CONFLICT, f"{target.name} is {target.status}")
        return target

    def _start(self, uow: UnitOfWork, transfer: Transfer, call: Call, target: Agent | None) -> None:
        """Everything at once: summary, hold, consult room, B rung."""
        # Summary first: it runs while B is being reached, never after.
        uow.jobs.add(J.Summarize(transfer.id))
        uow.jobs.add(
            J.SummaryDeadline(transfer.id),
            delay_s=self.gw.settings.summary_deadline_s,
            timer_of=transfer.id,
        )
        uow.transition(call, C.CALL, "hold")
        uow.jobs.add(J.HoldCaller(call.id, transfer.id))
        uow.jobs.add(J.CreateRoom(call.id, transfer.consult_room, transfer.id))
        # A stays with the caller until the caller is really on hold (see on_caller_held):
        # if Twilio cannot put the caller on hold, nobody has left them alone.
        self.moves.reach_target(uow, transfer, call, target)

    # ------------------------------------------------------- agent requests
    def _owned(self, uow: UnitOfWork, transfer_id: str, agent_id: str) -> Transfer:
        transfer = self.moves.fresh(uow, transfer_id)
        if transfer is None:
            raise TransferError(Refusal.NOT_FOUND, "unknown transfer")
        if transfer.source_agent_id != agent_id:
            raise TransferError(Refusal.FORBIDDEN, "only the transferring agent may do this")
        return transfer

    def complete(self, transfer_id: str, agent_id: str) -> Transfer:
        """A says connect: bridge the caller from hold into the room where A and B are."""

        def work(uow: UnitOfWork) -> Transfer:
            transfer = self._owned(uow, transfer_id, agent_id)
            if transfer.state == T.CONFERENCED:
                return transfer  # double click
            joined = uow.legs.of_transfer(transfer.id, [L.JOINED])
            target_joined = [leg_ for leg_ in joined if leg_.agent_id != transfer.source_agent_id]
            if transfer.state != T.TARGET_ACCEPTED or not target_joined:
                raise TransferError(
                    Refusal.CONFLICT,
                    f"cannot connect now: transfer is {transfer.state}"
                    + ("" if target_joined else ", and B has not joined the consult room"),
                )
            self.moves.connect_caller(uow, transfer)
            uow.jobs.add(
                J.IntroTimeout(transfer.id),
                delay_s=self.gw.settings.intro_timeout_s,
                timer_of=transfer.id,
            )
            return transfer

        return self.units.run(work)

    def leave(self, transfer_id: str, agent_id: str) -> Transfer:
        def work(uow: UnitOfWork) -> Transfer:
            transfer = self._owned(uow, transfer_id, agent_id)
            if transfer.state == T.COMPLETED:
                return transfer
            if transfer.state != T.CONFERENCED:
                raise TransferError(Refusal.CONFLICT, f"cannot leave now: transfer is {transfer.state}")
            self.moves.drop_source(uow, transfer, "left after introduction")
            return transfer

        return self.units.run(work)

    def cancel(self, transfer_id: str, agent_id: str) -> Transfer:
        def work(uow: UnitOfWork) -> Transfer:
            transfer = self._owned(uow, transfer_id, agent_id)
            if transfer.state == T.CANCELLED:
                return transfer
            if transfer.state == T.TEAM_BUSY:  # the caller never left A: nothing to undo
                self.moves.apply(uow, transfer, "cancel", end_reason="cancelled by agent: team busy")
                return transfer
            if not self.moves.apply(uow, transfer, "cancel", end_reason="cancelled by agent"):
                raise TransferError(Refusal.CONFLICT, f"cannot cancel now: transfer is {transfer.state}")
            self.moves.return_caller(uow, transfer)
            return transfer

        return self.units.run(work)
