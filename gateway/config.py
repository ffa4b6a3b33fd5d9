"""Settings from the environment, validated once at start-up with one clear message.

With no Twilio and no LiveKit credentials at all the gateway runs in *sandbox mode*
(loopback doubles); with some but not all, it refuses to start rather than guess.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from urllib.parse import urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

E164 = re.compile(r"^\+[1-9]\d{6,14}$")

# (name, required outside sandbox, description) — the single source for .env.example and app.json.
VARIABLES: list[tuple[str, bool, str]] = [
    ("TWILIO_ACCOUNT_SID", True, "Twilio account SID (AC…)."),
    ("TWILIO_AUTH_TOKEN", True, "Twilio auth token; signs webhooks and authenticates REST calls."),
    ("TWILIO_PHONE_NUMBER", True, "The E.164 number callers dial; caller ID for agent legs and SMS."),
    (
        "TWILIO_API_BASE_URL",
        False,
        "Origin for Twilio REST requests (default https://api.twilio.com); for loopback doubles.",
    ),
    ("LIVEKIT_URL", True, "LiveKit server URL (wss://… or https://…)."),
    ("LIVEKIT_API_KEY", True, "LiveKit API key."),
    ("LIVEKIT_API_SECRET", True, "LiveKit API secret."),
    ("LIVEKIT_SIP_HOST", True, "LiveKit SIP domain the TwiML dials, e.g. abc123.sip.livekit.cloud."),
    (
        "LIVEKIT_SIP_USERNAME",
        False,
        "Username of the LiveKit inbound trunk's digest auth (this pair or LIVEKIT_SIP_ALLOWED_ADDRESSES is needed).",
    ),
    ("LIVEKIT_SIP_PASSWORD", False, "Password of the LiveKit inbound trunk's digest auth."),
    ("LIVEKIT_ROOM_PREFIX", False, "Prefix of the Callee dispatch rule (rooms are <prefix>_<token>). Default: call."),
    ("OPENAI_API_KEY", False, "OpenAI API key; without it summaries use the local extractive fallback."),
    ("OPENAI_MODEL", False, "Chat model for transfer summaries. Default: gpt-4o-mini."),
    ("OPENAI_BASE_URL", False, "OpenAI API base URL (default https://api.openai.com/v1)."),
    ("DATABASE_URL", False, "SQLAlchemy URL; postgres:// accepted. Default: sqlite:///gateway.db."),
    ("PUBLIC_BASE_URL", True, "Public https origin Twilio calls; builds callback URLs and validates signatures."),
    ("ADMIN_TOKEN", False, "Bearer token for the admin REST API (/api/admin/…)."),
    ("SECRET_KEY", True, "Signs console session cookies (any long random string)."),
    ("RING_TIMEOUT_S", False, "Seconds an agent is rung before the next one is tried. Default: 20."),
    (
        "QUEUE_TIMEOUT_S",
        False,
        "Longest wait in a team's queue before voicemail (a team's --max-wait overrides it). Default: 120.",
    ),
    (
        "CALLBACK_RETRY_S",
        False,
        "Seconds before a callback the caller did not answer is tried once more (then it is missed). Default: 60.",
    ),
    ("SUMMARY_DEADLINE_S", False, "Seconds to wait for OpenAI before the local summary is used. Default: 3."),
    ("INTRO_TIMEOUT_S", False, "Seconds after Connect before agent A is dropped automatically. Default: 60."),
    (
        "SERVICE_LEVEL_S",
        False,
        "The board's service level: the share of callers answered within this many seconds. Default: 20.",
    ),
    (
        "BOARD_TIMEZONE",
        False,
        "IANA time zone whose midnight starts the board's day (e.g. America/New_York). Default: UTC.",
    ),
    ("HOLD_MUSIC_URL", False, "Audio played to a held caller."),
    (
        "TRANSCRIPTION_ENABLED",
        False,
        "Transcribe each call in real time: one named Twilio session, started once connected (true/false). "
        "Default: false.",
    ),
    ("VOICEMAIL_ENABLED", False, "Offer voicemail when no agent answers (true/false). Default: true."),
    ("RETENTION_HOURS", False, "Hours transcripts and summaries are kept after a call ends. Default: 24."),
    (
        "USE_MOVE_PARTICIPANT",
        False,
        "Use LiveKit Cloud's MoveParticipant instead of re-bridging (true/false). Default: false.",
    ),
    ("PORT", False, "Port the web process binds (set by the platform). Default: 5000."),
    (
        "EVENT_WEBHOOK_URLS",
        False,
        "Comma-separated URLs that receive call and transfer events as signed JSON (README: Event webhooks).",
    ),
    ("EVENT_WEBHOOK_SECRET", False, "Signs event webhooks (HMAC-SHA256); required with EVENT_WEBHOOK_URLS."),
    (
        "JOB_LEASE_S",
        False,
        "Seconds a worker holds a job before another may take it over (crash recovery). Default: 30.",
    ),
    (
        "WEB_CALL_ORIGINS",
        False,
        "Comma-separated origins (https://shop.example) whose pages may embed the Call us button and "
        "create web calls (CORS, frame-ancestors). Default: the gateway's own origin only.",
    ),
    ("WEB_CALLS_MAX", False, "Most web calls live at once; beyond it POST /api/web-calls answers 429. Default: 20."),
    (
        "WEB_CALL_REJOIN_S",
        False,
        "Seconds a web caller who left (page reloaded, connection dropped) keeps their place and may "
        "rejoin the call; 0 ends the call when they leave. Default: 30, at most 300.",
    ),
    (
        "WEB_CALL_CONTEXT_SECRET",
        False,
        "Shared secret a website signs caller context with (HMAC-SHA256); unsigned context is ignored.",
    ),
]

# A place kept longer than this is a place another caller is kept waiting behind for nobody.
MAX_WEB_CALL_REJOIN_S = 300

DEFAULT_HOLD_MUSIC = "http://com.twilio.sounds.music.s3.amazonaws.com/MARKOVICHAMP-Borghestral.mp3"


class ConfigError(ValueError):
    """A missing or malformed setting; the message names it."""


@dataclass(frozen=True)
class Settings:
    twilio_account_sid: str = ""
    twilio_auth_token: str = ""
    twilio_phone_number: str = ""
    twilio_api_base_url: str = "https://api.twilio.com"
    livekit_url: str = ""
    livekit_api_key: str = ""
    livekit_api_secret: str = ""
    livekit_sip_host: str = ""
    livekit_sip_username: str | None = None
    livekit_sip_password: str | None = None
    livekit_room_prefix: str = "call"
    openai_api_key: str | None = None
    openai_model: str = "gpt-4o-mini"
    openai_base_url: str | None = None
    database_url: str = "sqlite:///gateway.db"
    public_base_url: str = "http://127.0.0.1:5000"
    admin_token: str | None = None
    secret_key: str = "sandbox-not-secret"
    ring_timeout_s: float = 20.0
    queue_timeout_s: float = 120.0
    callback_retry_s: float = 60.0
    summary_deadline_s: float = 3.0
    intro_timeout_s: float = 60.0
    service_level_s: float = 20.0
    board_timezone: str = "UTC"
    hold_music_url: str = DEFAULT_HOLD_MUSIC
    transcription_enabled: bool = False
    voicemail_enabled: bool = True
    retention_hours: float = 24.0
    use_move_participant: bool = False
    port: int = 5000
    sandbox: bool = False
    # Background work: the in-process job runner (tests may turn it off to step jobs by hand).
    run_jobs: bool = True
    job_threads: int = 8
    job_lease_s: float = 30.0
    provider_timeout_s: float = 5.0
    event_webhook_urls: tuple[str, ...] = ()
    event_webhook_secret: str = ""
    # First retry of a failed event delivery after this many seconds, doubling each time.
    event_webhook_retry_base_s: float = 5.0
    web_call_origins: tuple[str, ...] = ()
    web_calls_max: int = 20
    web_call_rejoin_s: float = 30.0
    web_call_context_secret: str = ""
    extra: Mapping[str, str] = field(default_factory=dict)

    def with_overrides(self, **changes) -> Settings:
        return replace(self, **changes)

    @property
    def public_origin(self) -> str:
        return self.public_base_url.rstrip("/")


def _bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _number(name: str, raw: str, *, minimum: float = 0.0) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {raw!r}")
    return value


def _url(name: str, raw: str, schemes: tuple[str, ...]) -> str:
    parsed = urlparse(raw)
    if parsed.scheme not in schemes or not parsed.netloc:
        raise ConfigError(f"{name} must be a URL starting with {' or '.join(s + '://' for s in schemes)}, got {raw!r}")
    return raw.rstrip("/")


def _origin(raw: str) -> str:
    """An origin as browsers send it: scheme://host[:port], nothing after."""
    parsed = urlparse(raw)
    if parsed.scheme not in ("https", "http") or not parsed.netloc or parsed.path not in ("", "/") or parsed.query:
        raise ConfigError(f"WEB_CALL_ORIGINS: {raw!r} is not an origin such as https://shop.example")
    return f"{parsed.scheme}://{parsed.netloc}".lower()


def normalise_database_url(url: str) -> str:
    """Heroku's add-on says ``postgres://``; SQLAlchemy 2 wants ``postgresql+psycopg://``."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


PROVIDER_CREDENTIALS = (
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "LIVEKIT_API_KEY",
    "LIVEKIT_API_SECRET",
    "LIVEKIT_URL",
)


# Reads one setting, stripped; "" when unset.
Getter = Callable[[str], str]


def load(env: Mapping[str, str]) -> Settings:
    """Build and validate Settings from an environment mapping."""
    get: Getter = lambda name: (env.get(name) or "").strip()  # noqa: E731
    sandbox = not any(get(name) for name in PROVIDER_CREDENTIALS)
    values: dict = {"sandbox": sandbox}
    # One reader per concern, in this order: when several settings are wrong, the first one read is reported.
    values.update(_provider_accounts(get, sandbox))
    values.update(_livekit_sip(get, sandbox))
    values.update(_openai(get))
    values.update(_database(get))
    values.update(_security(get))
    values.update(_timers(get))
    values.update(_call_features(get))
    values.update(_event_webhooks(get))
    values.update(_web_calls(get))
    if get("PORT"):
        values["port"] = int(_number("PORT", get("PORT"), minimum=1))
    if sandbox and "public_base_url" not in values:
        values["public_base_url"] = f"http://127.0.0.1:{values.get('port', 5000)}"
    return Settings(**values)


def _require_provider_settings(get: Getter) -> None:
    # Everything missing is named in one message, so a deployer fixes it in one pass.
    missing = [name for name, required, _ in VARIABLES if required and not get(name)]
    if not (get("LIVEKIT_SIP_USERNAME") and get("LIVEKIT_SIP_PASSWORD")) and not get("LIVEKIT_SIP_ALLOWED_ADDRESSES"):
        # LiveKit refuses an inbound trunk with neither ("for security, one of the fields must be set").
        missing.append("LIVEKIT_SIP_USERNAME and LIVEKIT_SIP_PASSWORD (or LIVEKIT_SIP_ALLOWED_ADDRESSES)")
    if missing:
        raise ConfigError(
            "missing configuration: "
            + ", ".join(missing)
            + " (provider credentials are partly set, so sandbox mode is off; set these or unset all"
            " Twilio and LiveKit credentials to run the sandbox)"
        )


def _provider_accounts(get: Getter, sandbox: bool) -> dict:
    """Twilio and LiveKit accounts, and the public URL they call back."""
    values: dict = {}
    if not sandbox:
        _require_provider_settings(get)
        sid = get("TWILIO_ACCOUNT_SID")
        if not re.fullmatch(r"AC[0-9a-fA-F]{32}", sid):
            raise ConfigError(f"TWILIO_ACCOUNT_SID must look like AC followed by 32 hex digits, got {sid[:6]!r}…")
        number = get("TWILIO_PHONE_NUMBER")
        if not E164.match(number):
            raise ConfigError(f"TWILIO_PHONE_NUMBER must be E.164 (+15551234567), got {number!r}")
        values.update(
            twilio_account_sid=sid,
            twilio_auth_token=get("TWILIO_AUTH_TOKEN"),
            twilio_phone_number=number,
            livekit_url=_url("LIVEKIT_URL", get("LIVEKIT_URL"), ("ws", "wss", "http", "https")),
            livekit_api_key=get("LIVEKIT_API_KEY"),
            livekit_api_secret=get("LIVEKIT_API_SECRET"),
            livekit_sip_host=get("LIVEKIT_SIP_HOST"),
            public_base_url=_url("PUBLIC_BASE_URL", get("PUBLIC_BASE_URL"), ("https", "http")),
        )
    elif get("PUBLIC_BASE_URL"):
        values["public_base_url"] = _url("PUBLIC_BASE_URL", get("PUBLIC_BASE_URL"), ("https", "http"))
    if get("TWILIO_API_BASE_URL"):
        values["twilio_api_base_url"] = _url("TWILIO_API_BASE_URL", get("TWILIO_API_BASE_URL"), ("https", "http"))
    return values


def _livekit_sip(get: Getter, sandbox: bool) -> dict:
    """The inbound trunk's digest credentials and the rooms' name prefix."""
    values: dict = {}
    if get("LIVEKIT_SIP_USERNAME"):
        values["livekit_sip_username"] = get("LIVEKIT_SIP_USERNAME")
    if get("LIVEKIT_SIP_PASSWORD"):
        values["livekit_sip_password"] = get("LIVEKIT_SIP_PASSWORD")
    if bool(values.get("livekit_sip_username")) != bool(values.get("livekit_sip_password")):
        raise ConfigError("LIVEKIT_SIP_USERNAME and LIVEKIT_SIP_PASSWORD must be set together")
    if not sandbox and not values.get("livekit_sip_username") and not get("LIVEKIT_SIP_ALLOWED_ADDRESSES"):
        # LiveKit refuses an inbound trunk with neither ("for security, one of the fields must be set").
        raise ConfigError(
            "missing configuration: LIVEKIT_SIP_USERNAME and LIVEKIT_SIP_PASSWORD (or LIVEKIT_SIP_ALLOWED_ADDRESSES): "
            "LiveKit accepts no inbound SIP trunk without credentials or allowed addresses"
        )
    if get("LIVEKIT_ROOM_PREFIX"):
        prefix = get("LIVEKIT_ROOM_PREFIX")
        if not re.fullmatch(r"[A-Za-z0-9-]{1,32}", prefix):
            raise ConfigError(f"LIVEKIT_ROOM_PREFIX must be letters, digits or '-', got {prefix!r}")
        values["livekit_room_prefix"] = prefix
    return values


def _openai(get: Getter) -> dict:
    values: dict = {}
    if get("OPENAI_API_KEY"):
        values["openai_api_key"] = get("OPENAI_API_KEY")
    if get("OPENAI_MODEL"):
        values["openai_model"] = get("OPENAI_MODEL")
    if get("OPENAI_BASE_URL"):
        values["openai_base_url"] = _url("OPENAI_BASE_URL", get("OPENAI_BASE_URL"), ("https", "http"))
    return values


def _database(get: Getter) -> dict:
    url = get("DATABASE_URL")
    if not url:
        return {}
    if "://" not in url:
        raise ConfigError(f"DATABASE_URL must be a database URL (postgres://… or sqlite:///…), got {url!r}")
    return {"database_url": normalise_database_url(url)}


def _security(get: Getter) -> dict:
    # SECRET_KEY is required outside sandbox mode (_require_provider_settings); the sandbox has a default.
    values: dict = {}
    if get("ADMIN_TOKEN"):
        values["admin_token"] = get("ADMIN_TOKEN")
    if get("SECRET_KEY"):
        values["secret_key"] = get("SECRET_KEY")
    return values


def _timers(get: Getter) -> dict:
    values: dict = {}
    for name, attr, minimum in (
        ("RING_TIMEOUT_S", "ring_timeout_s", 5),
        ("QUEUE_TIMEOUT_S", "queue_timeout_s", 10),
        ("CALLBACK_RETRY_S", "callback_retry_s", 1),
        ("SUMMARY_DEADLINE_S", "summary_deadline_s", 0.1),
        ("INTRO_TIMEOUT_S", "intro_timeout_s", 1),
        ("SERVICE_LEVEL_S", "service_level_s", 1),
        ("RETENTION_HOURS", "retention_hours", 0),
        ("JOB_LEASE_S", "job_lease_s", 1),
    ):
        if get(name):
            values[attr] = _number(name, get(name), minimum=minimum)
    return values


def _call_features(get: Getter) -> dict:
    """The board's day, hold music and the features turned on or off."""
    values: dict = {}
    if get("BOARD_TIMEZONE"):
        zone = get("BOARD_TIMEZONE")
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"BOARD_TIMEZONE must be an IANA time zone such as Europe/Paris, got {zone!r}") from None
        values["board_timezone"] = zone
    if get("HOLD_MUSIC_URL"):
        values["hold_music_url"] = _url("HOLD_MUSIC_URL", get("HOLD_MUSIC_URL"), ("https", "http"))
    for name, attr in (
        ("TRANSCRIPTION_ENABLED", "transcription_enabled"),
        ("VOICEMAIL_ENABLED", "voicemail_enabled"),
        ("USE_MOVE_PARTICIPANT", "use_move_participant"),
    ):
        if get(name):
            values[attr] = _bool(name, get(name))
    return values


def _event_webhooks(get: Getter) -> dict:
    if not get("EVENT_WEBHOOK_URLS"):
        return {}
    urls = [u.strip() for u in get("EVENT_WEBHOOK_URLS").split(",") if u.strip()]
    values: dict = {"event_webhook_urls": tuple(_url("EVENT_WEBHOOK_URLS", u, ("https", "http")) for u in urls)}
    if not get("EVENT_WEBHOOK_SECRET"):
        raise ConfigError("missing configuration: EVENT_WEBHOOK_SECRET (signs the events EVENT_WEBHOOK_URLS receive)")
    values["event_webhook_secret"] = get("EVENT_WEBHOOK_SECRET")
    return values


def _web_calls(get: Getter) -> dict:
    values: dict = {}
    if get("WEB_CALL_ORIGINS"):
        values["web_call_origins"] = tuple(_origin(o.strip()) for o in get("WEB_CALL_ORIGINS").split(",") if o.strip())
    if get("WEB_CALLS_MAX"):
        values["web_calls_max"] = int(_number("WEB_CALLS_MAX", get("WEB_CALLS_MAX"), minimum=0))
    if get("WEB_CALL_REJOIN_S"):
        rejoin = _number("WEB_CALL_REJOIN_S", get("WEB_CALL_REJOIN_S"), minimum=0)
        if rejoin > MAX_WEB_CALL_REJOIN_S:
            raise ConfigError(f"WEB_CALL_REJOIN_S must be at most {MAX_WEB_CALL_REJOIN_S}, got {rejoin:g}")
        values["web_call_rejoin_s"] = rejoin
    if get("WEB_CALL_CONTEXT_SECRET"):
        values["web_call_context_secret"] = get("WEB_CALL_CONTEXT_SECRET")
    return values


def from_environment() -> Settings:
    return load(os.environ)


def describe(settings: Settings) -> dict:
    """Settings safe to print: secrets reduced to set/unset."""
    secret = ("token", "secret", "password", "key")
    out = {}
    for f in fields(settings):
        value = getattr(settings, f.name)
        if any(s in f.name for s in secret) and value:
            value = "(set)"
        out[f.name] = value
    return out
