"""``python -m gateway``: run the gateway in one process (sandbox mode when nothing is configured).

For production use gunicorn (see Procfile); this is the newcomer's and developer's runner.
"""

from __future__ import annotations

import argparse
import logging
import sys

from dotenv import load_dotenv

from gateway import config, create_app
from gateway.sandbox.runtime import SandboxPortInUse


def _parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        prog="python -m gateway",
        description=(
            "Run the warm-transfer gateway in one process on PORT (default 5000). With no Twilio and "
            "LiveKit credentials in the environment or .env it runs in sandbox mode: Twilio, LiveKit and "
            "OpenAI are loopback doubles on ports SANDBOX_BASE_PORT to SANDBOX_BASE_PORT+2 (default 7880-7882). "
            "For production use gunicorn (see Procfile)."
        ),
        epilog=(
            "Configuration is read from environment variables (.env.example lists them). Other commands: "
            "`gateway --help` (agents, db-upgrade, simulate-call, provision, doctor)."
        ),
    )


def main(argv: list[str] | None = None) -> int:
    _parser().parse_args(argv)  # --help prints and exits; anything else unknown is refused, nothing starts
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    load_dotenv()
    try:
        settings = config.from_environment()
    except config.ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    app = create_app(settings)
    services = app.extensions["gateway"]
    if services.startup_error:
        print(services.startup_error, file=sys.stderr)
        return 3
    try:
        services.start()
    except SandboxPortInUse as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if services.sandbox is not None:
        twilio_url = services.sandbox.twilio.url
        print(
            f"\n  Sandbox gateway on http://127.0.0.1:{settings.port}\n"
            f"  Place a test call:  flask --app gateway simulate-call   (or POST {twilio_url}/_sim/calls)\n"
        )
    app.run(
        host="0.0.0.0" if not settings.sandbox else "127.0.0.1", port=settings.port, threaded=True, use_reloader=False
    )
    services.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
