from pathlib import Path

import pytest

from gateway.config import VARIABLES, ConfigError, load

FULL = {
    "TWILIO_ACCOUNT_SID": "AC" + "a" * 32,
    "TWILIO_AUTH_TOKEN": "tok",
    "TWILIO_PHONE_NUMBER": "+15550001234",
    "LIVEKIT_URL": "wss://x.livekit.cloud",
    "LIVEKIT_API_KEY": "k",
    "LIVEKIT_API_SECRET": "s",
    "LIVEKIT_SIP_HOST": "x.sip.livekit.cloud",
    "LIVEKIT_SIP_USERNAME": "twilio",
    "LIVEKIT_SIP_PASSWORD": "a-long-sip-password",
    "PUBLIC_BASE_URL": "https://gw.example.com",
    "SECRET_KEY": "sk",
}


def test_nothing_configured_is_sandbox():
    assert load({}).sandbox is True


def test_full_configuration_is_not_sandbox():
    settings = load(FULL)
    assert settings.sandbox is False and settings.public_origin == "https://gw.example.com"


def test_a_trunk_needs_sip_credentials_or_allowed_addresses():
    """LiveKit refuses an inbound trunk with neither: say so at start-up, not at the first call."""
    bare = {k: v for k, v in FULL.items() if not k.startswith("LIVEKIT_SIP_USERNAME") and k != "LIVEKIT_SIP_PASSWORD"}
    with pytest.raises(ConfigError, match="LIVEKIT_SIP_USERNAME and LIVEKIT_SIP_PASSWORD.*ALLOWED_ADDRESSES"):
        load(bare)
    assert load({**bare, "LIVEKIT_SIP_ALLOWED_ADDRESSES": "54.172.60.0/30"}).livekit_sip_username is None


def test_partial_credentials_name_what_is_missing_and_never_fall_back_to_sandbox():
    env = dict(FULL)
    del env["LIVEKIT_API_SECRET"]
    with pytest.raises(ConfigError, match="LIVEKIT_API_SECRET"):
        load(env)


def test_everything_missing_is_named_in_one_message_including_the_secret_key():
    """A deployer who set only the Twilio trio learns every other missing name on the first run."""
    twilio_only = {k: FULL[k] for k in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_PHONE_NUMBER")}
    with pytest.raises(ConfigError) as raised:
        load(twilio_only)
    message = str(raised.value)
    for name in ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET", "LIVEKIT_SIP_HOST", "PUBLIC_BASE_URL"):
        assert name in message
    assert "SECRET_KEY" in message and "LIVEKIT_SIP_ALLOWED_ADDRESSES" in message
    assert "TWILIO_AUTH_TOKEN" not in message


@pytest.mark.parametrize(
    "name,value,needle",
    [
        ("TWILIO_PHONE_NUMBER", "5550001234", "E.164"),
        ("TWILIO_ACCOUNT_SID", "XX123", "TWILIO_ACCOUNT_SID"),
        ("PUBLIC_BASE_URL", "gw.example.com", "PUBLIC_BASE_URL"),
        ("RING_TIMEOUT_S", "soon", "RING_TIMEOUT_S"),
        ("TRANSCRIPTION_ENABLED", "maybe", "TRANSCRIPTION_ENABLED"),
        ("WEB_CALL_REJOIN_S", "a while", "WEB_CALL_REJOIN_S"),
        ("WEB_CALL_REJOIN_S", "-1", "at least"),
        ("WEB_CALL_REJOIN_S", "3600", "at most 300"),
    ],
)
def test_malformed_values_are_named(name, value, needle):
    with pytest.raises(ConfigError, match=needle):
        load({**FULL, name: value})


def test_a_web_callers_place_is_kept_30_s_by_default_or_as_configured_0_for_none():
    assert load(FULL).web_call_rejoin_s == 30.0
    assert load({**FULL, "WEB_CALL_REJOIN_S": "45"}).web_call_rejoin_s == 45.0
    assert load({**FULL, "WEB_CALL_REJOIN_S": "0"}).web_call_rejoin_s == 0.0


def test_heroku_postgres_scheme_is_accepted():
    assert load({**FULL, "DATABASE_URL": "postgres://u:p@h:5432/d"}).database_url == "postgresql+psycopg://u:p@h:5432/d"


def test_env_example_and_readme_list_every_variable():
    from gateway.ops.settings import OPS_VARIABLES

    root = Path(__file__).resolve().parents[2]
    env_example, readme = (root / ".env.example").read_text(), (root / "README.md").read_text()
    for name, _, _ in VARIABLES + OPS_VARIABLES:
        assert f"\n{name}=" in env_example, f"{name} missing from .env.example (run scripts/gen_config_docs.py)"
        assert f"| `{name}` |" in readme, f"{name} missing from the README (run scripts/gen_config_docs.py)"
