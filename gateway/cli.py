"""Command line: ``gateway agents …`` (the console script) or ``flask --app gateway agents …``,
``db-upgrade``, ``simulate-call``; ``provision`` and ``doctor`` come from gateway.ops."""

from __future__ import annotations

import json
import sys

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext

from gateway.domain.agents import InvalidAgent, mask_phone
from gateway.domain.queues import InvalidTeam


def _services():
    return current_app.extensions["gateway"]


def main(argv: list[str] | None = None) -> None:
    """The ``gateway`` console script (pyproject.toml): the same commands as ``flask --app gateway``,
    on an app built the way the flask CLI builds it (``create_app()``, with .env loaded)."""
    from flask.cli import FlaskGroup

    from gateway import create_app

    group = FlaskGroup(
        name="gateway",
        create_app=create_app,  # called with no arguments: settings from the environment, as `flask --app gateway`
        help="The warm-transfer gateway's commands (the same as `flask --app gateway …`).",
    )
    # The app is always this one: flask's --app option would only mislead here.
    group.params = [p for p in group.params if p.name != "app"]
    group.main(args=argv, prog_name="gateway")


def _number_line(number: str, teams: list[str]) -> str:
    if not teams:
        return f"{number} -> default team"
    if len(teams) == 1:
        return f"{number} -> {teams[0]}"
    return f"{number} -> menu: " + ", ".join(f"{n} {team}" for n, team in enumerate(teams, start=1))


@click.group("agents", cls=AppGroup)
def agents():
    """Manage the agent directory."""


@agents.command("add")
@click.argument("agent_id")
@click.option("--name", required=True, help="Display name.")
@click.option("--phone", default=None, help="E.164 phone number for phone answering.")
@click.option("--browser/--no-browser", default=True, help="Answers in the browser console.")
@click.option("--status", default="offline", type=click.Choice(["available", "busy", "offline"]))
@click.option("--team", "teams", multiple=True, help="A team the agent serves (repeat; default: default).")
@click.option("--supervisor", is_flag=True, help="A supervisor: also sees the board and may listen in.")
def agents_add(agent_id, name, phone, browser, status, teams, supervisor):
    """Add an agent (or a supervisor) and print its credential (shown once)."""
    try:
        credential = _services().agents.add(
            agent_id,
            name,
            phone,
            browser,
            status,
            teams=list(teams) or None,
            role="supervisor" if supervisor else "agent",
        )
    except (InvalidAgent, InvalidTeam) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"added {agent_id}; credential (keep it secret, shown once):\n{credential}")


@agents.command("list")
@click.option("--json", "as_json", is_flag=True)
def agents_list(as_json):
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
        role = " (supervisor)" if a["role"] == "supervisor" else ""
        click.echo(f"{a['id']:<20} {a['name']:<24} {a['status']:<10} {channels:<24} {','.join(a['teams'])}{role}")


@agents.command("set-teams")
@click.argument("agent_id")
@click.argument("teams", nargs=-1, required=True)
def set_teams(agent_id, teams):
    """Replace the teams an agent serves."""
    try:
        _services().teams.set_agent_teams(agent_id, list(teams))
    except InvalidTeam as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{agent_id} serves {', '.join(teams)}")


@agents.command("remove")
@click.argument("agent_id")
def agents_remove(agent_id):
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
        _services().agents.set_status(agent_id, status, by="admin")
    except InvalidAgent as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{agent_id} is {status}")


@agents.command("set-role")
@click.argument("agent_id")
@click.argument("role", type=click.Choice(["agent", "supervisor"]))
def set_role(agent_id, role):
    """Make an agent a supervisor (the board, listen-in) or an agent again."""
    try:
        _services().agents.set_role(agent_id, role)
    except InvalidAgent as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{agent_id} is a {role}")


@agents.command("reset-credential")
@click.argument("agent_id")
def reset_credential(agent_id):
    """Issue a new credential; the old one and its console sessions stop working."""
    try:
        click.echo(_services().agents.reset_secret(agent_id))
    except InvalidAgent as exc:
        raise click.ClickException(str(exc)) from None


@click.group("teams", cls=AppGroup)
def teams():
    """Manage teams (queues) and the numbers that go to them."""


@teams.command("add")
@click.argument("team_id")
@click.option("--name", required=True, help="Display name; callers hear it in the greeting.")
@click.option("--number", "numbers", multiple=True, help="A Twilio number whose callers go to this team.")
@click.option("--hold-music", default=None, help="Audio URL for this team's callers (default HOLD_MUSIC_URL).")
@click.option("--max-wait", type=float, default=None, help="Seconds before voicemail (default QUEUE_TIMEOUT_S).")
def teams_add(team_id, name, numbers, hold_music, max_wait):
    """Add a team."""
    try:
        _services().teams.add(team_id, name, hold_music_url=hold_music, max_wait_s=max_wait, numbers=list(numbers))
    except InvalidTeam as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"added team {team_id}; add members with: flask --app gateway agents set-teams <agent> {team_id}")


@teams.command("list")
@click.option("--json", "as_json", is_flag=True)
def teams_list(as_json):
    """List teams with members, numbers and callers waiting."""
    rows = _services().teams.list()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for t in rows:
        wait = f"max wait {t['max_wait_s']:g}s" if t["max_wait_s"] else "max wait default"
        click.echo(
            f"{t['id']:<16} {t['name']:<20} {t['waiting']:>3} waiting  {wait:<20} "
            f"members: {', '.join(t['members']) or '-'}  numbers: {', '.join(t['numbers']) or '-'}"
        )


@teams.command("remove")
@click.argument("team_id")
def teams_remove(team_id):
    """Remove a team nobody is waiting in."""
    try:
        _services().teams.remove(team_id)
    except InvalidTeam as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"removed team {team_id}")


@click.group("numbers", cls=AppGroup)
def numbers():
    """Which team(s) each Twilio number's callers go to (several: a menu asks them)."""


@numbers.command("set")
@click.argument("number")
@click.option(
    "--team",
    "teams",
    multiple=True,
    help="A team this number's callers go to (repeat for a menu: the first is key 1, the next key 2, ...; "
    "none: the default team).",
)
def numbers_set(number, teams):
    """Send NUMBER's callers to a team, or to a menu of teams."""
    try:
        chosen = _services().teams.set_number(number, list(teams))
    except InvalidTeam as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(_number_line(number, chosen))


@numbers.command("list")
def numbers_list():
    """Mapped numbers and their teams (unmapped numbers go to the default team)."""
    for number, teams in _services().teams.numbers().items():
        click.echo(_number_line(number, teams))


@click.command("db-upgrade")
@with_appcontext
def db_upgrade():
    """Apply database migrations (the Procfile's release phase)."""
    _services().gw.store.migrate()
    click.echo("database is at the newest migration")


@click.command("simulate-call")
@with_appcontext
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
    if say and not settings.transcription_enabled:
        raise click.ClickException(
            "--say needs transcription, or nothing hears the caller: start the gateway with TRANSCRIPTION_ENABLED=true"
        )
    try:
        # The lines are said once the call's transcription starts: when an agent has answered
        # and the call is connected (the gateway starts it then, by REST).
        reply = requests.post(
            f"{url}/_sim/calls",
            json={"from": from_, "to": settings.twilio_phone_number, "speech": list(say)},
            timeout=5,
        )
        reply.raise_for_status()
    except requests.RequestException as exc:
        raise click.ClickException(f"no sandbox at {url}: start it with `python -m gateway` ({exc})") from None
    sid = reply.json()["sid"]
    if say:
        click.echo(f"the caller says {len(say)} line(s) once an agent answers and transcription starts")
    click.echo(f"placed call {sid} from {from_}; follow it at {url}/_sim/calls/{sid}")
    sys.stdout.flush()


@click.group("webhooks", cls=AppGroup)
def webhooks():
    """Event webhooks for integrators (EVENT_WEBHOOK_URLS): the delivery log, and replay."""


@webhooks.command("log")
@click.option("--call", "call_id", default=None, help="Only this call's events (call_…).")
@click.option("--state", type=click.Choice(["pending", "delivered", "failed"]), default=None)
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def webhooks_log(call_id, state, limit, as_json):
    """Recent deliveries, newest first: event, URL, state, attempts, last HTTP status or error."""
    rows = _services().event_webhooks.log(call_id=call_id, state=state, limit=limit)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        outcome = r["last_status"] or r["last_error"] or ""
        click.echo(
            f"{r['created_at']}  {r['event_id']}  {r['type']:<20} {r['call_id']}  {r['state']:<9} "
            f"x{r['attempts']}  {outcome}  {r['url']}"
        )


@webhooks.command("replay")
@click.option("--event", "event_id", default=None, help="One event (evt_…).")
@click.option("--call", "call_id", default=None, help="Every event of a call (call_…).")
@click.option("--since", default=None, help="Events created at or after this UTC time (2026-12-07T14:00).")
@click.option("--failed", "failed_only", is_flag=True, help="Only deliveries that were given up on.")
@click.option("--url", default=None, help="Only deliveries to this URL.")
def webhooks_replay(event_id, call_id, since, failed_only, url):
    """Send events again, same id and body (receivers deduplicate by X-Gateway-Event-Id)."""
    from datetime import datetime

    if not (event_id or call_id or since or failed_only):
        raise click.ClickException("choose what to replay: --event, --call, --since or --failed")
    try:
        start = datetime.fromisoformat(since.removesuffix("Z")) if since else None
    except ValueError:
        raise click.ClickException(f"--since must be an ISO time like 2026-12-07T14:00, got {since!r}") from None
    count = _services().event_webhooks.replay(
        event_id=event_id, call_id=call_id, since=start, failed_only=failed_only, url=url
    )
    click.echo(f"queued {count} deliveries; a running gateway sends them (see `webhooks log`)")


@click.group("api-keys", cls=AppGroup)
def api_keys_group():
    """Server-to-server credentials for integrators (Authorization: Bearer GWK_…)."""


@api_keys_group.command("add")
@click.argument("name")
@click.option(
    "--scope",
    type=click.Choice(["read", "write"]),
    default="read",
    show_default=True,
    help="read: calls, transfers, the delivery log; write: also the admin API and replay.",
)
def api_keys_add(name, scope):
    """Make a key and print it (stdout; shown once, stored only as a digest)."""
    from gateway.services.api_keys import InvalidApiKey

    try:
        record, key = _services().api_keys.add(name, scope)
    except InvalidApiKey as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"added {record['id']} ({scope}) for {name}; the key is shown once, keep it secret:", err=True)
    click.echo(key)


@api_keys_group.command("list")
@click.option("--json", "as_json", is_flag=True)
def api_keys_list(as_json):
    """Every key: id, name, scope, made, revoked, last used (never the key itself)."""
    rows = _services().api_keys.list()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        revoked = f"revoked {r['revoked_at']}" if r["revoked_at"] else "live"
        used = f"used {r['last_used_at']}" if r["last_used_at"] else "never used"
        click.echo(f"{r['id']}  {r['scope']:<5}  {r['created_at']}  {revoked:<28}  {used:<25}  {r['name']}")


@api_keys_group.command("revoke")
@click.argument("key_id")
def api_keys_revoke(key_id):
    """Revoke a key by its id (key_…): refused from the next request on."""
    from gateway.services.api_keys import InvalidApiKey

    try:
        record = _services().api_keys.revoke(key_id)
    except InvalidApiKey as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"revoked {record['id']} ({record['name']})")


def register(app: Flask) -> None:
    """Add these commands to the app's ``flask`` command line (and so to the ``gateway`` script)."""
    for command in (agents, teams, numbers, db_upgrade, simulate_call, webhooks, api_keys_group):
        app.cli.add_command(command)
