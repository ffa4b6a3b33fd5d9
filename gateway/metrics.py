"""Counters the services feed: in-process tallies, mirrored into Prometheus counters.

The Prometheus counters are module-level because a registry accepts each name once per
process (tests build many apps). Under gunicorn with PROMETHEUS_MULTIPROC_DIR set they
write to per-worker files that /metrics merges.
"""

from __future__ import annotations

import re
from collections import Counter

from prometheus_client import Counter as PrometheusCounter

PROVIDER_ERRORS = PrometheusCounter(
    "gateway_provider_errors", "Provider calls that failed for good, by provider and kind.", ["provider", "kind"]
)
REJECTED = PrometheusCounter("gateway_rejected_requests", "Requests refused, e.g. a bad webhook signature.", ["reason"])


def label(value: str) -> str:
    """A short, safe label value: callers pass error kinds, never free text, but a stray
    message must not explode the number of series."""
    return re.sub(r"[^a-z0-9_.-]+", "_", str(value).lower())[:40] or "unknown"


class Metrics:
    """In-process tallies (``counts``) plus the Prometheus counters /metrics exports."""

    def __init__(self) -> None:
        self.counts: Counter = Counter()

    def rejected(self, reason: str) -> None:
        self.counts[f"rejected:{reason}"] += 1
        REJECTED.labels(reason=label(reason)).inc()

    def provider_error(self, provider: str, kind: str) -> None:
        self.counts[f"provider_error:{provider}:{kind}"] += 1
        PROVIDER_ERRORS.labels(provider=label(provider), kind=label(kind)).inc()
