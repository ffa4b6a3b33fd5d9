"""doctor against the loopback doubles, and its pure checks."""

from __future__ import annotations

from datetime import timedelta

from gateway.adapters.store import Store
from gateway.adapters.store.models import Call, WebhookReceipt, utcnow
from gateway.config import Settings
from gateway.ops.doctor import FAIL, PASS, WARN, check_public_url, doctor, run_checks
from gateway.ops.provision import provision
from gateway.ops.settings import OpsSettings


def results(rows) -> dict[str, str]:
    return {row.name: row.result for row in rows}


def ready(settings) -> None:
    Store(settings.database_url).migrate()
    provision(settings, out=lambda _line: None, ops=OpsSettings())


def test_doctor_passes_everything_against_provisioned_doubles(provider_settings):
    ready(provider_settings)
    lines: list[str] = []

    code = doctor(provider_settings, ops=OpsSettings(), out=lines.append)

    assert code == 0, "\n".join(lines)
    assert lines[0].split()[:4] == ["check", "result", "detail", "fix"]
    rows = run_checks(provider_settings, ops=OpsSettings())
    assert {r.name for r in rows} == {
        "configuration",
        "PUBLIC_BASE_URL",
        "database",
        "migrations",
        "LiveKit",
        "LiveKit webhooks",
        "Twilio",
        "OpenAI",
        "provisioning",
    }
    assert set(results(rows).values()) == {PASS}


def test_a_wrong_livekit_secret_fails_clearly(provider_settings):
    ready(provider_settings)
    lines: list[str] = []

    code = doctor(
        provider_settings.with_overrides(livekit_api_secret="not-the-secret" * 3), ops=OpsSettings(), out=lines.append
    )

    output = "\n".join(lines)
    assert code == 1
    livekit = next(line for line in output.splitlines() if line.startswith("LiveKit"))
    assert "FAIL" in livekit and "HTTP 401" in livekit and "LIVEKIT_API_SECRET" in livekit
    assert "check(s) failed: LiveKit, provisioning" in output


def test_unapplied_migrations_and_drift_are_failures(provider_settings):
    rows = {r.name: r for r in run_checks(provider_settings, ops=OpsSettings())}

    assert rows["migrations"].result == FAIL and rows["migrations"].fix == "flask --app gateway db-upgrade"
    assert rows["provisioning"].result == FAIL and "would create" in rows["provisioning"].detail
    assert rows["provisioning"].detail.startswith("not provisioned: ")
    assert rows["provisioning"].fix.startswith("flask --app gateway provision")


def test_sandbox_mode_and_missing_openai_key_are_warnings(provider_settings):
    ready(provider_settings)
    rows = results(run_checks(provider_settings.with_overrides(sandbox=True, openai_api_key=None), ops=OpsSettings()))

    assert rows["configuration"] == WARN and rows["OpenAI"] == WARN
    assert FAIL not in rows.values()


def test_a_wrong_openai_key_fails(provider_settings):
    rows = results(run_checks(provider_settings.with_overrides(openai_api_key="sk-wrong"), ops=OpsSettings()))

    assert rows["OpenAI"] == FAIL


def test_configuration_errors_are_reported_not_raised():
    rows = run_checks(env={"TWILIO_ACCOUNT_SID": "AC" + "0" * 32})

    assert [(r.name, r.result) for r in rows] == [("configuration", FAIL)]
    assert "TWILIO_AUTH_TOKEN" in rows[0].detail


def test_public_base_url_assumptions():
    production = Settings(sandbox=False)
    verdict = lambda url: check_public_url(production.with_overrides(public_base_url=url)).result  # noqa: E731

    assert verdict("https://gateway.example.com") == PASS
    assert verdict("http://gateway.example.com") == FAIL
    assert verdict("https://localhost:5000") == FAIL
    assert verdict("https://10.0.0.5") == FAIL
    assert verdict("https://gateway.example.com/app") == FAIL
    assert check_public_url(Settings(sandbox=True, public_base_url="http://127.0.0.1:5000")).result == PASS


def bridged_call(store: Store, sid: str, seconds_ago: float) -> None:
    """A call whose <Sip> leg Twilio started (it reached LiveKit) ``seconds_ago``."""
    with store.session() as session:
        session.add(
            Call(
                id=f"c-{sid}",
                twilio_sid=sid,
                from_number="+15557654321",
                to_number="+15550100000",
                room=f"call_{sid}",
                state="bridging",
                dial_sid="CA" + sid[2:],
                created_at=utcnow() - timedelta(seconds=seconds_ago),
            )
        )


def test_calls_bridged_with_no_livekit_webhook_fail_with_where_to_configure_them(provider_settings):
    """Webhooks are LiveKit server or project settings, which provision cannot set: doctor notices
    their absence from the calls that reached LiveKit without one."""
    ready(provider_settings)
    store = Store(provider_settings.database_url)
    bridged_call(store, "CA" + "1" * 32, seconds_ago=600)
    bridged_call(store, "CA" + "2" * 32, seconds_ago=5)  # too recent to judge

    rows = {r.name: r for r in run_checks(provider_settings, ops=OpsSettings(), store=store)}

    check = rows["LiveKit webhooks"]
    assert check.result == FAIL and "no LiveKit webhook has arrived ever, though 1 call(s)" in check.detail
    assert "https://gw.example.com/livekit/webhook" in check.fix and "LIVEKIT_API_KEY" in check.fix

    with store.session() as session:
        session.add(WebhookReceipt(key="lk:EV_after", at=utcnow() - timedelta(seconds=300)))
    assert {r.name: r for r in run_checks(provider_settings, ops=OpsSettings(), store=store)}[
        "LiveKit webhooks"
    ].result == PASS
    store.engine.dispose()


def test_no_sip_credentials_nor_addresses_is_a_failure_not_a_warning(provider_settings):
    ready(provider_settings)
    bare = provider_settings.with_overrides(livekit_sip_username=None, livekit_sip_password=None)
    rows = {r.name: r for r in run_checks(bare, ops=OpsSettings())}
    assert rows["configuration"].result == FAIL and "LiveKit refuses" in rows["configuration"].detail
