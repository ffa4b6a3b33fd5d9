"""The ``provision`` and ``doctor`` commands, for ``flask --app gateway …`` and ``python -m gateway.ops …``.

Under flask they use the app's settings (sandbox ports included); ``python -m gateway.ops``
reads the environment (and .env) without building an app, so it also works when the app
would not start.
"""

from __future__ import annotations

import os

import click
from dotenv import load_dotenv
from flask import Flask, current_app
from flask.cli import with_appcontext

from gateway import config
from gateway.config import E164, Settings
from gateway.domain.queues import InvalidTeam
from gateway.ops.doctor import doctor
from gateway.ops.provision import provision
from gateway.ops.settings import OpsSettings
from gateway.ops.smoke import smoke_call

PROVISION_HELP = (
    "Create or update the LiveKit SIP trunk and dispatch rule and point the Twilio number at this "
    "gateway. Safe to repeat: only differences are changed."
)
DOCTOR_HELP = (
    "Check configuration, database, migrations, provider credentials and provisioning; "
    "exit status 1 when any check fails."
)
DRY_RUN = click.option("--dry-run", is_flag=True, help="Print what would change and change nothing.")
TAKE_OVER = click.option(
    "--take-over-number",
    is_flag=True,
    help="Detach the Twilio number from an Elastic SIP trunk or TwiML app it is attached to (Twilio ignores "
    "its voice URL while it is), so its calls reach this gateway.",
)


RELEASE_HELP = (
    "The release phase (Procfile): apply the database migrations, then provision when provider credentials "
    "are set (idempotent: a second run changes nothing; sandbox mode has nothing to provision). A failed "
    "provisioning fails the release and says what to fix, so a deploy never serves calls it cannot route."
)


def _provision(settings: Settings, ops: OpsSettings, dry_run: bool, take_over_number: bool = False) -> int:
    if settings.sandbox:
        click.echo("sandbox mode: the sandbox sets up its loopback doubles itself when it starts; nothing to provision")
        return 0
    return provision(settings, dry_run=dry_run, out=click.echo, ops=ops, take_over_number=take_over_number).exit_code


def _app_settings() -> tuple:
    services = current_app.extensions["gateway"]
    return services, current_app.extensions.get("ops") or OpsSettings.from_env(os.environ)


@click.command("provision", help=PROVISION_HELP)
@with_appcontext
@DRY_RUN
@TAKE_OVER
@click.option(
    "--team",
    "teams",
    multiple=True,
    help="Send TWILIO_PHONE_NUMBER's callers to this team (repeat for a menu of teams; same as `numbers set`).",
)
@click.pass_context
def provision_command(ctx: click.Context, dry_run: bool, take_over_number: bool, teams: tuple[str, ...]) -> None:
    services, ops = _app_settings()
    code = _provision(services.gw.settings, ops, dry_run, take_over_number)
    if teams and not code:
        number = services.gw.settings.twilio_phone_number
        if dry_run:
            click.echo(f"would send {number}'s callers to: {', '.join(teams)}")
        else:
            try:
                services.teams.set_number(number, list(teams))
            except InvalidTeam as exc:
                raise click.ClickException(str(exc)) from None
            click.echo(f"{number}'s callers go to: {', '.join(teams)}" + (" (a menu)" if len(teams) > 1 else ""))
    ctx.exit(code)


@click.command("release", help=RELEASE_HELP)
@with_appcontext
@click.pass_context
def release_command(ctx: click.Context) -> None:
    services, ops = _app_settings()
    services.gw.store.migrate()
    click.echo("release: the database is at the newest migration")
    code = _provision(services.gw.settings, ops, dry_run=False)
    if code:
        click.echo(
            "release: provisioning FAILED (above): fix it and deploy again, or run `flask --app gateway "
            "provision` once it is fixed; /readyz and doctor say 'not provisioned' until then",
            err=True,
        )
    ctx.exit(code)


@click.command("doctor", help=DOCTOR_HELP)
@with_appcontext
@click.option(
    "--call",
    "phone",
    metavar="+E164",
    help="After the checks, place a real test call to this phone (one you hold) and report every hop: "
    "answer it, listen, press 1.",
)
@click.pass_context
def doctor_command(ctx: click.Context, phone: str | None) -> None:
    services, ops = _app_settings()
    code = doctor(services.gw.settings, store=services.gw.store, ops=ops, out=click.echo)
    if phone:
        if not E164.match(phone):
            raise click.BadParameter(f"{phone!r} is not an E.164 number (+15551234567)", param_hint="--call")
        if code:
            click.echo("the test call would fail on the check(s) above; fix them first, then run --call again")
            ctx.exit(code)
        click.echo("")
        code = smoke_call(services, phone, out=click.echo).exit_code
    ctx.exit(code)


def register(app: Flask) -> None:
    """``flask --app gateway provision|release|doctor``: with the app's settings and store."""
    for command in (provision_command, release_command, doctor_command):
        app.cli.add_command(command)


@click.group()
def cli() -> None:
    """Operations commands for the warm-transfer gateway (no app is built)."""
    load_dotenv()


@cli.command("provision", help=PROVISION_HELP)
@DRY_RUN
@TAKE_OVER
@click.pass_context
def provision_from_environment(ctx: click.Context, dry_run: bool, take_over_number: bool) -> None:
    try:
        settings, ops = config.from_environment(), OpsSettings.from_env(os.environ)
    except config.ConfigError as exc:
        raise click.ClickException(f"configuration error: {exc}") from None
    ctx.exit(_provision(settings, ops, dry_run, take_over_number))


@cli.command("doctor", help=DOCTOR_HELP)
@click.pass_context
def doctor_from_environment(ctx: click.Context) -> None:
    ctx.exit(doctor(out=click.echo))
