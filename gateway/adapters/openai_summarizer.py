"""OpenAI adapter: one chat completion with a hard deadline and no hidden retries."""

from __future__ import annotations

import json
from typing import Any, cast

import openai
from openai.types.chat import ChatCompletionMessageParam

from gateway.adapters.twilio_client import ProviderError


class OpenAISummarizer:
    def __init__(self, api_key: str, model: str, *, base_url: str | None = None):
        self.model = model
        self._api_key, self._base_url = api_key, base_url
        self._client = openai.OpenAI(api_key=api_key, base_url=base_url, max_retries=0, timeout=10.0)

    def complete_json(self, messages: list[dict[str, str]], *, timeout_s: float) -> dict[str, Any]:
        """Ask for a JSON object; any error or an unparsable answer raises ProviderError."""
        try:
            response = self._client.with_options(timeout=timeout_s, max_retries=0).chat.completions.create(
                model=self.model,
                # {"role": "system" | "user", "content": str} dicts (domain.summary.build_messages).
                messages=cast(list[ChatCompletionMessageParam], messages),
                response_format={"type": "json_object"},
                temperature=0.2,
                max_tokens=500,
            )
        except openai.APITimeoutError as exc:
            raise ProviderError("openai", "timeout", "chat completion timed out", retryable=True) from exc
        except openai.APIStatusError as exc:
            raise ProviderError(
                "openai",
                f"http_{exc.status_code}",
                str(exc.message)[:200],
                retryable=exc.status_code >= 500 or exc.status_code == 429,
            ) from exc
        except openai.APIError as exc:
            raise ProviderError("openai", "unreachable", str(exc)[:200], retryable=True) from exc
        content = response.choices[0].message.content or ""
        try:
            parsed = json.loads(content)
        except json.JSONDecodeError as exc:
            raise ProviderError("openai", "bad_output", "answer was not JSON") from exc
        if not isinstance(parsed, dict):
            raise ProviderError("openai", "bad_output", "answer was not a JSON object")
        return parsed
