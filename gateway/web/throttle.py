"""Failure throttles: sign-in, agent Bearer and admin tokens, summary resends; web calls placed.

Counted per process, in memory (a fixed window per key): with W workers a guesser gets at most
W times the budget, still far too few tries against a 192-bit credential, and no database write
is spent on a refused request. A key over its budget is refused with 429 and ``Retry-After``
until its window ends, even when the next credential it presents is right: that is what makes
guessing stop paying.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    name: str
    count: int  # failures (or uses) allowed per window
    window_s: float


# The figures the README's Operations section quotes.
SIGN_IN_PER_ADDRESS = Limit("sign-in per address", 10, 300)
SIGN_IN_PER_AGENT = Limit("sign-in per agent", 10, 300)
BEARER_PER_ADDRESS = Limit("credential per address", 20, 300)
BEARER_PER_AGENT = Limit("credential per agent", 10, 300)
ADMIN_PER_ADDRESS = Limit("admin token per address", 10, 300)
RESEND_PER_TRANSFER = Limit("summary resends per transfer", 3, 600)
RESEND_PER_AGENT = Limit("summary resends per agent", 10, 3600)
WEB_CALLS_PER_ADDRESS = Limit("web calls per address", 5, 600)
WEB_CALLS_ALL = Limit("web calls from all addresses", 60, 60)
WEB_REJOINS_PER_ADDRESS = Limit("web call rejoins per address", 20, 600)
WEB_REJOINS_PER_CALL = Limit("rejoins per web call", 10, 600)
WEB_CALLBACKS_PER_ADDRESS = Limit("web callback requests per address", 10, 600)
WEB_CALLBACKS_PER_CALL = Limit("callback requests per web call", 5, 600)
STREAMS_PER_AGENT = 3  # open console event streams per agent, per process


class Throttle:
    MAX_KEYS = 50_000  # a flood of distinct keys cannot grow memory without bound

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, str], tuple[float, int]] = {}  # (limit, key) -> (window start, count)

    def retry_after(self, limit: Limit, key: str) -> int | None:
        """Seconds until ``key`` may try again, or None when it is within its budget."""
        now = self._clock()
        with self._lock:
            start, count = self._windows.get((limit.name, key), (now, 0))
            if now - start >= limit.window_s or count < limit.count:
                return None
            return max(1, math.ceil(start + limit.window_s - now))

    def hit(self, limit: Limit, key: str) -> None:
        """Count one failure (or one use) against ``key``."""
        now = self._clock()
        with self._lock:
            if len(self._windows) >= self.MAX_KEYS:
                self._windows = {k: v for k, v in self._windows.items() if now - v[0] < 3600}
                if len(self._windows) >= self.MAX_KEYS:
                    self._windows.clear()
            start, count = self._windows.get((limit.name, key), (now, 0))
            if now - start >= limit.window_s:
                start, count = now, 0
            self._windows[(limit.name, key)] = (start, count + 1)
