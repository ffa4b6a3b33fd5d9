"""JSON logs with masked numbers, and the figures read from the store at scrape time."""

from __future__ import annotations

import io
import json
import logging
from datetime import timedelta

from prometheus_client import generate_latest

from gateway.adapters.store import Store
from gateway.adapters.store.models import Call, TimelineEntry, Transfer, utcnow
from gateway.ops.observability import StoreCollector, install_logging, json_handler, mask_phone_numbers


def capture(log_call) -> dict:
    stream = io.StringIO()
    logger = logging.getLogger("tests.ops.capture")
    logger.addHandler(json_handler(stream))
    logger.propagate = False
    try:
        log_call(logger)
    finally:
        logger.handlers.clear()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    return json.loads(lines[0])


def test_a_log_line_is_one_json_object_with_numbers_masked():
    entry = capture(
        lambda log: log.warning(
            "caller %s joined as sip_+15557654321 (To=%s)",
            "+15557654321",
            "%2B15550100000",
            extra={"call_id": "call_1", "transfer_id": "tr_1", "transcript": "my card is 4111"},
        )
    )

    assert set(entry) == {"ts", "level", "logger", "msg", "call_id", "transfer_id"}
    assert entry["msg"] == "caller …4321 joined as sip_…4321 (To=…0000)"
    assert (entry["level"], entry["logger"], entry["call_id"], entry["transfer_id"]) == (
        "WARNING",
        "tests.ops.capture",
        "call_1",
        "tr_1",
    )


def test_numbers_in_exceptions_are_masked_too():
    def boom(log):
        try:
            raise ValueError("cannot dial +447700900123")
        except ValueError:
            log.exception("dial failed")

    entry = capture(boom)

    assert "+447700900123" not in entry["exc"] and "…0123" in entry["exc"]


def test_masking_leaves_ids_and_short_numbers_alone():
    text = "CA0123456789abcdef0123456789abcdef waited 120 s, extension +12"
    assert mask_phone_numbers(text) == text


def test_install_logging_adds_one_json_handler_to_root():
    install_logging("INFO")
    install_logging("INFO")

    assert sum(1 for h in logging.getLogger().handlers if getattr(h, "gateway_json", False)) == 1


def test_store_figures_active_calls_outcomes_and_durations(store):
    start = utcnow() - timedelta(minutes=5)

    def seed(session):
        for n, state in enumerate(("connected", "on_hold", "ended")):
            session.add(
                Call(
                    id=f"call_{n}",
                    twilio_sid=f"CA{n}",
                    from_number="+15557654321",
                    to_number="+15550100000",
                    room=f"call_{n}",
                    state=state,
                )
            )
        session.add(
            Transfer(
                id="tr_1",
                call_id="call_0",
                source_agent_id="a",
                mode="warm",
                state="completed",
                consult_room="consult_1",
                created_at=start,
            )
        )
        session.add(
            Transfer(
                id="tr_2",
                call_id="call_1",
                source_agent_id="a",
                mode="warm",
                state="consulting",
                consult_room="consult_2",
                created_at=start,
            )
        )
        session.add(
            TimelineEntry(
                call_id="call_0",
                transfer_id="tr_1",
                kind="summary_ready",
                detail={"elapsed_ms": 1500, "source": "openai"},
                at=start + timedelta(seconds=1.5),
            )
        )
        session.add(
            TimelineEntry(
                call_id="call_0",
                transfer_id="tr_1",
                kind="transfer_target_accepted",
                detail={},
                at=start + timedelta(seconds=12),
            )
        )

    store.run(seed)

    text = generate_latest(StoreCollector(store)).decode()

    assert "gateway_store_up 1.0" in text
    assert "gateway_active_calls 2.0" in text
    assert 'gateway_transfers_total{outcome="completed"} 1.0' in text
    assert 'gateway_transfers_total{outcome="failed"} 0.0' in text
    assert 'gateway_transfer_summary_seconds_bucket{le="1.0",source="openai"} 0.0' in text
    assert 'gateway_transfer_summary_seconds_bucket{le="2.0",source="openai"} 1.0' in text
    assert 'gateway_transfer_summary_seconds_sum{source="openai"} 1.5' in text
    assert 'gateway_transfer_target_seconds_bucket{le="10.0",mode="warm"} 0.0' in text
    assert 'gateway_transfer_target_seconds_bucket{le="15.0",mode="warm"} 1.0' in text


def test_an_unreadable_store_reports_store_down():
    broken = Store("sqlite:////nonexistent/dir/gateway.db")

    text = generate_latest(StoreCollector(broken)).decode()

    assert "gateway_store_up 0.0" in text and "gateway_active_calls" not in text
