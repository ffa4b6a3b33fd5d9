"""Database checks shared by ``doctor`` and ``/readyz``: schema, and whether LiveKit webhooks arrive."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import func, select

from gateway.adapters.store import Store
from gateway.adapters.store.db import alembic_config
from gateway.adapters.store.models import Call, WebhookReceipt, utcnow


@functools.lru_cache(maxsize=1)
def code_heads() -> tuple[str, ...]:
    """The newest migration revisions shipped with the code (read once: they cannot change at runtime)."""
    return tuple(sorted(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()))


@dataclass(frozen=True)
class Schema:
    database: tuple[str, ...]
    code: tuple[str, ...]

    @property
    def current(self) -> bool:
        return self.database == self.code

    def describe(self) -> str:
        at = f"database at {', '.join(self.database)}" if self.database else "database has no migrations applied"
        return f"{at}; code at {', '.join(self.code)}"


def schema(store: Store) -> Schema:
    """Connects, so it also proves the database is reachable (raises when it is not)."""
    with store.engine.connect() as conn:
        database = tuple(sorted(MigrationContext.configure(conn).get_current_heads()))
    return Schema(database, code_heads())


# A bridged call makes LiveKit send participant_joined within a second or two; give it this long.
WEBHOOK_GRACE_S = 30.0
WEBHOOK_WINDOW_H = 24.0
WEBHOOK_FIX = (
    "make LiveKit send webhooks to {origin}/livekit/webhook signed with LIVEKIT_API_KEY: self-hosted, "
    "webhook: {{api_key: <LIVEKIT_API_KEY>, urls: [{origin}/livekit/webhook]}} in the server config; "
    "LiveKit Cloud, Settings > Webhooks of the project, with that API key"
)


@dataclass(frozen=True)
class WebhookHealth:
    """Whether LiveKit's webhooks arrive: ``silent_calls`` calls reached LiveKit (Twilio started
    their SIP leg) after the last webhook, ``last`` (UTC, naive), long enough ago to have had one."""

    last: datetime | None
    silent_calls: int

    @property
    def ok(self) -> bool:
        return self.silent_calls == 0

    def describe(self) -> str:
        if self.ok:
            return f"last LiveKit webhook {self.last:%Y-%m-%d %H:%M:%S} UTC" if self.last else "no calls yet"
        since = f"since {self.last:%Y-%m-%d %H:%M:%S} UTC" if self.last else "ever"
        return (
            f"no LiveKit webhook has arrived {since}, though {self.silent_calls} call(s) were bridged into "
            "LiveKit rooms; calls connect only through the API fallback"
        )


def livekit_webhooks(store: Store, now: datetime | None = None) -> WebhookHealth:
    """Compare the newest LiveKit webhook receipt with the calls bridged into LiveKit since."""
    now = now or utcnow()
    with store.engine.connect() as conn:
        last = conn.execute(
            select(func.max(WebhookReceipt.at)).where(WebhookReceipt.key.like("lk:%"))
        ).scalar_one_or_none()
        since = max(last, now - timedelta(hours=WEBHOOK_WINDOW_H)) if last else now - timedelta(hours=WEBHOOK_WINDOW_H)
        silent = conn.execute(
            select(func.count(Call.id)).where(
                Call.dial_sid.is_not(None),
                Call.created_at > since,
                Call.created_at < now - timedelta(seconds=WEBHOOK_GRACE_S),
            )
        ).scalar_one()
    return WebhookHealth(last, int(silent))


def database_error(exc: BaseException) -> str:
    """The driver's own first line (no SQL, no link to SQLAlchemy's docs)."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__
