"""Sandbox mode: the loopback doubles wired up as if they were Twilio, LiveKit and OpenAI.

Used by ``python -m gateway`` with nothing configured, and by the end-to-end tests.
The gateway talks to them through its normal adapters (TWILIO_API_BASE_URL, LIVEKIT_URL,
OPENAI_BASE_URL), so sandbox mode exercises the real code paths.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
from dataclasses import replace

from gateway.config import Settings
from gateway.ops.provision import provision
from gateway.ops.settings import OpsSettings
from gateway.sandbox.livekit_server import FakeLiveKit
from gateway.sandbox.openai_server import FakeOpenAI
from gateway.sandbox.twilio_sim import TwilioSimulator

log = logging.getLogger(__name__)

ACCOUNT_SID = "AC" + "5a" * 16
AUTH_TOKEN = "sandbox-twilio-auth-token"
PHONE_NUMBER = "+15550100000"
LIVEKIT_KEY = "sandbox-key"
LIVEKIT_SECRET = "sandbox-secret-that-is-long-enough-for-hs256"
SIP_HOST = "sip.sandbox.invalid"
SIP_USER, SIP_PASSWORD = "gateway", "sandbox-sip-password"
OPENAI_KEY = "sk-sandbox"


def sandbox_settings(base: Settings, *, livekit_port: int, twilio_port: int, openai_port: int) -> Settings:
    return replace(
        base,
        sandbox=True,
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=AUTH_TOKEN,
        twilio_phone_number=PHONE_NUMBER,
        twilio_api_base_url=f"http://127.0.0.1:{twilio_port}",
        livekit_url=f"http://127.0.0.1:{livekit_port}",
        livekit_api_key=LIVEKIT_KEY,
        livekit_api_secret=LIVEKIT_SECRET,
        livekit_sip_host=SIP_HOST,
        livekit_sip_username=SIP_USER,
        livekit_sip_password=SIP_PASSWORD,
        openai_api_key=OPENAI_KEY,
        openai_base_url=f"http://127.0.0.1:{openai_port}/v1",
    )


class Doubles:
    """The three loopback doubles, started together."""

    def __init__(
        self,
        *,
        livekit_port: int = 0,
        twilio_port: int = 0,
        openai_port: int = 0,
        time_scale: float = 1.0,
        webhook_url: str | None = None,
    ):
        self.livekit = FakeLiveKit(
            api_key=LIVEKIT_KEY, api_secret=LIVEKIT_SECRET, webhook_url=webhook_url, port=livekit_port
        )
        self.openai = FakeOpenAI(api_key=OPENAI_KEY, port=openai_port)
        self.twilio: TwilioSimulator | None = None
        self._twilio_port, self._time_scale = twilio_port, time_scale

    def start(self) -> Doubles:
        self.livekit.start()
        self.openai.start()
        self.twilio = TwilioSimulator(
            account_sid=ACCOUNT_SID,
            auth_token=AUTH_TOKEN,
            livekit_url=self.livekit.url,
            port=self._twilio_port,
            time_scale=self._time_scale,
        ).start()
        return self

    def started_twilio(self) -> TwilioSimulator:
        # The simulator needs the LiveKit double's port, known once start() has bound it.
        if self.twilio is None:
            raise RuntimeError("start() the doubles first")
        return self.twilio

    def settings(self, base: Settings) -> Settings:
        return sandbox_settings(
            base,
            livekit_port=int(self.livekit.url.rsplit(":", 1)[1]),
            twilio_port=int(self.started_twilio().url.rsplit(":", 1)[1]),
            openai_port=int(self.openai.url.rsplit(":", 1)[1]),
        )

    @staticmethod
    def process_env(settings: Settings) -> dict[str, str]:
        """The provider variables that point a gateway started as its own process (gunicorn, as the
        Procfile does) at these doubles: ``settings`` is what ``self.settings()`` returned."""
        s = settings
        env = {
            "TWILIO_ACCOUNT_SID": s.twilio_account_sid,
            "TWILIO_AUTH_TOKEN": s.twilio_auth_token,
            "TWILIO_PHONE_NUMBER": s.twilio_phone_number,
            "TWILIO_API_BASE_URL": s.twilio_api_base_url,
            "LIVEKIT_URL": s.livekit_url,
            "LIVEKIT_API_KEY": s.livekit_api_key,
            "LIVEKIT_API_SECRET": s.livekit_api_secret,
            "LIVEKIT_SIP_HOST": s.livekit_sip_host,
            "LIVEKIT_SIP_USERNAME": s.livekit_sip_username,
            "LIVEKIT_SIP_PASSWORD": s.livekit_sip_password,
            "OPENAI_API_KEY": s.openai_api_key,
            "OPENAI_BASE_URL": s.openai_base_url,
        }
        return {k: v for k, v in env.items() if v is not None}

    def connect(self, settings: Settings) -> None:
        """Point the doubles at the gateway: webhooks, the dispatch rule, the phone number."""
        self.livekit.webhook_url = settings.public_origin + "/livekit/webhook"
        self.started_twilio().add_number(PHONE_NUMBER)
        # The same provisioning ops run against real providers: trunk, dispatch rule, number URLs.
        report = provision(settings, out=log.debug, ops=OpsSettings())
        if not report.ok:
            raise RuntimeError(report.summary())

    def stop(self) -> None:
        for double in (self.twilio, self.livekit, self.openai):
            if double is not None:
                try:
                    double.stop()
                except Exception:
                    log.exception("stopping %s failed", type(double).__name__)


class SandboxPortInUse(RuntimeError):
    """A port the doubles need is taken; the message says how to pick others."""


def check_ports_free(ports: dict[str, int]) -> None:
    """Refuse with the variable to change before any double binds: werkzeug's own message
    ("Port 7880 is in use…") names neither SANDBOX_BASE_PORT nor which double it was, and exits."""
    for name, port in ports.items():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind: TIME_WAIT is free
            try:
                probe.bind(("127.0.0.1", port))
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                base = ports["livekit_port"]
                raise SandboxPortInUse(
                    f"sandbox port {port} ({name.removesuffix('_port')} double) is in use: another gateway or program "
                    f"holds it. The sandbox uses SANDBOX_BASE_PORT (now {base}) and the next two ports; "
                    f"start with another base, e.g. SANDBOX_BASE_PORT={base + 10} PORT=5001"
                ) from None


class Sandbox:
    """Sandbox mode for ``create_app``: fixed loopback ports, started with the app's background work."""

    def __init__(self, base: Settings):
        port = int(os.environ.get("SANDBOX_BASE_PORT", "7880"))
        self.ports = {"livekit_port": port, "twilio_port": port + 1, "openai_port": port + 2}
        self.settings = sandbox_settings(base, livekit_port=port, twilio_port=port + 1, openai_port=port + 2)
        self.doubles: Doubles | None = None

    @property
    def twilio(self):
        return self.doubles.twilio if self.doubles else None

    @property
    def livekit(self):
        return self.doubles.livekit if self.doubles else None

    def start(self) -> None:
        if self.doubles is not None:
            return
        check_ports_free(self.ports)
        self.doubles = Doubles(
            livekit_port=self.ports["livekit_port"],
            twilio_port=self.ports["twilio_port"],
            openai_port=self.ports["openai_port"],
            time_scale=float(os.environ.get("SANDBOX_TIME_SCALE", "1.0")),
        ).start()
        self.doubles.connect(self.settings)
        log.warning(
            "sandbox doubles: Twilio %s, LiveKit %s, OpenAI %s",
            self.doubles.started_twilio().url,
            self.doubles.livekit.url,
            self.doubles.openai.url,
        )

    def stop(self) -> None:
        if self.doubles is not None:
            self.doubles.stop()
            self.doubles = None
