"""API keys: server-to-server credentials for integrators, next to the agents' own credentials.

A key reads ``GWK_<12 hex id>_<secret>``: upper case, so it can never be an agent's credential
(``<agent id>.<secret>``, agent ids are lower case). Only a SHA-256 digest of it is stored (it is 32
random bytes: no dictionary to attack); it is shown once, when made. ``read`` keys read call data
and the webhook delivery log; ``write`` keys may also use the admin API and replay deliveries.
Keys never act as an agent (accept, transfer, notes): an agent's work is an agent's.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gateway.adapters.store import Store
from gateway.adapters.store.models import ApiKey, utcnow

READ, WRITE = "read", "write"
LAST_USED_EVERY = timedelta(minutes=1)
SCOPES = (READ, WRITE)
PREFIX = "GWK_"
KEY = re.compile(r"^GWK_([0-9a-f]{12})_([A-Za-z0-9_-]{20,100})$")


# What the API answers a key where it may not go (403), here so the API and its document agree.
NOT_AN_AGENT = (
    "an API key cannot act as an agent: it reads calls, transfers and the webhook delivery log, and a "
    "write key uses the admin API and replay; sign in as an agent for this"
)
READ_ONLY = "this API key is read-only (scope read): make a write key with `api-keys add NAME --scope write`"
UNKNOWN = "unknown or revoked API key (Authorization: Bearer GWK_…)"


class InvalidApiKey(ValueError):
    pass


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def looks_like_key(token: str) -> bool:
    return token.startswith(PREFIX)


def key_id(token: str) -> str:
    """The id a presented key claims (for throttling failures per key), or '?'."""
    match = KEY.match(token)
    return f"key_{match.group(1)}" if match else "?"


class ApiKeys:
    def __init__(self, store: Store):
        self.store = store

    def add(self, name: str, scope: str) -> tuple[dict[str, Any], str]:
        """A new key: its record and the key itself (shown once)."""
        name = (name or "").strip()
        if not name or len(name) > 120:
            raise InvalidApiKey("an API key needs a name (1-120 characters), e.g. the integration it is for")
        if scope not in SCOPES:
            raise InvalidApiKey(f"scope must be one of {', '.join(SCOPES)}, got {scope!r}")
        hex_id = secrets.token_hex(6)
        token = f"{PREFIX}{hex_id}_{secrets.token_urlsafe(32)}"
        row = ApiKey(id=f"key_{hex_id}", name=name, scope=scope, secret_hash=_hash(token), created_at=utcnow())

        def work(session: Session) -> dict[str, Any]:
            session.add(row)
            return as_dict(row)

        return self.store.run(work), token

    def list(self) -> list[dict[str, Any]]:
        return self.store.read(
            lambda s: [as_dict(k) for k in s.execute(select(ApiKey).order_by(ApiKey.created_at)).scalars()]
        )

    def revoke(self, key: str) -> dict[str, Any]:
        """Revoke by id (key_…): refused at once on every worker (each request reads the row)."""

        def work(session: Session) -> dict[str, Any]:
            row = session.get(ApiKey, key)
            if row is None:
                raise InvalidApiKey(f"no API key {key!r} (see `api-keys list`)")
            if row.revoked_at is None:
                row.revoked_at = utcnow()
            return as_dict(row)

        return self.store.run(work)

    def authenticate(self, token: str) -> dict[str, Any] | None:
        """The key's record if ``token`` is a live key, else None."""
        match = KEY.match(token or "")
        if not match:
            return None
        row = self.store.peek(ApiKey, f"key_{match.group(1)}")  # on every API request: no ORM session
        if row is None or row.revoked_at is not None or not hmac.compare_digest(row.secret_hash, _hash(token)):
            return None
        now = utcnow()
        if row.last_used_at is None or now - row.last_used_at > LAST_USED_EVERY:
            # At most one write a minute per key: enough for `api-keys list` to say which keys are in use.
            self.store.run(lambda s: s.execute(update(ApiKey).where(ApiKey.id == row.id).values(last_used_at=now)))
        return {"id": row.id, "name": row.name, "scope": row.scope}


def as_dict(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "name": key.name,
        "scope": key.scope,
        "created_at": key.created_at.isoformat(timespec="seconds") + "Z",
        "revoked_at": _iso(key.revoked_at),
        "last_used_at": _iso(key.last_used_at),
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") + "Z" if moment else None
