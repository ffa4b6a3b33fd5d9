"""``doctor``: is this deployment able to take calls? One row per check, with the fix.

Every check makes one harmless call (nothing is created or changed) and reports PASS,
FAIL or WARN (worth knowing, not broken). Any FAIL makes the exit status 1.
"""

from __future__ import annotations

import ipaddress
import os
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import openai
from livekit import api
from sqlalchemy.engine import make_url

from gateway import config
from gateway.adapters.store import Store
from gateway.config import ConfigError, Settings
from gateway.ops import checks
from gateway.ops.providers import describe_error, run_livekit, telephony
from gateway.ops.provision import DONE, FAILED, SKIPPED, UNCHANGED, WOULD_CREATE, provision
from gateway.ops.settings import OpsSettings

PASS, FAIL, WARN = "PASS", "FAIL", "WARN"
TIMEOUT_S = 5.0
DETAIL_WIDTH = 72
PROVISION_FIX = "flask --app gateway provision (or python -m gateway.ops provision)"
SANDBOX_FIX = "sandbox mode: start the gateway (python -m gateway) so its doubles run, then run doctor again"


@dataclass(frozen=True)
class Check:
    name: str
    result: str
    detail: str
    fix: str = ""


def _guarded(name: str, fix: str, check: Callable[[], Check]) -> Check:
    """A check that raised is a FAIL with the reason, not a crash of the whole report."""
    try:
        return check()
    except Exception as exc:
        return Check(name, FAIL, describe_error(exc), fix)


def _configuration(settings: Settings, ops: OpsSettings) -> Check:
    if settings.sandbox:
        return Check(
            "configuration",
            WARN,
            "SANDBOX MODE: no Twilio or LiveKit credentials; every provider is a loopback double",
            "set the TWILIO_* and LIVEKIT_* variables to take real calls",
        )
    if not (settings.livekit_sip_username or ops.sip_allowed_addresses):
        return Check(
            "configuration",
            FAIL,
            "no SIP credentials and no allowed addresses: LiveKit refuses such an inbound trunk",
            "set LIVEKIT_SIP_USERNAME/LIVEKIT_SIP_PASSWORD or LIVEKIT_SIP_ALLOWED_ADDRESSES, then provision",
        )
    return Check("configuration", PASS, "production settings loaded")


def check_public_url(settings: Settings) -> Check:
    name = "PUBLIC_BASE_URL"
    url = urlparse(settings.public_base_url)
    if url.path not in ("", "/") or url.query or url.fragment:
        return Check(
            name,
            FAIL,
            f"{settings.public_base_url} has a path; callback URLs are built from the origin",
            "set it to the bare origin, e.g. https://gateway.example.com",
        )
    if settings.sandbox:
        return Check(name, PASS, f"{settings.public_origin} (sandbox: loopback is fine)")
    if url.scheme != "https":
        return Check(
            name,
            FAIL,
            f"{settings.public_origin} is not https; signatures and console cookies need it",
            "use the app's public https URL",
        )
    host = url.hostname or ""
    try:
        address = ipaddress.ip_address(host)
        unreachable = address.is_loopback or address.is_private or address.is_unspecified or address.is_link_local
    except ValueError:
        unreachable = host == "localhost" or host.endswith((".localhost", ".local", ".internal"))
    if unreachable:
        return Check(
            name,
            FAIL,
            f"Twilio cannot reach {host}",
            "use the app's public https URL (in development, a tunnel such as ngrok)",
        )
    return Check(name, PASS, settings.public_origin)


def _database(settings: Settings, store: Store | None) -> list[Check]:
    shown = make_url(settings.database_url).render_as_string(hide_password=True)
    own = store is None
    store = store or Store(settings.database_url)
    try:
        schema = checks.schema(store)
    except Exception as exc:
        return [
            Check(
                "database",
                FAIL,
                f"{shown}: {checks.database_error(exc)}",
                "check DATABASE_URL (host, port, name, password) and that the database server runs",
            ),
            Check("migrations", FAIL, "database unreachable", "fix the database first"),
        ]
    finally:
        if own:
            store.engine.dispose()
    database = Check("database", PASS, f"{shown} reachable")
    if schema.current:
        return [database, Check("migrations", PASS, schema.describe())]
    return [database, Check("migrations", FAIL, schema.describe(), "flask --app gateway db-upgrade")]


def _fix(settings: Settings, fix: str) -> str:
    """In sandbox mode a provider is unreachable because the gateway (and its doubles) is not running."""
    return SANDBOX_FIX if settings.sandbox else fix


def _livekit(settings: Settings) -> Check:
    fix = _fix(settings, "check LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET")

    def check() -> Check:
        rooms = run_livekit(settings, lambda lk: lk.room.list_rooms(api.ListRoomsRequest()), timeout_s=TIMEOUT_S)
        return Check("LiveKit", PASS, f"{settings.livekit_url}: credentials accepted ({len(rooms.rooms)} rooms)")

    return _guarded("LiveKit", fix, check)


def _livekit_webhooks(settings: Settings, store: Store | None) -> Check:
    """Webhooks are configured on the LiveKit server or Cloud project, not through the API, so
    provisioning cannot set them: judge by whether they arrived while calls reached LiveKit."""
    name, fix = "LiveKit webhooks", checks.WEBHOOK_FIX.format(origin=settings.public_origin)
    own = store is None
    store = store or Store(settings.database_url)
    try:
        health = checks.livekit_webhooks(store)
    except Exception as exc:
        return Check(name, WARN, f"not checked: {describe_error(exc)}", "fix the database first")
    finally:
        if own:
            store.engine.dispose()
    if not health.ok:
        return Check(name, FAIL, health.describe(), fix)
    if health.last is None:
        return Check(name, PASS, "none expected yet: no call has reached LiveKit (doctor --call places one)")
    return Check(name, PASS, health.describe())


def _twilio(settings: Settings) -> Check:
    def check() -> Check:
        status = telephony(settings, timeout_s=TIMEOUT_S).check()
        if status != "active":
            return Check(
                "Twilio",
                FAIL,
                f"account {settings.twilio_account_sid} is {status}",
                "reactivate the account in the Twilio console",
            )
        return Check("Twilio", PASS, f"account {settings.twilio_account_sid} active")

    return _guarded("Twilio", _fix(settings, "check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"), check)


def _openai(settings: Settings) -> Check:
    if not settings.openai_api_key:
        return Check(
            "OpenAI",
            WARN,
            "OPENAI_API_KEY not set: summaries use the local extractive fallback",
            "set OPENAI_API_KEY for model summaries",
        )
    fix = _fix(settings, "check OPENAI_API_KEY (and OPENAI_BASE_URL if set)")
    client = openai.OpenAI(
        api_key=settings.openai_api_key, base_url=settings.openai_base_url, timeout=TIMEOUT_S, max_retries=0
    )
    model = settings.openai_model

    def check() -> Check:
        try:
            available = {m.id for m in client.models.list()}
        except openai.NotFoundError:
            # No /models (some compatible servers, the sandbox double): one token proves the key and model.
            client.chat.completions.create(model=model, messages=[{"role": "user", "content": "ping"}], max_tokens=1)
            return Check("OpenAI", PASS, f"key accepted; {model} answered (the server has no /models)")
        if model not in available:
            return Check(
                "OpenAI",
                FAIL,
                f"key accepted, but model {model} is not available to it",
                "set OPENAI_MODEL to a model this key can use",
            )
        return Check("OpenAI", PASS, f"key accepted; {model} available")

    try:
        return check()
    except openai.AuthenticationError:
        return Check("OpenAI", FAIL, "key rejected (HTTP 401)", fix)
    except openai.APIStatusError as exc:
        return Check("OpenAI", FAIL, f"HTTP {exc.status_code}: {exc.message}", fix)
    except openai.APIError as exc:
        return Check("OpenAI", FAIL, f"{client.base_url}: {exc}", fix)


def _provisioning(settings: Settings, ops: OpsSettings) -> Check:
    report = provision(settings, dry_run=True, out=lambda _line: None, ops=ops)
    failed = next((r for r in report.results if r.outcome == FAILED), None)
    if failed is not None:
        return Check(
            "provisioning", FAIL, f"{failed.step}: {failed.detail}", "fix the check above, then run doctor again"
        )
    drift = [
        f"{r.step} {r.outcome}" for r in report.results if r.outcome in DONE and r.outcome not in (UNCHANGED, SKIPPED)
    ]
    if drift:
        if settings.sandbox:  # the sandbox sets up its own doubles when it starts: informative only
            return Check("provisioning", WARN, "; ".join(drift), "none needed in sandbox mode")
        if report.outcome("LiveKit dispatch rule") == WOULD_CREATE:
            # Nothing routes callers to a room the gateway watches until provision has run once.
            return Check("provisioning", FAIL, "not provisioned: " + "; ".join(drift), PROVISION_FIX)
        return Check("provisioning", FAIL, "; ".join(drift), PROVISION_FIX)
    return Check("provisioning", PASS, "LiveKit trunk, dispatch rule and Twilio number webhooks match")


def run_checks(
    settings: Settings | None = None,
    *,
    env: Mapping[str, str] | None = None,
    store: Store | None = None,
    ops: OpsSettings | None = None,
) -> list[Check]:
    """All checks. Without ``settings`` they are loaded from ``env`` (default: the process
    environment) as ``create_app`` would, sandbox ports included."""
    env = os.environ if env is None else env
    try:
        if settings is None:
            from gateway.bootstrap import run_settings

            settings = run_settings(config.load(env))
        ops = ops or OpsSettings.from_env(env)
    except ConfigError as exc:
        return [Check("configuration", FAIL, str(exc), "set the variables named (see .env.example or app.json)")]
    return [
        _configuration(settings, ops),
        check_public_url(settings),
        *_database(settings, store),
        _livekit(settings),
        _livekit_webhooks(settings, store),
        _twilio(settings),
        _openai(settings),
        _provisioning(settings, ops),
    ]


def table(rows: list[Check]) -> str:
    """Columns check, result, detail (wrapped), fix."""
    rows = [Check("check", "result", "detail", "fix"), *rows]
    details = [textwrap.wrap(r.detail, DETAIL_WIDTH) or [""] for r in rows]
    name_w = max(len(r.name) for r in rows)
    result_w = max(len(r.result) for r in rows)
    detail_w = max(len(line) for wrapped in details for line in wrapped)
    lines = []
    for row, wrapped in zip(rows, details, strict=False):
        lines.append(f"{row.name:<{name_w}}  {row.result:<{result_w}}  {wrapped[0]:<{detail_w}}  {row.fix}".rstrip())
        lines.extend(f"{'':<{name_w}}  {'':<{result_w}}  {more}" for more in wrapped[1:])
    return "\n".join(lines)


def doctor(settings: Settings | None = None, *, out: Callable[[str], Any] = print, **kwargs) -> int:
    """Print the table; 1 when any check failed, else 0."""
    rows = run_checks(settings, **kwargs)
    out(table(rows))
    failed = [r.name for r in rows if r.result == FAIL]
    warnings = sum(1 for r in rows if r.result == WARN)
    out(
        f"{len(failed)} check(s) failed: {', '.join(failed)}"
        if failed
        else f"all checks passed ({warnings} warning(s))"
        if warnings
        else "all checks passed"
    )
    return 1 if failed else 0
