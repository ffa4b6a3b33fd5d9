"""The agent CLI: flask --app gateway agents add|list|remove|set-status."""

from __future__ import annotations

import pytest

from gateway import create_app
from gateway.bootstrap import build
from gateway.config import Settings


@pytest.fixture
def runner(database_url):
    services = build(Settings(database_url=database_url, run_jobs=False))
    app = create_app(services=services)
    yield app.test_cli_runner(), services
    services.stop()


def test_add_list_set_status_remove(runner):
    cli, services = runner
    added = cli.invoke(args=["agents", "add", "alice", "--name", "Alice", "--phone", "+15550001111"])
    assert added.exit_code == 0 and "alice." in added.output
    listed = cli.invoke(args=["agents", "list"])
    assert "alice" in listed.output and "…1111" in listed.output and "+15550001111" not in listed.output
    assert cli.invoke(args=["agents", "set-status", "alice", "available"]).exit_code == 0
    assert services.agents.get("alice")["status"] == "available"
    assert cli.invoke(args=["agents", "remove", "alice"]).exit_code == 0
    assert services.agents.get("alice") is None


@pytest.mark.parametrize("phone", ["5550001111", "+0123", "+1555abc", "++15550001111"])
def test_invalid_phone_numbers_are_refused(runner, phone):
    cli, services = runner
    result = cli.invoke(args=["agents", "add", "bob", "--name", "Bob", "--phone", phone])
    assert result.exit_code != 0 and "E.164" in result.output
    assert services.agents.get("bob") is None


def test_duplicate_and_unknown_agents(runner):
    cli, _ = runner
    cli.invoke(args=["agents", "add", "carol", "--name", "Carol"])
    assert "already exists" in cli.invoke(args=["agents", "add", "carol", "--name", "Carol"]).output
    assert "no agent" in cli.invoke(args=["agents", "remove", "nobody"]).output


def test_agent_needs_a_channel(runner):
    cli, _ = runner
    result = cli.invoke(args=["agents", "add", "dan", "--name", "Dan", "--no-browser"])
    assert result.exit_code != 0 and "phone number, the browser console, or both" in result.output
