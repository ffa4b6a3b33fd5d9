"""Look-ups the services share inside a unit of work (the caller's call, its live legs, its transfer)."""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.adapters.store.models import Call, Leg, Transfer
from gateway.domain import legs as L
from gateway.services.uow import ANY_TRANSFER, UnitOfWork

LIVE_LEG_STATES = L.LIVE

_Row = TypeVar("_Row", Call, Leg, Transfer)


def existing(session: Session, model: type[_Row], key: str, *, fresh: bool = False) -> _Row:
    """A row that must be there: one a foreign key of a row in hand points at (rows are never deleted
    while a call is live; retention only clears transcripts and summaries). Its absence is a bug,
    reported by name rather than as an AttributeError on None."""
    row = session.get(model, key, populate_existing=fresh)
    if row is None:
        raise LookupError(f"{model.__name__} {key!r} is missing")
    return row


def call_by_sid(session: Session, sid: str) -> Call | None:
    return session.execute(select(Call).where(Call.twilio_sid == sid)).scalar_one_or_none()


def live_legs(uow: UnitOfWork, call_id: str, *, transfer_id: str | None = ANY_TRANSFER) -> list[Leg]:
    """The call's ringing, accepted and joined legs, oldest first (``LegRows.live``)."""
    return uow.legs.live(call_id, transfer_id=transfer_id)


def active_transfer(session: Session, call_id: str) -> Transfer | None:
    return session.execute(select(Transfer).where(Transfer.active_call_id == call_id)).scalar_one_or_none()
