"""Structured logs and Prometheus metrics.

Logs: one JSON object a line (ts, level, logger, msg, and call_id / transfer_id when passed
with ``extra=``). A filter masks every E.164-looking number to its last four digits, and
only those fields leave the process, so a transcript or summary passed in ``extra`` never
reaches the logs (never put one in a message either).

Metrics: webhook latency is timed per URL rule here; provider errors and rejected requests
are counted by gateway.metrics; active calls, transfers by outcome, time to summary and
time to reach B, and the queues (callers waiting and the longest wait per team, entries by
outcome, time waited until answered, offer-to-answer time) are read from the store at scrape
time, so every gunicorn worker reports the same figures and nothing has to be fed from the services.
"""

from __future__ import annotations

import bisect
import json
import logging
import os
import re
import sys
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TextIO

import click
from flask import g, request
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Histogram, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString
from sqlalchemy import func, select

from gateway.adapters.store import Store
from gateway.adapters.store.models import Call, QueueEntry, TimelineEntry, Transfer, utcnow
from gateway.domain import calls as C
from gateway.domain import queues as Q
from gateway.domain import transfers as T

log = logging.getLogger(__name__)

# ------------------------------------------------------------------------------- logging
PHONE_NUMBER = re.compile(r"(?<!\d)(?:\+|%2[Bb])[1-9]\d{6,14}(?!\d)")  # also URL-encoded (%2B…)
CONTEXT_FIELDS = ("call_id", "transfer_id")


def mask_phone_numbers(text: str) -> str:
    return PHONE_NUMBER.sub(lambda m: "…" + m.group()[-4:], text)


class PhoneNumberFilter(logging.Filter):
    """Rewrites the formatted message with phone numbers masked (on the handler, so it
    covers records from every logger, including werkzeug's and gunicorn's)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is logging's problem to report, not ours
            return True
        record.msg, record.args = mask_phone_numbers(message), None
        return True


# Terminal colour codes: werkzeug colours its request lines when stderr is a terminal, and a JSON
# log line must carry the text, not the escape sequences.
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": ANSI_ESCAPE.sub("", record.getMessage()),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exc"] = mask_phone_numbers(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


class _JsonHandler(logging.StreamHandler[TextIO]):
    gateway_json = True  # marks it, so installing twice adds nothing


def json_handler(stream: TextIO) -> logging.Handler:
    handler = _JsonHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(PhoneNumberFilter())
    return handler


class PlainFormatter(logging.Formatter):
    """One line a person reads: ``warning: SANDBOX MODE: …``."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{record.levelname.lower()}: {record.getMessage()}"
        if record.exc_info:
            line += "\n" + mask_phone_numbers(self.formatException(record.exc_info))
        return line


def _command_in_a_terminal(stream: TextIO) -> bool:
    """A CLI command (flask --app gateway …, the gateway script) whose diagnostics a person reads.
    The server (gunicorn, python -m gateway) builds its app outside any click command."""
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        return False
    return tty and click.get_current_context(silent=True) is not None


def install_logging(level: str) -> None:
    """Diagnostics on stderr from the root logger, never stdout (a command's data goes there):
    JSON lines for the server and for anything read by a machine; plain lines for a CLI command
    in a terminal. Replaces a plain ``basicConfig`` handler."""
    root = logging.getLogger()
    if any(getattr(h, "gateway_json", False) for h in root.handlers):
        return
    for plain in [h for h in root.handlers if type(h) is logging.StreamHandler]:
        root.removeHandler(plain)
    handler = json_handler(sys.stderr)
    if _command_in_a_terminal(sys.stderr):
        handler.setFormatter(PlainFormatter())
    root.addHandler(handler)
    root.setLevel(level)
    # The twilio client logs every REST request at INFO (method, URL, each header): one line per
    # header on a busy gateway. Our own job and timeline records already say what was done.
    logging.getLogger("twilio.http_client").setLevel(max(logging.WARNING, root.level))


# ------------------------------------------------------------------------------- metrics
WEBHOOK_SECONDS = Histogram(
    "gateway_webhook_duration_seconds",
    "Time to answer a provider webhook, by URL rule and status.",
    ["endpoint", "status"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15),  # Twilio gives up at 15 s
)
TIMED_PREFIXES = ("/twilio/", "/livekit/")
SUMMARY_BUCKETS = (0.25, 0.5, 1, 2, 3, 5, 10, 30)
TARGET_BUCKETS = (5, 10, 15, 20, 30, 45, 60, 120, 300)
QUEUE_WAIT_BUCKETS = (10, 20, 30, 60, 120, 300, 600)
OFFER_BUCKETS = (1, 2, 5, 10, 15, 20, 30, 60)


def start_timer() -> None:
    g.ops_started = time.perf_counter()


def observe_webhook(response):
    started = g.pop("ops_started", None)
    rule = request.url_rule
    if started is not None and rule is not None and rule.rule.startswith(TIMED_PREFIXES):
        WEBHOOK_SECONDS.labels(endpoint=rule.rule, status=str(response.status_code)).observe(
            time.perf_counter() - started
        )
    return response


def _histogram(
    name: str, documentation: str, label: str, samples: dict[str, list[float]], bounds: tuple[float, ...]
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation, labels=[label])
    for value, observations in sorted(samples.items()):
        observations = sorted(observations)
        buckets = [(floatToGoString(b), bisect.bisect_right(observations, b)) for b in bounds]
        family.add_metric([value], buckets + [("+Inf", len(observations))], sum_value=sum(observations))
    return family


class StoreCollector:
    """Figures read from the database when Prometheus scrapes."""

    def __init__(self, store: Store):
        self.store = store

    def collect(self) -> Iterable:
        up = GaugeMetricFamily("gateway_store_up", "1 when the store could be read for this scrape.")
        try:
            active, outcomes, summary, target = self.store.read(self._read)
            queues = self.store.read(self._read_queues)
        except Exception:
            log.warning("metrics: reading the store failed", exc_info=True)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield GaugeMetricFamily("gateway_active_calls", "Calls that have not ended.", value=active)
        ended = CounterMetricFamily("gateway_transfers", "Transfers that ended, by outcome.", labels=["outcome"])
        for state in T.TERMINAL:
            ended.add_metric([state], outcomes.get(state, 0))
        yield ended
        yield _histogram(
            "gateway_transfer_summary_seconds",
            "From transfer initiated to its summary ready, by source.",
            "source",
            summary,
            SUMMARY_BUCKETS,
        )
        yield _histogram(
            "gateway_transfer_target_seconds",
            "From transfer initiated to target B connected, by mode.",
            "mode",
            target,
            TARGET_BUCKETS,
        )
        yield from self._queue_families(*queues)

    @staticmethod
    def _queue_families(waiting, ended, waited, offer_to_answer):
        now = utcnow()
        count = GaugeMetricFamily("gateway_queue_waiting", "Callers waiting in a team's line now.", labels=["team"])
        longest = GaugeMetricFamily(
            "gateway_queue_longest_wait_seconds",
            "How long the team's longest-waiting caller has waited.",
            labels=["team"],
        )
        for team, (n, oldest) in sorted(waiting.items()):
            count.add_metric([team], n)
            longest.add_metric([team], max(0.0, (now - oldest).total_seconds()) if oldest else 0.0)
        yield count
        yield longest
        entries = CounterMetricFamily(
            "gateway_queue_entries",
            "Queue entries that ended, by team, kind (caller, callback, transfer) and outcome "
            "(answered, abandoned, timed_out, left, missed).",
            labels=["team", "kind", "outcome"],
        )
        for (team, kind, outcome), n in sorted(ended.items()):
            entries.add_metric([team, kind, outcome], n)
        yield entries
        yield _histogram(
            "gateway_queue_answered_wait_seconds",
            "Time answered callers waited in line, by team (answered within N seconds: the buckets).",
            "team",
            waited,
            QUEUE_WAIT_BUCKETS,
        )
        yield _histogram(
            "gateway_queue_offer_to_answer_seconds",
            "From a waiting caller offered to an agent to that agent in the room with them, by team.",
            "team",
            offer_to_answer,
            OFFER_BUCKETS,
        )

    @staticmethod
    def _read_queues(session):
        waiting = {
            team: (n, oldest)
            for team, n, oldest in session.execute(
                select(QueueEntry.team_id, func.count(), func.min(QueueEntry.enqueued_at))
                .where(QueueEntry.state.in_(Q.LIVE))
                .group_by(QueueEntry.team_id)
            ).all()
        }
        ended = {
            (team, kind, state): n
            for team, kind, state, n in session.execute(
                select(QueueEntry.team_id, QueueEntry.kind, QueueEntry.state, func.count())
                .where(QueueEntry.state.in_(Q.TERMINAL))
                .group_by(QueueEntry.team_id, QueueEntry.kind, QueueEntry.state)
            ).all()
        }
        waited: dict[str, list[float]] = {}
        offer_to_answer: dict[str, list[float]] = {}
        for team, wait_s, offered_at, ended_at in session.execute(
            select(QueueEntry.team_id, QueueEntry.wait_s, QueueEntry.offered_at, QueueEntry.ended_at).where(
                QueueEntry.state == Q.ANSWERED
            )
        ).all():
            waited.setdefault(team, []).append(wait_s or 0.0)
            if offered_at and ended_at:
                offer_to_answer.setdefault(team, []).append((ended_at - offered_at).total_seconds())
        return waiting, ended, waited, offer_to_answer

    @staticmethod
    def _read(session):
        active = session.scalar(select(func.count()).select_from(Call).where(Call.state != C.ENDED))
        outcomes = dict(
            session.execute(
                select(Transfer.state, func.count()).where(Transfer.state.in_(T.TERMINAL)).group_by(Transfer.state)
            ).all()
        )
        rows = session.execute(
            select(TimelineEntry.kind, TimelineEntry.detail, TimelineEntry.at, Transfer.created_at, Transfer.mode)
            .join(Transfer, (TimelineEntry.call_id == Transfer.call_id) & (TimelineEntry.transfer_id == Transfer.id))
            .where(TimelineEntry.kind.in_(("summary_ready", "transfer_target_accepted")))
        ).all()
        summary: dict[str, list[float]] = {}
        target: dict[str, list[float]] = {}
        for kind, detail, at, created_at, mode in rows:
            if kind == "summary_ready":
                elapsed_ms = (detail or {}).get("elapsed_ms")
                seconds = elapsed_ms / 1000 if elapsed_ms is not None else (at - created_at).total_seconds()
                summary.setdefault((detail or {}).get("source", "unknown"), []).append(seconds)
            else:
                target.setdefault(mode, []).append((at - created_at).total_seconds())
        return active, outcomes, summary, target


class _Combined:
    """Several collectors read as one registry."""

    def __init__(self, *sources):
        self.sources = sources

    def collect(self):
        for source in self.sources:
            yield from source.collect()


class BoardCollector:
    """The supervisor board's figures of the day (services/board.py), per team and overall
    (team="all"): what a wallboard or a BI tool scrapes."""

    def __init__(self, board: Any):
        self.board = board

    def collect(self) -> Iterable:
        try:
            figures = self.board.figures()
        except Exception:
            log.warning("metrics: reading the board's figures failed", exc_info=True)
            return
        calls = GaugeMetricFamily(
            "gateway_board_calls_today",
            "Calls since UTC midnight by team and outcome (offered, answered, abandoned, voicemail, in_progress).",
            labels=["team", "outcome"],
        )
        level = GaugeMetricFamily(
            "gateway_board_service_level",
            "Today's share of callers answered within SERVICE_LEVEL_S (of those whose wait is over).",
            labels=["team"],
        )
        wait = GaugeMetricFamily(
            "gateway_board_average_wait_seconds", "Today's average wait to answer.", labels=["team"]
        )
        handle = GaugeMetricFamily(
            "gateway_board_average_handle_seconds", "Today's average handle time (connected to end).", labels=["team"]
        )
        transfers = GaugeMetricFamily(
            "gateway_board_transfers_today",
            "Transfers initiated today by team and outcome.",
            labels=["team", "outcome"],
        )
        connect = GaugeMetricFamily(
            "gateway_board_transfer_connect_median_seconds",
            "Today's median time from transfer initiated to B connected.",
            labels=["team"],
        )
        scopes = [("all", figures["overall"]), *sorted(figures["teams"].items())]
        for team, f in scopes:
            for outcome in ("offered", "answered", "abandoned", "voicemail", "in_progress"):
                calls.add_metric([team, outcome], f[outcome])
            for family, value in (
                (level, f["service_level"]),
                (wait, f["average_wait_s"]),
                (handle, f["average_handle_s"]),
            ):
                if value is not None:
                    family.add_metric([team], value)
            for outcome, n in f["transfers"]["by_outcome"].items():
                transfers.add_metric([team, outcome], n)
            if f["transfers"]["median_initiate_to_connected_s"] is not None:
                connect.add_metric([team], f["transfers"]["median_initiate_to_connected_s"])
        yield from (calls, level, wait, handle, transfers, connect)


def exposition(store: Store, board: Any = None) -> tuple[bytes, str]:
    """The /metrics body. Under gunicorn with PROMETHEUS_MULTIPROC_DIR set the counters and
    histograms come from every worker's files, not just this process."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        counters = CollectorRegistry()
        multiprocess.MultiProcessCollector(counters)
    else:
        counters = REGISTRY
    sources = [counters, StoreCollector(store)] + ([BoardCollector(board)] if board is not None else [])
    return generate_latest(_Combined(*sources)), CONTENT_TYPE_LATEST
