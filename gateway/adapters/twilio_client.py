"""Twilio adapter: REST calls through the official client, with a rewritable origin.

TWILIO_API_BASE_URL rewrites the origin of every request the client makes, so the whole
gateway can run against a loopback double (the sandbox's Twilio simulator) unchanged.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

log = logging.getLogger(__name__)


class ProviderError(Exception):
    """A provider call failed. ``retryable`` says whether repeating it is safe and useful."""

    def __init__(
        self,
        provider: str,
        kind: str,
        message: str,
        *,
        retryable: bool = False,
        retry_after_s: float | None = None,
        code: int | None = None,
    ):
        super().__init__(f"{provider} {kind}: {message}")
        self.provider, self.kind, self.retryable = provider, kind, retryable
        self.retry_after_s, self.code = retry_after_s, code


class OriginRewritingHttpClient(TwilioHttpClient):
    """A TwilioHttpClient that sends every request to ``base_url``'s origin instead."""

    def __init__(self, base_url: str, timeout: float):
        super().__init__(timeout=timeout)
        parts = urlsplit(base_url)
        self._scheme, self._netloc = parts.scheme, parts.netloc

    def request(
        self, method, url, params=None, data=None, headers=None, auth=None, timeout=None, allow_redirects=False
    ):
        parts = urlsplit(url)
        url = urlunsplit((self._scheme, self._netloc, parts.path, parts.query, parts.fragment))
        return super().request(
            method,
            url,
            params=params,
            data=data,
            headers=headers,
            auth=auth,
            timeout=timeout,
            allow_redirects=allow_redirects,
        )


class TwilioTelephony:
    """The small port the services use: place, redirect and end calls; send SMS."""

    def __init__(self, account_sid: str, auth_token: str, from_number: str, *, base_url: str, timeout_s: float):
        http_client = (
            OriginRewritingHttpClient(base_url, timeout_s)
            if base_url.rstrip("/") != "https://api.twilio.com"
            else TwilioHttpClient(timeout=timeout_s)
        )
        self.client = Client(account_sid, auth_token, http_client=http_client)
        self.from_number = from_number
        # The client imports its API modules on first use: do it now, not during B's first dial.
        _ = (self.client.calls, self.client.messages)

    def _guard(self, what: str, action):
        try:
            return action()
        except TwilioRestException as exc:
            retry_after = None
            headers = getattr(exc, "headers", None) or {}
            if exc.status == 429:
                try:
                    retry_after = float(headers.get("Retry-After", 1))
                except (TypeError, ValueError):
                    retry_after = 1.0
            retryable = exc.status == 429 or exc.status >= 500
            raise ProviderError(
                "twilio",
                f"http_{exc.status}",
                f"{what}: {exc.msg}",
                retryable=retryable,
                retry_after_s=retry_after,
                code=exc.code,
            ) from exc
        except Exception as exc:  # connection errors and timeouts from requests
            raise ProviderError("twilio", "unreachable", f"{what}: {exc}", retryable=True) from exc

    def place_call(
        self, *, to: str, url: str, status_callback: str, timeout_s: int, machine_detection: bool = False
    ) -> str:
        kwargs = dict(
            to=to,
            from_=self.from_number,
            url=url,
            method="POST",
            status_callback=status_callback,
            status_callback_event=["initiated", "ringing", "answered", "completed"],
            status_callback_method="POST",
            timeout=timeout_s,
        )
        if machine_detection:
            kwargs["machine_detection"] = "Enable"
        call = self._guard("create call", lambda: self.client.calls.create(**kwargs))
        return call.sid

    def redirect(self, call_sid: str, url: str) -> None:
        self._guard("redirect call", lambda: self.client.calls(call_sid).update(url=url, method="POST"))

    def play(self, call_sid: str, twiml: str) -> None:
        self._guard("update call", lambda: self.client.calls(call_sid).update(twiml=twiml))

    def hangup(self, call_sid: str) -> None:
        """End a call whatever its stage; a call that already ended is not an error."""
        try:
            self._guard("end call", lambda: self.client.calls(call_sid).update(status="completed"))
        except ProviderError as exc:
            if exc.code in (21220, 20404):  # not in progress / unknown: already over
                return
            raise

    def start_transcription(self, call_sid: str, *, name: str, status_callback_url: str) -> str:
        """Real-time transcription of both tracks of a call in progress (the Calls Transcriptions
        REST resource): named, so it can be stopped by name; started by REST rather than a TwiML
        <Start>, which would answer a caller still hearing ringback before <Dial answerOnBridge>."""
        transcription = self._guard(
            "start transcription",
            lambda: self.client.calls(call_sid).transcriptions.create(
                name=name, track="both_tracks", status_callback_url=status_callback_url, status_callback_method="POST"
            ),
        )
        return transcription.sid

    def stop_transcription(self, call_sid: str, name: str) -> None:
        """Stop it by name; a call already over (or a session already stopped) is not an error."""
        try:
            self._guard(
                "stop transcription", lambda: self.client.calls(call_sid).transcriptions(name).update(status="stopped")
            )
        except ProviderError as exc:
            if exc.code in (21220, 20404):
                return
            raise

    def send_sms(self, *, to: str, body: str, status_callback: str | None = None) -> str:
        kwargs = dict(to=to, from_=self.from_number, body=body)
        if status_callback:
            kwargs["status_callback"] = status_callback
        message = self._guard("send SMS", lambda: self.client.messages.create(**kwargs))
        return message.sid

    def check(self) -> str:
        account = self._guard("fetch account", lambda: self.client.api.accounts(self.client.username).fetch())
        return account.status

    def numbers(self, phone_number: str) -> list[Any]:
        return self._guard("list numbers", lambda: self.client.incoming_phone_numbers.list(phone_number=phone_number))
