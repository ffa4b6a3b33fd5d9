"""Command line: ``flask --app gateway agents …``, ``db-upgrade``, ``simulate-call``."""

from __future__ import annotations

import json
import sys

import click
from flask import Flask, current_app

from gateway.domain.agents import InvalidAgent, mask_phone


def _services():
    return current_app.extensions["gateway"]


def register(app: Flask) -> None:
    @app.cli.group("agents")
    def agents():
        """Manage the agent directory."""

    @agents.command("add")
    @click.argument("agent_id")
    @click.option("--name", required=True, help="Display name.")
    @click.option("--phone", default=None, help="E.164 phone number for phone answering.")
    @click.option("--browser/--no-browser", default=True, help="Answers in the browser console.")
    @click.option("--status", default="offline", type=click.Choice(["available", "busy", "offline"]))
    def add(agent_id, name, phone, browser, status):
        """Add an agent and print its credential (shown once)."""
        try:
            credential = _services().agents.add(agent_id, name, phone, browser, status)
        except InvalidAgent as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"added {agent_id}; credential (keep it secret, shown once):\n{credential}")

    @agents.command("list")
    @click.option("--json", "as_json", is_flag=True)
    def list_(as_json):
        """List agents with their presence."""
        rows = _services().agents.list()
        if as_json:
            click.echo(json.dumps(rows, indent=2))
            return
        if not rows:
            click.echo("no agents yet: flask --app gateway agents add <id> --name <name> [--phone +1…]")
        for a in rows:
            channels = ", ".join(
                c for c, on in (("browser", a["browser"]), ("phone " + mask_phone(a["phone"]), a["phone"])) if on
            )
            click.echo(f"{a['id']:<20} {a['name']:<24} {a['status']:<10} {channels}")

    @agents.command("remove")
    @click.argument("agent_id")
    def remove(agent_id):
        try:
            _services().agents.remove(agent_id)
        except InvalidAgent as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"removed {agent_id}")

    @agents.command("set-status")
    @click.argument("agent_id")
    @click.argument("status", type=click.Choice(["available", "busy", "offline"]))
    def set_status(agent_id, status):
        try:
            _services().agents.set_status(agent_id, status)
        except InvalidAgent as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"{agent_id} is {status}")

    @agents.command("reset-credential")
    @click.argument("agent_id")
    def reset(agent_id):
        """Issue a new credential; the old one and its console sessions stop working."""
        try:
            click.echo(_services().agents.reset_secret(agent_id))
        except InvalidAgent as exc:
            raise click.ClickException(str(exc)) from None

    @app.cli.command("db-upgrade")
    def db_upgrade():
        """Apply database migrations (the Procfile's release phase)."""
        _services().gw.store.migrate()
        click.echo("database is at the newest migration")

    @app.cli.command("simulate-call")
    @click.option("--from", "from_", default="+15557654321", help="The caller's number.")
    @click.option("--say", multiple=True, help="Lines the caller says (needs transcription on).")
    @click.option("--sandbox-url", default=None, help="Twilio simulator URL of a running sandbox gateway.")
    def simulate_call(from_, say, sandbox_url):
        """Place a test call into a running sandbox gateway (python -m gateway)."""
        import requests

        settings = _services().gw.settings
        if not settings.sandbox and not sandbox_url:
            raise click.ClickException("simulate-call drives the sandbox; real credentials are configured")
        url = sandbox_url or settings.twilio_api_base_url
        try:
            reply = requests.post(
                f"{url}/_sim/calls", json={"from": from_, "to": settings.twilio_phone_number}, timeout=5
            )
            reply.raise_for_status()
        except requests.RequestException as exc:
            raise click.ClickException(f"no sandbox at {url}: start it with `python -m gateway` ({exc})") from None
        sid = reply.json()["sid"]
        for line in say:
            requests.post(f"{url}/_sim/calls/{sid}/speak", json={"text": line}, timeout=5)
        click.echo(f"placed call {sid} from {from_}; follow it at {url}/_sim/calls/{sid}")
        sys.stdout.flush()
