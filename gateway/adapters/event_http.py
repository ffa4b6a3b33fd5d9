"""Posts an integrator event to its URL: the one outbound HTTP call of event webhooks."""

from __future__ import annotations

import requests


class EventPoster:
    def __init__(self, timeout_s: float = 10.0):
        self.timeout_s = timeout_s
        self._session = requests.Session()

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int | None, str | None]:
        """(HTTP status, None), or (None, why) when no answer came (refused, timeout, TLS)."""
        try:
            # Redirects are not followed: the body is signed for this URL's owner only.
            response = self._session.post(
                url, data=body, headers=headers, timeout=self.timeout_s, allow_redirects=False
            )
        except requests.RequestException as exc:
            return None, f"{type(exc).__name__}: {exc}"[:300]
        return response.status_code, None if response.ok else response.text[:200] or response.reason
