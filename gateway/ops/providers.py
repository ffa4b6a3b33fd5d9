"""Short-lived provider clients for the ops commands, and one-line error descriptions.

The commands run outside the web process, so each opens its own LiveKit client on a
fresh event loop instead of borrowing the app's long-lived one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import requests
from livekit import api
from twilio.base.exceptions import TwilioRestException

from gateway.adapters.twilio_client import ProviderError, TwilioTelephony
from gateway.config import Settings


def run_livekit(settings: Settings, work: Callable[[api.LiveKitAPI], Awaitable[Any]], *, timeout_s: float = 5.0) -> Any:
    """Run ``work(client)`` against LiveKit on a fresh loop; each request gets ``timeout_s``.
    If this thread already runs a loop (an async caller, Playwright's sync API), the fresh
    loop runs on a thread of its own, as asyncio.run cannot nest."""

    async def go():
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        async with api.LiveKitAPI(
            settings.livekit_url, settings.livekit_api_key, settings.livekit_api_secret, timeout=timeout
        ) as client:
            return await work(client)

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(go())
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ops-livekit") as pool:
        return pool.submit(asyncio.run, go()).result()


def telephony(settings: Settings, *, timeout_s: float = 5.0) -> TwilioTelephony:
    return TwilioTelephony(
        settings.twilio_account_sid,
        settings.twilio_auth_token,
        settings.twilio_phone_number,
        base_url=settings.twilio_api_base_url,
        timeout_s=timeout_s,
    )


def describe_error(exc: BaseException) -> str:
    """What went wrong, in one line an operator can act on."""
    if isinstance(exc, api.TwirpError):
        detail = f"HTTP {exc.status}"
        if exc.code and exc.code != "unknown":
            detail += f" {exc.code}"
        if exc.status == 401 and not exc.message:  # LiveKit's auth layer answers a bad token in plain text
            return f"{detail}: LiveKit rejected the token signed with LIVEKIT_API_KEY/LIVEKIT_API_SECRET"
        return f"{detail}: {exc.message}" if exc.message else detail
    if isinstance(exc, TwilioRestException):
        return f"HTTP {exc.status} (Twilio error {exc.code}): {exc.msg}"
    cause = exc.__cause__
    if isinstance(cause, (api.TwirpError, TwilioRestException)):
        return describe_error(cause)
    if isinstance(cause, requests.ConnectionError) and cause.request is not None and cause.request.url:
        url = cause.request.url
        return f"cannot connect to {urlsplit(url.decode() if isinstance(url, bytes) else url).netloc}"
    if isinstance(exc, ProviderError):
        return str(exc)
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "timed out"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect to {exc.host}:{exc.port}"
    return f"{type(exc).__name__}: {exc}"
