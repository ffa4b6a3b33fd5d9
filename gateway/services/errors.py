"""Why a service refused a request, as a kind; the web layer maps each kind to an HTTP status."""

from __future__ import annotations

from enum import StrEnum


class Refusal(StrEnum):
    INVALID = "invalid"  # the request itself is wrong (a bad field, an impossible target)
    NOT_FOUND = "not_found"  # what it names does not exist
    FORBIDDEN = "forbidden"  # it exists, but it is not this agent's to do
    CONFLICT = "conflict"  # not now: the state of the call or the transfer does not allow it
    GONE = "gone"  # not any more: what it names is over for good (an ended call)


class ServiceError(Exception):
    """A request the rules refuse; nothing changed."""

    def __init__(self, kind: Refusal, message: str):
        super().__init__(message)
        self.kind = kind
