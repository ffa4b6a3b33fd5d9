"""Provisioning against the loopback LiveKit and Twilio doubles."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from click.testing import CliRunner
from livekit import api

from gateway import create_app
from gateway.bootstrap import build
from gateway.ops import init_app
from gateway.ops.commands import cli as ops_cli
from gateway.ops.providers import run_livekit, telephony
from gateway.ops.provision import (
    CREATED,
    FAILED,
    NOT_RUN,
    SKIPPED,
    UNCHANGED,
    UPDATED,
    WOULD_CREATE,
    WOULD_UPDATE,
    provision,
)
from gateway.ops.settings import OpsSettings
from gateway.sandbox.runtime import PHONE_NUMBER

from .conftest import PUBLIC

READS = {"ListSIPInboundTrunk", "ListSIPOutboundTrunk", "ListSIPDispatchRule"}


def run(settings, ops=None, **kwargs):
    lines: list[str] = []
    report = provision(settings, out=lines.append, ops=ops or OpsSettings(), **kwargs)
    return report, "\n".join(lines)


def number(settings):
    return telephony(settings).numbers(PHONE_NUMBER)[0]


def inbound_trunk(settings):
    return run_livekit(settings, lambda lk: lk.sip.list_inbound_trunk(api.ListSIPInboundTrunkRequest())).items[0]


def outbound_trunk(settings):
    return run_livekit(settings, lambda lk: lk.sip.list_outbound_trunk(api.ListSIPOutboundTrunkRequest())).items[0]


def dispatch_rule(settings):
    return run_livekit(settings, lambda lk: lk.sip.list_dispatch_rule(api.ListSIPDispatchRuleRequest())).items[0]


def methods_since(doubles, start: int) -> set[str]:
    return {entry["method"] for entry in doubles.livekit.twirp_log()[start:]}


def test_first_run_creates_and_second_run_changes_nothing(doubles, provider_settings):
    report, output = run(provider_settings)

    assert report.exit_code == 0, output
    assert [r.outcome for r in report.results] == [CREATED, SKIPPED, CREATED, UPDATED]
    trunk = inbound_trunk(provider_settings)
    assert trunk.name == "gateway" and list(trunk.numbers) == []
    assert dict(trunk.headers_to_attributes) == {"X-GW-Leg": "gw.leg", "X-GW-Call": "gw.call"}
    assert (trunk.auth_username, trunk.auth_password) == (
        provider_settings.livekit_sip_username,
        provider_settings.livekit_sip_password,
    )
    rule = dispatch_rule(provider_settings)
    assert rule.name == "gateway-callee" and list(rule.trunk_ids) == [trunk.sip_trunk_id]
    assert rule.rule.dispatch_rule_callee.room_prefix == "call" and not rule.rule.dispatch_rule_callee.randomize
    assert (rule.room_config.empty_timeout, rule.room_config.departure_timeout) == (120, 30)
    configured = number(provider_settings)
    assert (configured.voice_url, configured.voice_method) == (f"{PUBLIC}/twilio/voice", "POST")
    assert configured.status_callback == f"{PUBLIC}/twilio/status"
    assert configured.voice_fallback_url == f"{PUBLIC}/twilio/fallback"

    writes_before, updated_before = len(doubles.livekit.twirp_log()), configured.date_updated
    again, output = run(provider_settings)

    assert again.exit_code == 0
    assert [r.outcome for r in again.results] == [UNCHANGED, SKIPPED, UNCHANGED, UNCHANGED]
    assert methods_since(doubles, writes_before) <= READS
    assert number(provider_settings).date_updated == updated_before
    assert output.count("unchanged") == 3


def test_dry_run_prints_the_plan_and_changes_nothing(doubles, provider_settings):
    report, output = run(provider_settings, dry_run=True)

    assert report.exit_code == 0
    assert [r.outcome for r in report.results] == [WOULD_CREATE, SKIPPED, WOULD_CREATE, WOULD_UPDATE]
    assert "nothing was changed" in output
    assert methods_since(doubles, 0) <= READS
    assert number(provider_settings).voice_url is None

    run(provider_settings)
    changed = provider_settings.with_overrides(livekit_room_prefix="room")
    start = len(doubles.livekit.twirp_log())
    report, output = run(changed, dry_run=True, ops=OpsSettings(sip_allowed_addresses=("203.0.113.0/24",)))

    assert report.outcome("LiveKit inbound trunk") == WOULD_UPDATE and "allowed_addresses" in output
    assert report.outcome("LiveKit dispatch rule") == WOULD_UPDATE
    assert methods_since(doubles, start) <= READS


def test_only_what_differs_is_updated_and_unmanaged_fields_are_kept(doubles, provider_settings):
    run(provider_settings)
    trunk = inbound_trunk(provider_settings)
    trunk.krisp_enabled = True  # set by hand in the LiveKit console, say
    run_livekit(provider_settings, lambda lk: lk.sip.update_inbound_trunk(trunk.sip_trunk_id, trunk))

    report, output = run(provider_settings, ops=OpsSettings(sip_allowed_addresses=("203.0.113.0/24",)))

    assert report.outcome("LiveKit inbound trunk") == UPDATED and "allowed_addresses" in output
    assert report.outcome("LiveKit dispatch rule") == UNCHANGED
    trunk = inbound_trunk(provider_settings)
    assert list(trunk.allowed_addresses) == ["203.0.113.0/24"] and trunk.krisp_enabled


def test_outbound_trunk_when_configured(doubles, provider_settings):
    outbound = OpsSettings(outbound_address="gw.pstn.twilio.com", outbound_username="u", outbound_password="p")

    first, _ = run(provider_settings, ops=outbound)
    second, _ = run(provider_settings, ops=outbound)

    assert (first.outcome("LiveKit outbound trunk"), second.outcome("LiveKit outbound trunk")) == (CREATED, UNCHANGED)
    trunk = outbound_trunk(provider_settings)
    assert (trunk.address, list(trunk.numbers)) == ("gw.pstn.twilio.com", [PHONE_NUMBER])


def test_a_failure_midway_says_what_was_done_and_what_not(doubles, provider_settings):
    doubles.livekit.inject_fault(method="CreateSIPDispatchRule", status=500, code="internal")

    report, output = run(provider_settings)

    assert report.exit_code == 1
    assert [r.outcome for r in report.results] == [CREATED, SKIPPED, FAILED, NOT_RUN]
    assert "FAILED        HTTP 500 internal: injected fault" in output
    assert "done: LiveKit inbound trunk. not done: LiveKit dispatch rule, Twilio number webhooks" in output
    assert number(provider_settings).voice_url is None

    retried, _ = run(provider_settings)
    assert [r.outcome for r in retried.results] == [UNCHANGED, SKIPPED, CREATED, UPDATED]


def test_a_missing_phone_number_fails_clearly(doubles, provider_settings):
    report, output = run(provider_settings.with_overrides(twilio_phone_number="+15550109999"))

    assert report.exit_code == 1 and report.outcome("Twilio number webhooks") == FAILED
    assert "+15550109999 is not a phone number of Twilio account" in output


def test_flask_command_provisions_and_sets_the_exit_status(doubles, provider_settings):
    services = build(provider_settings)
    app = create_app(services=services)
    init_app(app)
    cli = app.test_cli_runner()

    dry = cli.invoke(args=["provision", "--dry-run"])
    assert dry.exit_code == 0 and "would create" in dry.output
    done = cli.invoke(args=["provision"])
    assert done.exit_code == 0 and "provisioning complete" in done.output
    doubles.livekit.inject_fault(method="ListSIPInboundTrunk", status=503, code="unavailable")
    failed = cli.invoke(args=["provision"])
    assert failed.exit_code == 1 and "FAILED" in failed.output
    services.gw.store.engine.dispose()


def test_module_command_in_sandbox_mode_has_nothing_to_do(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no .env here
    for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET", "LIVEKIT_URL"):
        monkeypatch.delenv(name, raising=False)

    result = CliRunner().invoke(ops_cli, ["provision", "--dry-run"])

    assert result.exit_code == 0 and "sandbox mode" in result.output


def test_provision_works_from_inside_a_running_event_loop(doubles, provider_settings):
    async def caller():
        return run(provider_settings)

    # On a thread of its own: this test's thread may itself run a loop (Playwright's sync API).
    with ThreadPoolExecutor(max_workers=1) as pool:
        report, output = pool.submit(asyncio.run, caller()).result()

    assert report.exit_code == 0, output


def test_a_dispatch_rule_made_before_it_configured_rooms_is_updated(doubles, provider_settings):
    """Deployments provisioned when the gateway still created each caller's room get the room settings
    on the rule at the next provision run; the rule itself (id, trunks) stays."""
    run(provider_settings)
    rule = dispatch_rule(provider_settings)
    rule.ClearField("room_config")
    run_livekit(provider_settings, lambda lk: lk.sip.update_dispatch_rule(rule.sip_dispatch_rule_id, rule))
    assert dispatch_rule(provider_settings).room_config.empty_timeout == 0

    report, output = run(provider_settings)

    assert report.outcome("LiveKit dispatch rule") == UPDATED and "room_config" in output
    updated = dispatch_rule(provider_settings)
    assert updated.sip_dispatch_rule_id == rule.sip_dispatch_rule_id
    assert (updated.room_config.empty_timeout, updated.room_config.departure_timeout) == (120, 30)


# --- what real providers do that a first deployment trips over -----------------------------------


def test_the_trunk_rings_longer_than_the_gateway_keeps_a_caller_waiting(doubles, provider_settings):
    """LiveKit's default ringing timeout (3 min) would end a queued caller's bridge with 486 before
    a QUEUE_TIMEOUT_S of 300 s: the trunk is set from the gateway's own queue timeout."""
    settings = provider_settings.with_overrides(queue_timeout_s=300.0)
    report, output = run(settings)
    assert report.ok, output
    assert inbound_trunk(settings).ringing_timeout.seconds == 330
    trunk = inbound_trunk(settings)
    trunk.ringing_timeout.seconds = 180  # reset by hand: the next run puts it back
    run_livekit(settings, lambda lk: lk.sip.update_inbound_trunk(trunk.sip_trunk_id, trunk))
    again, output = run(settings)
    assert again.outcome("LiveKit inbound trunk") == UPDATED and "ringing_timeout" in output
    assert inbound_trunk(settings).ringing_timeout.seconds == 330


def test_a_trunk_with_neither_credentials_nor_addresses_is_refused_before_asking_livekit(doubles, provider_settings):
    settings = provider_settings.with_overrides(livekit_sip_username=None, livekit_sip_password=None)
    start = len(doubles.livekit.twirp_log())
    report, output = run(settings)
    assert report.outcome("LiveKit inbound trunk") == FAILED
    assert "LiveKit refuses an inbound trunk with neither" in output and "LIVEKIT_SIP_USERNAME" in output
    assert doubles.livekit.twirp_log()[start:] == []  # nothing sent that LiveKit would refuse


def test_an_existing_catch_all_trunk_is_explained_not_fought(doubles, provider_settings):
    """LiveKit's Twilio quick-start leaves a trunk with no numbers: a second catch-all conflicts."""
    quickstart = doubles.livekit.seed_inbound_trunk(
        api.SIPInboundTrunkInfo(name="twilio-quickstart", allowed_addresses=["54.172.60.0/30"])
    )
    report, output = run(provider_settings)
    assert report.outcome("LiveKit inbound trunk") == FAILED
    assert f"another catch-all inbound trunk exists in this LiveKit project: {quickstart.sip_trunk_id}" in output
    assert "lk sip inbound delete" in output
    assert report.outcome("Twilio number webhooks") == NOT_RUN


def test_a_number_on_an_elastic_sip_trunk_is_refused_unless_taken_over(doubles, provider_settings):
    """Twilio ignores the voice URL of a number with a trunk_sid: provision must not report success."""
    sid = number(provider_settings).sid
    telephony(provider_settings).client.incoming_phone_numbers(sid).update(trunk_sid="TK" + "7" * 32)

    refused, output = run(provider_settings)
    assert refused.outcome("Twilio number webhooks") == FAILED and refused.exit_code == 1
    assert f"attached to Elastic SIP trunk TK{'7' * 32}, so Twilio ignores its voice URL" in output
    assert "--take-over-number" in output
    assert number(provider_settings).trunk_sid == "TK" + "7" * 32  # nothing changed

    taken, output = run(provider_settings, take_over_number=True)
    assert taken.ok, output
    now = number(provider_settings)
    assert (now.trunk_sid, now.voice_application_sid, now.voice_url) == (None, None, f"{PUBLIC}/twilio/voice")


def test_a_number_on_a_twiml_app_is_refused_too(doubles, provider_settings):
    sid = number(provider_settings).sid
    telephony(provider_settings).client.incoming_phone_numbers(sid).update(voice_application_sid="AP" + "3" * 32)
    report, output = run(provider_settings, dry_run=True)
    assert report.outcome("Twilio number webhooks") == FAILED and f"TwiML app AP{'3' * 32}" in output


def test_provision_command_takes_over_the_number(doubles, provider_settings):
    sid = number(provider_settings).sid
    telephony(provider_settings).client.incoming_phone_numbers(sid).update(trunk_sid="TK" + "7" * 32)
    services = build(provider_settings)
    app = create_app(services=services)
    init_app(app)
    cli = app.test_cli_runner()
    assert cli.invoke(args=["provision"]).exit_code == 1
    result = cli.invoke(args=["provision", "--take-over-number"])
    assert result.exit_code == 0, result.output
    assert "detached" in result.output and number(provider_settings).trunk_sid is None
    services.gw.store.engine.dispose()


def test_the_release_phase_migrates_and_provisions_once_credentials_are_set(doubles, provider_settings):
    services = build(provider_settings)
    app = create_app(services=services)
    init_app(app)
    cli = app.test_cli_runner()

    first = cli.invoke(args=["release"])
    assert first.exit_code == 0, first.output
    assert "newest migration" in first.output and "provisioning complete" in first.output
    assert dispatch_rule(provider_settings).name  # callers now reach a room the gateway watches
    before = len(doubles.livekit.twirp_log())
    again = cli.invoke(args=["release"])  # every deploy runs it: the second changes nothing
    assert again.exit_code == 0 and "unchanged" in again.output
    assert methods_since(doubles, before) <= READS

    doubles.livekit.inject_fault(method="ListSIPInboundTrunk", status=503, code="unavailable")
    failed = cli.invoke(args=["release"])
    assert failed.exit_code == 1 and "provisioning FAILED" in failed.stderr
    services.gw.store.engine.dispose()


def test_the_release_phase_in_sandbox_mode_only_migrates(doubles, provider_settings):
    services = build(provider_settings.with_overrides(sandbox=True))
    app = create_app(services=services)
    init_app(app)
    result = app.test_cli_runner().invoke(args=["release"])
    assert result.exit_code == 0, result.output
    assert "newest migration" in result.output and "nothing to provision" in result.output
    assert not doubles.livekit.twirp_log()  # nothing asked of LiveKit
    services.gw.store.engine.dispose()
