"""Agent records and routing: who may be stored, who is offered the next call, what reaches the logs."""

from __future__ import annotations

from datetime import datetime

import pytest

from gateway.domain.agents import AgentView, InvalidAgent, mask_phone, pick_agent, validate_agent, validate_status


@pytest.mark.parametrize(
    ("agent_id", "name", "phone", "browser"),
    [
        ("alice", "Alice Smith", "+15551234567", True),
        ("a", "A", None, True),
        ("bob-2_x", "Bob", "+447911123456", False),
        ("0" * 40, "Forty", "+4930123", False),  # 40 characters; a 7-digit E.164 number
        ("zoe", "Zoë", "+861234567890123", True),  # 15 digits, the most E.164 allows
    ],
)
def test_valid_agents_are_accepted(agent_id, name, phone, browser):
    assert validate_agent(agent_id, name, phone, browser) is None


@pytest.mark.parametrize(
    ("agent_id", "name", "phone", "browser", "message"),
    [
        ("Alice", "Alice", None, True, "agent id 'Alice' must be 1-40 lowercase letters, digits, '-' or '_'"),
        ("", "Alice", None, True, "agent id '' must be 1-40 lowercase letters, digits, '-' or '_'"),
        (None, "Alice", None, True, "agent id None must be 1-40 lowercase letters, digits, '-' or '_'"),
        ("-alice", "Alice", None, True, "agent id '-alice' must be 1-40 lowercase letters, digits, '-' or '_'"),
        ("a" * 41, "Long", None, True, f"agent id {'a' * 41!r} must be 1-40 lowercase letters, digits, '-' or '_'"),
        ("alice", "   ", None, True, "agent name must not be empty"),
        ("alice", None, None, True, "agent name must not be empty"),
        ("alice", "Alice", "5551234567", True, "phone '5551234567' is not an E.164 number (like +15551234567)"),
        ("alice", "Alice", "+05551234567", True, "phone '+05551234567' is not an E.164 number (like +15551234567)"),
        ("alice", "Alice", "+123456", True, "phone '+123456' is not an E.164 number (like +15551234567)"),
        (
            "alice",
            "Alice",
            "+1234567890123456",
            True,
            "phone '+1234567890123456' is not an E.164 number (like +15551234567)",
        ),
        ("alice", "Alice", None, False, "an agent needs a phone number, the browser console, or both"),
        ("alice", "Alice", "", True, "phone '' is not an E.164 number (like +15551234567)"),
    ],
)
def test_invalid_agents_are_refused_with_the_reason(agent_id, name, phone, browser, message):
    with pytest.raises(InvalidAgent) as refused:
        validate_agent(agent_id, name, phone, browser)
    assert str(refused.value) == message


def test_only_the_three_statuses_exist():
    for status in ("available", "busy", "offline"):
        assert validate_status(status) is None
    with pytest.raises(InvalidAgent) as refused:
        validate_status("away")
    assert str(refused.value) == "status must be one of available, busy, offline, got 'away'"


# ------------------------------------------------------------------ routing
def agent(agent_id, *, idle_since=None, status="available", phone="+15551230000", browser=True):
    return AgentView(
        id=agent_id, name=agent_id.title(), phone=phone, browser=browser, status=status, idle_since=idle_since
    )


NINE, TEN, ELEVEN = datetime(2026, 12, 7, 9), datetime(2026, 12, 7, 10), datetime(2026, 12, 7, 11)


def test_the_agent_idle_longest_is_offered_first():
    agents = [agent("carol", idle_since=ELEVEN), agent("alice", idle_since=NINE), agent("bob", idle_since=TEN)]
    assert pick_agent(agents).id == "alice"
    assert pick_agent(agents, exclude=["alice"]).id == "bob"
    assert pick_agent(agents, exclude=("alice", "bob")).id == "carol"
    assert pick_agent(agents, exclude=("alice", "bob", "carol")) is None


def test_an_agent_who_never_took_a_call_goes_before_everyone():
    agents = [agent("alice", idle_since=NINE), agent("zed"), agent("bob", idle_since=TEN)]
    assert pick_agent(agents).id == "zed"


def test_equal_idle_times_are_broken_by_id_so_every_worker_picks_the_same():
    assert pick_agent([agent("bob", idle_since=NINE), agent("alice", idle_since=NINE)]).id == "alice"
    assert pick_agent([agent("bob"), agent("alice")]).id == "alice"


def test_busy_offline_and_unreachable_agents_are_never_offered():
    agents = [
        agent("alice", idle_since=NINE, status="busy"),
        agent("bob", idle_since=NINE, status="offline"),
        agent("carol", idle_since=NINE, phone=None, browser=False),  # no way to reach her
        agent("dave", idle_since=ELEVEN, phone=None, browser=True),  # browser only
        agent("erin", idle_since=TEN, phone="+15551239999", browser=False),  # phone only
    ]
    assert pick_agent(agents).id == "erin"
    assert pick_agent(agents, exclude=["erin"]).id == "dave"
    assert pick_agent(agents, exclude=["erin", "dave"]) is None
    assert pick_agent([]) is None


def test_logs_see_only_the_last_four_digits():
    assert mask_phone("+15551234567") == "…4567"
    assert mask_phone(None) == ""
    assert mask_phone("") == ""
