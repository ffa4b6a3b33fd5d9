"""doctor --call against the doubles: a real call's hops, one by one, and the fix for the first
one that fails. The operator's phone is a scripted phone of the Twilio simulator."""

from __future__ import annotations

from gateway.ops.smoke import HOPS, smoke_call

OPERATOR = "+15551230077"


def place(world, **phone) -> tuple:
    world.twilio.script_phone(OPERATOR, **{"answer_after": 2.0, "digits": "1", **phone})
    lines: list[str] = []
    result = smoke_call(world.services, OPERATOR, out=lines.append, timeout_s=30)
    return result, "\n".join(lines)


def hop_lines(output: str) -> list[str]:
    labels = [label for _hop, label in HOPS]
    return [next(label for label in labels if label in line) for line in output.splitlines() if "+" in line[:10]]


def test_every_hop_of_a_good_deployment_is_reported_as_it_happens(world):
    result, output = place(world)

    assert result.ok, output
    assert hop_lines(output) == [label for _hop, label in HOPS]
    assert "every hop worked" in output
    operator = next(c for c in world.twilio.calls() if c.to == OPERATOR)
    said = [text for kind, *rest in operator.events if kind == "say" for text in rest]
    assert any("test call from your warm transfer gateway" in text for text in said)
    assert any("Test complete" in text for text in said), said  # the operator is told it is over
    assert operator.status == "completed"


def test_webhooks_not_configured_on_livekit_is_the_hop_that_fails_with_where_to_set_them(world):
    world.livekit.webhooks_configured = False

    result, output = place(world)

    assert result.failed == "livekit_webhook", output
    assert hop_lines(output)[:6] == [label for _hop, label in HOPS][:6]  # up to the SIP bridge: fine
    assert f"{world.url}/livekit/webhook" in result.fix and "LIVEKIT_API_KEY" in result.fix
    assert "first failing hop: LiveKit webhook received" in output


def test_no_key_pressed_is_named(world):
    result, output = place(world, digits=None)

    assert result.failed == "key_pressed", output
    assert "press 1 when asked" in result.fix


def test_wrong_sip_password_fails_the_bridge_with_the_credentials_fix(make_world):
    world = make_world()
    world.services.gw.settings = world.settings.with_overrides(livekit_sip_password="not-the-trunk-password")

    result, output = place(world)

    assert result.failed == "sip_bridge", output
    assert "LiveKit refused the SIP credentials (SIP 401)" in result.fix


def test_the_doctor_command_runs_the_checks_then_the_call(world):
    world.twilio.script_phone(OPERATOR, answer_after=2.0, digits="1")
    result = world.app.test_cli_runner().invoke(args=["doctor", "--call", OPERATOR])

    assert "all checks passed" in result.output
    assert "SIP bridge into the room" in result.output and result.exit_code == 0, result.output
    bad = world.app.test_cli_runner().invoke(args=["doctor", "--call", "5551230077"])
    assert bad.exit_code == 2 and "E.164" in bad.output
