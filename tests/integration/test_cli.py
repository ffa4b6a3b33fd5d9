"""The agent CLI: flask --app gateway agents add|list|remove|set-status, the same through the `gateway`
console script, and `python -m gateway --help`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from gateway import create_app
from gateway.bootstrap import build
from gateway.config import VARIABLES, Settings


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


def test_a_supervisor_is_added_listed_and_made_an_agent_again(runner):
    cli, services = runner
    added = cli.invoke(args=["agents", "add", "sam", "--name", "Sam", "--supervisor"])
    assert added.exit_code == 0, added.output
    assert services.agents.get("sam")["role"] == "supervisor"
    assert "(supervisor)" in cli.invoke(args=["agents", "list"]).output
    assert cli.invoke(args=["agents", "add", "ann", "--name", "Ann"]).exit_code == 0
    assert services.agents.get("ann")["role"] == "agent"
    assert cli.invoke(args=["agents", "set-role", "sam", "agent"]).exit_code == 0
    assert services.agents.get("sam")["role"] == "agent"
    refused = cli.invoke(args=["agents", "set-role", "nobody", "supervisor"])
    assert refused.exit_code != 0 and "no agent 'nobody'" in refused.output


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


ROOT = Path(__file__).resolve().parents[2]


def _sandbox_environment(database_url: str) -> dict[str, str]:
    """The environment of a fresh sandbox checkout: no provider credentials (empty values win over any
    .env, which python-dotenv never lets override the environment), the test's database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "LIVEKIT_", "OPENAI_"))}
    env.update({name: "" for name, _required, _description in VARIABLES if name != "DATABASE_URL"})
    env.update(DATABASE_URL=database_url, PYTHONPATH=str(ROOT))
    return env


def _run(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_the_gateway_console_script_runs_the_flask_commands(database_url, tmp_path):
    # What `pip install` writes for [project.scripts]: import the entry point and exit with what it returns.
    with (ROOT / "pyproject.toml").open("rb") as f:
        module, func = tomllib.load(f)["project"]["scripts"]["gateway"].split(":")
    gateway_script = [sys.executable, "-c", f"import sys; from {module} import {func}; sys.exit({func}())"]
    env = _sandbox_environment(database_url)

    added = _run([*gateway_script, "agents", "add", "erin", "--name", "Erin", "--status", "available"], env, tmp_path)
    assert added.returncode == 0, added.stderr
    credential = added.stdout.strip().splitlines()[-1]
    assert credential.startswith("erin.")

    # The same directory through `flask --app gateway`, and the printed credential signs Erin in.
    listed = _run([sys.executable, "-m", "flask", "--app", "gateway", "agents", "list"], env, tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert re.search(r"^erin\s+Erin\s+available\s+browser\b", listed.stdout, re.M), listed.stdout
    services = build(Settings(database_url=database_url, run_jobs=False))
    try:
        client = create_app(services=services).test_client()
        offers = client.get("/api/agents/me/offers", headers={"Authorization": f"Bearer {credential}"})
        assert offers.status_code == 200, offers.get_json()
        refused = client.get("/api/agents/me/offers", headers={"Authorization": "Bearer erin.not-the-credential"})
        assert refused.status_code == 401
    finally:
        services.stop()

    helped = _run([*gateway_script, "--help"], env, tmp_path)
    assert helped.returncode == 0
    for command in ("agents", "db-upgrade", "simulate-call", "provision", "doctor"):
        assert re.search(rf"^\s+{command}\s", helped.stdout, re.M), helped.stdout


def test_python_m_gateway_help_prints_usage_and_starts_nothing(database_url, tmp_path):
    # Were the server started, the process would serve until the timeout and the test would fail.
    env = _sandbox_environment(database_url)
    helped = _run([sys.executable, "-m", "gateway", "--help"], env, tmp_path)
    assert helped.returncode == 0, helped.stderr
    assert helped.stdout.startswith("usage: python -m gateway")
    text = " ".join(helped.stdout.split())  # argparse wraps to the terminal's width
    assert "sandbox mode" in text and "For production use gunicorn" in text
    assert "Running on" not in helped.stderr and "SANDBOX MODE" not in helped.stderr
    refused = _run([sys.executable, "-m", "gateway", "--port", "5001"], env, tmp_path)
    assert refused.returncode == 2 and "unrecognized arguments: --port" in refused.stderr


def test_cli_data_on_stdout_and_a_plain_sandbox_warning_on_a_terminal(database_url, tmp_path):
    """Piped stdout carries only the credential; the terminal (a pty on stderr) reads one plain warning."""
    import pty

    env = _sandbox_environment(database_url)
    primary, secondary = pty.openpty()
    try:
        added = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "gateway", "agents", "add", "fay", "--name", "Fay"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=secondary,
            text=True,
            timeout=120,
        )
        os.close(secondary)
        terminal = b""
        while True:
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # EIO: the writer has closed
                break
            if not chunk:
                break
            terminal += chunk
    finally:
        os.close(primary)
    assert added.returncode == 0
    assert added.stdout.splitlines()[-1].startswith("fay.") and "{" not in added.stdout
    lines = terminal.decode().splitlines()
    warnings = [line for line in lines if "SANDBOX MODE" in line]
    assert warnings == [
        "warning: SANDBOX MODE: no Twilio or LiveKit credentials are set; every provider is a loopback double."
    ], lines


def test_the_server_logs_json_without_colour_codes():
    import logging

    from gateway.ops.observability import JsonFormatter

    record = logging.LogRecord(
        "werkzeug", logging.INFO, __file__, 1, '127.0.0.1 - "\x1b[32mGET /console HTTP/1.1\x1b[0m" 200 -', None, None
    )
    line = JsonFormatter().format(record)
    assert "\x1b" not in line and "\\u001b" not in line
    assert json.loads(line)["msg"] == '127.0.0.1 - "GET /console HTTP/1.1" 200 -'


def test_a_taken_sandbox_port_names_sandbox_base_port(database_url, tmp_path):
    import socket

    env = _sandbox_environment(database_url)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        # Were the port not checked, the gateway would serve until the timeout and the test would fail.
        env.update(SANDBOX_BASE_PORT=str(taken), PORT="1")
        started = _run([sys.executable, "-m", "gateway"], env, tmp_path)
    assert started.returncode == 2
    assert f"sandbox port {taken} (livekit double) is in use" in started.stderr
    assert "SANDBOX_BASE_PORT" in started.stderr
