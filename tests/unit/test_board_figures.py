"""The board's figures from a fixed set of calls (domain/board.py): every definition the README gives."""

from __future__ import annotations

from datetime import datetime, timedelta

from gateway.domain import board as B

DAY = datetime(2026, 12, 7)
NOW = DAY + timedelta(hours=10, minutes=5)


def at(minutes: float) -> datetime:
    return DAY + timedelta(hours=9, minutes=minutes)


def s(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


# Billing: answered in 10 s (talked 5 min), answered in 40 s (talked 3 min), abandoned after 30 s,
# sent to voicemail; support: answered in 20 s exactly (still talking), one still waiting now.
CALLS = [
    B.CallRow("c1", "billing", at(0), at(0) + s(10), at(0) + s(10 + 300)),
    B.CallRow("c2", "billing", at(5), at(5) + s(40), at(5) + s(40 + 180)),
    B.CallRow("c3", "billing", at(20), None, at(20) + s(30)),
    B.CallRow("c4", "billing", at(31), None, at(33), voicemail=True),
    B.CallRow("c5", "support", at(40), at(40) + s(20), None, channel="web"),
    B.CallRow("c6", "support", NOW - s(50), None, None),
]
TRANSFERS = [
    B.TransferRow("t1", "billing", "completed", at(1), at(1) + s(12)),
    B.TransferRow("t2", "billing", "declined", at(6), None),
    B.TransferRow("t3", "support", "completed", at(41), at(41) + s(30)),
    B.TransferRow("t4", "support", "no_answer", at(42), None),
    B.TransferRow("t5", "support", "conferenced", at(43), at(43) + s(8)),
]


def figures(**kw):
    return B.day_figures(CALLS, TRANSFERS, [], day_start=DAY, now=NOW, **kw)


def test_each_call_has_one_outcome():
    assert [B.outcome(c) for c in CALLS] == [
        "answered",
        "answered",
        "abandoned",
        "voicemail",
        "answered",
        "in_progress",
    ]


def test_overall_counts_service_level_and_averages():
    overall = figures()["overall"]
    assert overall["offered"] == 6
    assert (overall["answered"], overall["abandoned"], overall["voicemail"], overall["in_progress"]) == (3, 1, 1, 1)
    # answered within 20 s (10 s and exactly 20 s) of the 5 calls whose wait is over
    assert overall["answered_within_threshold"] == 2
    assert overall["service_level"] == 0.4
    assert overall["average_wait_s"] == round((10 + 40 + 20) / 3, 1)
    # handle time of answered calls that ended (c5 is still talking)
    assert overall["average_handle_s"] == 240.0


def test_the_threshold_is_configurable():
    overall = figures(service_level_s=45)["overall"]
    assert overall["answered_within_threshold"] == 3
    assert overall["service_level"] == 0.6
    assert figures()["service_level_threshold_s"] == 20


def test_per_team_and_per_channel():
    result = figures(teams=["billing", "support", "sales"])
    billing, support, sales = (result["teams"][t] for t in ("billing", "support", "sales"))
    assert (billing["offered"], billing["answered"], billing["abandoned"], billing["voicemail"]) == (4, 2, 1, 1)
    assert billing["service_level"] == 0.25
    assert billing["average_handle_s"] == 240.0
    assert (support["offered"], support["answered"], support["in_progress"]) == (2, 1, 1)
    assert support["service_level"] == 1.0
    assert support["average_handle_s"] is None
    assert sales["offered"] == 0 and sales["service_level"] is None and sales["average_wait_s"] is None
    assert result["channels"]["web"]["offered"] == 1
    assert result["channels"]["phone"]["offered"] == 5


def test_transfers_by_outcome_and_median_to_b_connected():
    transfers = figures()["overall"]["transfers"]
    assert transfers["total"] == 5
    assert transfers["by_outcome"] == {
        "completed": 2,
        "declined": 1,
        "no_answer": 1,
        "cancelled": 0,
        "abandoned": 0,
        "failed": 0,
        "in_progress": 1,
    }
    assert transfers["median_initiate_to_connected_s"] == 12.0  # of 12, 30 and 8 s
    assert figures()["teams"]["billing"]["transfers"]["median_initiate_to_connected_s"] == 12.0
    assert B.transfer_figures([])["median_initiate_to_connected_s"] is None


def test_answered_and_abandoned_per_quarter_hour():
    slots = figures()["intervals"]
    assert slots[0]["start"] == DAY and len(slots) == 10 * 4 + 1  # 00:00 … 10:00
    by_start = {slot["start"]: (slot["answered"], slot["abandoned"]) for slot in slots}
    assert by_start[at(0)] == (2, 0)  # 09:00-09:15: c1, c2
    assert by_start[at(15)] == (0, 1)  # 09:15-09:30: c3 (c4 went to voicemail: neither)
    assert by_start[at(30)] == (1, 0)  # 09:30-09:45: c5
    assert sum(a + b for a, b in by_start.values()) == 4


def test_callers_waiting_each_minute_of_the_last_hour():
    waits = [
        B.WaitRow("billing", NOW - s(90 * 60), NOW - s(50 * 60)),  # waited from before the window
        B.WaitRow("billing", NOW - s(10 * 60), NOW - s(5 * 60)),
        B.WaitRow("support", NOW - s(7 * 60), None),  # still waiting
    ]
    points = B.waiting_over_time(waits, NOW)
    assert len(points) == 61 and points[0]["at"] == NOW - s(3600) and points[-1]["at"] == NOW
    by_minutes_ago = {round((NOW - p["at"]).total_seconds() / 60): p["waiting"] for p in points}
    assert by_minutes_ago[60] == 1 and by_minutes_ago[51] == 1 and by_minutes_ago[50] == 0
    assert by_minutes_ago[8] == 1  # the first one
    assert by_minutes_ago[6] == 2  # both
    assert by_minutes_ago[0] == 1  # the one still waiting


def test_team_board_counts_waiting_callbacks_and_agents_by_state():
    agents = [
        B.AgentRow("a", "available", ("billing",), on_call=False, not_responding=False),
        B.AgentRow("b", "busy", ("billing", "support"), on_call=True, not_responding=False),
        B.AgentRow("c", "offline", ("billing",), on_call=False, not_responding=True),
        B.AgentRow("d", "offline", ("support",), on_call=False, not_responding=False),
    ]
    waiting = [
        ("billing", "caller", NOW - s(30)),
        ("billing", "caller", NOW - s(95)),
        ("billing", "callback", NOW - s(900)),
    ]
    board = B.team_board(["billing", "support"], waiting, agents, NOW)
    assert board["billing"]["waiting"] == 2
    assert board["billing"]["longest_wait_s"] == 95.0
    assert board["billing"]["callbacks_pending"] == 1
    assert board["billing"]["agents"] == {"available": 1, "on_call": 1, "not_responding": 1, "offline": 0}
    assert board["support"]["agents"] == {"available": 0, "on_call": 1, "not_responding": 0, "offline": 1}
    assert board["support"]["waiting"] == 0


def test_a_live_call_reads_as_the_supervisor_would_say_it():
    def live(state, ringing=False, in_transfer=False):
        return B.LiveCall("c", "t", "…1234", None, state, ringing, in_transfer, NOW)

    assert B.board_state(live("queued")) == "queued"
    assert B.board_state(live("bridging", ringing=True)) == "ringing"
    assert B.board_state(live("connected")) == "talking"
    assert B.board_state(live("on_hold")) == "on hold"
    assert B.board_state(live("on_hold", in_transfer=True)) == "in transfer"


def test_the_day_starts_at_midnight_where_the_board_is():
    from gateway.config import ConfigError, load
    from gateway.services.board import day_start

    at_0300z = datetime(2026, 12, 7, 3, 0)
    assert day_start(at_0300z) == datetime(2026, 12, 7, 0, 0)
    # 22:00 the evening before in New York (UTC-5 in December): its day began at 05:00Z on the 6th.
    assert day_start(at_0300z, "America/New_York") == datetime(2026, 12, 6, 5, 0)
    assert day_start(at_0300z, "Europe/Paris") == datetime(2026, 12, 6, 23, 0)
    assert load({"BOARD_TIMEZONE": "Europe/Paris"}).board_timezone == "Europe/Paris"
    try:
        load({"BOARD_TIMEZONE": "Mars/Olympus"})
    except ConfigError as exc:
        assert "IANA time zone" in str(exc)
    else:
        raise AssertionError("an unknown time zone was accepted")
