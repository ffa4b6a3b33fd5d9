"""Operations settings: proxies, metrics, logging and provisioning extras.

Kept apart from gateway.config so the core Settings stay about calls; read from the same
environment, validated with the same ConfigError.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from gateway.config import ConfigError

# (name, required outside sandbox, description) — app.json lists these next to config.VARIABLES.
OPS_VARIABLES: list[tuple[str, bool, str]] = [
    (
        "TRUSTED_PROXY_HOPS",
        False,
        "Reverse proxies in front of the app whose X-Forwarded-* headers are trusted. Default: 1.",
    ),
    (
        "TRUSTED_PROXY_ADDRESSES",
        False,
        "Comma-separated IPs/CIDRs of those proxies; X-Forwarded-* from any other peer is ignored "
        "(* = any, only where nothing but the proxy can reach the app). Default: 127.0.0.1,::1.",
    ),
    ("METRICS_TOKEN", False, "Bearer token required by /metrics; without it /metrics is open."),
    (
        "PROMETHEUS_MULTIPROC_DIR",
        False,
        "Writable directory for Prometheus multi-process metrics under gunicorn (e.g. /tmp/prometheus).",
    ),
    ("LOG_LEVEL", False, "Log level of the JSON logs (DEBUG, INFO, WARNING, ERROR). Default: INFO."),
    (
        "LIVEKIT_SIP_ALLOWED_ADDRESSES",
        False,
        "Comma-separated IPs/CIDRs the LiveKit inbound trunk accepts (provision). Default: any.",
    ),
    (
        "LIVEKIT_OUTBOUND_ADDRESS",
        False,
        "SIP host of an outbound trunk, e.g. example.pstn.twilio.com; provision creates the trunk when set.",
    ),
    ("LIVEKIT_OUTBOUND_USERNAME", False, "Digest username of the outbound trunk."),
    ("LIVEKIT_OUTBOUND_PASSWORD", False, "Digest password of the outbound trunk."),
]


@dataclass(frozen=True)
class OpsSettings:
    trusted_proxy_hops: int = 1
    trusted_proxy_addresses: tuple[str, ...] = ("127.0.0.1", "::1")
    metrics_token: str | None = None
    prometheus_multiproc_dir: str | None = None
    log_level: str = "INFO"
    sip_allowed_addresses: tuple[str, ...] = ()
    outbound_address: str | None = None
    outbound_username: str | None = None
    outbound_password: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> OpsSettings:
        get = lambda name: (env.get(name) or "").strip()  # noqa: E731
        hops = get("TRUSTED_PROXY_HOPS") or "1"
        if not hops.isdigit():
            raise ConfigError(f"TRUSTED_PROXY_HOPS must be a whole number (0 = no proxy), got {hops!r}")
        addresses = tuple(
            a.strip() for a in (get("TRUSTED_PROXY_ADDRESSES") or "127.0.0.1,::1").split(",") if a.strip()
        )
        for address in addresses:
            if address != "*":
                try:
                    ipaddress.ip_network(address, strict=False)
                except ValueError:
                    raise ConfigError(f"TRUSTED_PROXY_ADDRESSES: {address!r} is not an IP address or CIDR") from None
        level = (get("LOG_LEVEL") or "INFO").upper()
        if not isinstance(logging.getLevelName(level), int):
            raise ConfigError(f"LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {level!r}")
        if bool(get("LIVEKIT_OUTBOUND_USERNAME")) != bool(get("LIVEKIT_OUTBOUND_PASSWORD")):
            raise ConfigError("LIVEKIT_OUTBOUND_USERNAME and LIVEKIT_OUTBOUND_PASSWORD must be set together")
        return cls(
            trusted_proxy_hops=int(hops),
            trusted_proxy_addresses=addresses,
            metrics_token=get("METRICS_TOKEN") or None,
            prometheus_multiproc_dir=get("PROMETHEUS_MULTIPROC_DIR") or None,
            log_level=level,
            sip_allowed_addresses=tuple(
                a.strip() for a in get("LIVEKIT_SIP_ALLOWED_ADDRESSES").split(",") if a.strip()
            ),
            outbound_address=get("LIVEKIT_OUTBOUND_ADDRESS") or None,
            outbound_username=get("LIVEKIT_OUTBOUND_USERNAME") or None,
            outbound_password=get("LIVEKIT_OUTBOUND_PASSWORD") or None,
        )
