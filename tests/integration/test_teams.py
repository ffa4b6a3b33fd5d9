"""Teams: the CLI (teams add|list|remove, agents add --team, agents set-teams), the admin API, and
the migration that puts every existing agent in the default team."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import text

from gateway import create_app
from gateway.adapters.store import Store
from gateway.adapters.store.db import alembic_config
from gateway.bootstrap import build
from gateway.config import Settings

ADMIN = {"Authorization": "Bearer admin-token"}


@pytest.fixture
def services(database_url):
    services = build(Settings(database_url=database_url, run_jobs=False, admin_token="admin-token"))
    yield services
    services.stop()


@pytest.fixture
def cli(services):
    return create_app(services=services).test_cli_runner()


@pytest.fixture
def client(services):
    return create_app(services=services).test_client()


def test_one_default_team_with_every_new_agent_in_it(services):
    services.agents.add("alice", "Alice", None, True)
    (team,) = services.teams.list()
    assert (team["id"], team["members"], team["waiting"]) == ("default", ["alice"], 0)
    assert services.agents.get("alice", with_teams=True)["teams"] == ["default"]


def test_cli_teams_and_members(cli, services):
    added = cli.invoke(
        args=["teams", "add", "billing", "--name", "Billing", "--number", "+15550002000", "--max-wait", "300"]
    )
    assert added.exit_code == 0, added.output
    assert (
        cli.invoke(args=["agents", "add", "bea", "--name", "Bea", "--team", "billing", "--team", "default"]).exit_code
        == 0
    )
    cli.invoke(args=["agents", "add", "cal", "--name", "Cal"])
    listed = cli.invoke(args=["teams", "list"]).output
    billing = next(line for line in listed.splitlines() if line.startswith("billing"))
    assert "Billing" in billing and "members: bea" in billing and "+15550002000" in billing and "300s" in billing
    assert "members: bea, cal" in next(line for line in listed.splitlines() if line.startswith("default"))
    assert "billing,default" in cli.invoke(args=["agents", "list"]).output

    assert cli.invoke(args=["agents", "set-teams", "cal", "billing"]).exit_code == 0
    assert services.teams.get("billing")["members"] == ["bea", "cal"]

    removed = cli.invoke(args=["teams", "remove", "billing"])
    assert removed.exit_code == 0, removed.output
    # Nobody is left without a team: cal served only billing and is back in the default team.
    assert services.agents.get("cal", with_teams=True)["teams"] == ["default"]
    assert services.agents.get("bea", with_teams=True)["teams"] == ["default"]
    assert [t["id"] for t in services.teams.list()] == ["default"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["teams", "add", "Billing", "--name", "Billing"], "lowercase"),
        (["teams", "add", "billing", "--name", "B", "--number", "5550002000"], "E.164"),
        (["teams", "add", "billing", "--name", "B", "--hold-music", "music.mp3"], "http"),
        (["teams", "remove", "default"], "cannot be removed"),
        (["teams", "remove", "nope"], "no team"),
        (["agents", "add", "dan", "--name", "Dan", "--team", "nope"], "no team 'nope'"),
        (["agents", "set-teams", "nobody", "default"], "no agent"),
    ],
)
def test_cli_refuses_bad_input_and_changes_nothing(cli, services, args, message):
    result = cli.invoke(args=args)
    assert result.exit_code != 0 and message in result.output
    assert [t["id"] for t in services.teams.list()] == ["default"]
    assert services.agents.get("dan") is None


def test_a_number_belongs_to_one_team(cli, services):
    cli.invoke(args=["teams", "add", "billing", "--name", "Billing", "--number", "+15550002000"])
    result = cli.invoke(args=["teams", "add", "support", "--name", "Support", "--number", "+15550002000"])
    assert result.exit_code != 0 and "already goes to team 'billing'" in result.output
    assert services.teams.get("support") is None


def test_cli_numbers_set_maps_a_number_to_one_team_or_a_menu(cli, services):
    cli.invoke(args=["teams", "add", "billing", "--name", "Billing", "--number", "+15550002000"])
    cli.invoke(args=["teams", "add", "support", "--name", "Support"])
    menu = cli.invoke(args=["numbers", "set", "+15550002000", "--team", "billing", "--team", "support"])
    assert menu.exit_code == 0, menu.output
    assert "+15550002000 -> menu: 1 billing, 2 support" in menu.output
    assert "+15550002000 -> menu: 1 billing, 2 support" in cli.invoke(args=["numbers", "list"]).output
    assert services.teams.get("support")["numbers"] == ["+15550002000"]
    assert "+15550002000 -> support" in cli.invoke(args=["numbers", "set", "+15550002000", "--team", "support"]).output
    assert services.teams.get("billing")["numbers"] == []
    unknown = cli.invoke(args=["numbers", "set", "+15550002000", "--team", "nosuch"])
    assert unknown.exit_code != 0 and "no team 'nosuch'" in unknown.output
    assert "+15550002000 -> default team" in cli.invoke(args=["numbers", "set", "+15550002000"]).output
    assert cli.invoke(args=["numbers", "list"]).output == ""


def test_admin_api_teams(client, services):
    reply = client.post(
        "/api/admin/teams",
        json={"id": "support", "name": "Support", "numbers": ["+15550003000"], "max_wait_s": 240},
        headers=ADMIN,
    )
    assert reply.status_code == 201, reply.json
    assert reply.json["team"] == {
        "id": "support",
        "name": "Support",
        "hold_music_url": None,
        "max_wait_s": 240,
        "members": [],
        "numbers": ["+15550003000"],
        "waiting": 0,
    }
    agent = client.post("/api/admin/agents", json={"id": "sue", "name": "Sue", "teams": ["support"]}, headers=ADMIN)
    assert agent.status_code == 201 and agent.json["agent"]["teams"] == ["support"]
    moved = client.put("/api/admin/agents/sue/teams", json={"teams": ["support", "default"]}, headers=ADMIN)
    assert moved.json["agent"]["teams"] == ["default", "support"]

    changed = client.patch(
        "/api/admin/teams/support",
        json={"hold_music_url": "https://music.example/calm.mp3", "numbers": ["+15550003001"]},
        headers=ADMIN,
    )
    assert changed.status_code == 200
    assert changed.json["team"]["hold_music_url"] == "https://music.example/calm.mp3"
    assert changed.json["team"]["numbers"] == ["+15550003001"]
    listed = client.get("/api/admin/teams", headers=ADMIN).json["teams"]
    assert [(t["id"], t["members"]) for t in listed] == [("default", ["sue"]), ("support", ["sue"])]
    assert client.get("/api/admin/agents", headers=ADMIN).json["agents"][0]["teams"] == ["default", "support"]

    assert client.delete("/api/admin/teams/default", headers=ADMIN).status_code == 409
    assert client.delete("/api/admin/teams/support", headers=ADMIN).status_code == 200
    assert client.delete("/api/admin/teams/support", headers=ADMIN).status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "payload", "status"),
    [
        ("post", "/api/admin/teams", {"id": "x y", "name": "X"}, 400),
        ("post", "/api/admin/teams", {"id": "x", "name": "X", "max_wait_s": "long"}, 400),
        ("post", "/api/admin/teams", {"id": "x", "name": "X", "max_wait_s": 1}, 400),
        ("post", "/api/admin/teams", {"id": "x", "name": "X", "numbers": "+15550003000"}, 400),
        ("post", "/api/admin/agents", {"id": "zed", "name": "Zed", "teams": ["nope"]}, 400),
        ("patch", "/api/admin/teams/default", {"name": ""}, 400),
        ("patch", "/api/admin/teams/nope", {"name": "Nope"}, 404),
        ("put", "/api/admin/agents/nobody/teams", {"teams": ["default"]}, 404),
    ],
)
def test_admin_api_refuses_bad_input_with_a_clear_error(client, services, method, path, payload, status):
    reply = getattr(client, method)(path, json=payload, headers=ADMIN)
    assert reply.status_code == status and reply.json["error"]
    assert [t["id"] for t in services.teams.list()] == ["default"]
    assert services.teams.get("default")["name"] == "Default"
    assert services.agents.get("zed") is None


def test_team_admin_needs_the_admin_token(client):
    assert client.get("/api/admin/teams").status_code == 401
    assert (
        client.post(
            "/api/admin/teams", json={"id": "x", "name": "X"}, headers={"Authorization": "Bearer no"}
        ).status_code
        == 401
    )


def test_upgrade_puts_existing_agents_in_the_default_team(database_url):
    store = Store(database_url)
    try:
        command.upgrade(alembic_config(database_url), "0001")
        with store.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO agents (id, name, browser, status, secret_hash, version, created_at) "
                    "VALUES ('old', 'Old', true, 'available', 'x', 1, CURRENT_TIMESTAMP)"
                )
            )
        store.migrate()
        with store.engine.connect() as conn:
            rows = conn.execute(text("SELECT agent_id, team_id FROM agent_teams")).all()
        assert [tuple(r) for r in rows] == [("old", "default")]
        command.downgrade(alembic_config(database_url), "0001")
        store.migrate()
    finally:
        store.engine.dispose()
