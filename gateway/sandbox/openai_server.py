"""A loopback OpenAI chat-completions endpoint, for tests and the sandbox.

Modelled: `POST /v1/chat/completions` (and `/chat/completions`) with Bearer-key
auth, answering a real `chat.completion` object, so `openai.OpenAI(base_url=
fake.url + "/v1")` works unchanged. The reply is computed from the request,
never canned: with `response_format` json_object / json_schema it is a JSON
object with reason, key_facts, tried, mood and next_step (or, for a schema, the
schema's own properties) extracted by simple rules from the last user message;
otherwise the same extraction as plain text. Errors use OpenAI's error body
(`{"error": {"message", "type", "param", "code"}}`); 429s carry Retry-After.
Fault modes: latency, a number of failures, and hanging until released.

Deliberately not modelled: streaming (answers 400), tools and function calls,
n > 1, truncation by max_tokens, other endpoints (404), and any real language
understanding: the extraction rules are simple on purpose, so a test can
predict the summary from its own transcript.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

__all__ = ["FakeOpenAI", "summarize"]

CALLER_SPEAKERS = {"caller", "customer", "user", "client"}
SPEAKER_LINE = re.compile(r"^\s*(?:\[[^\]]*\]\s*)?([A-Za-z][A-Za-z ]{0,20}?)\s*:\s*(.+)$")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
TRIED_WORDS = re.compile(
    r"\b(tried|try|trying|restart\w*|reboot\w*|reset\w*|reinstall\w*|already|attempt\w*|checked)\b", re.I
)
NEXT_STEP_WORDS = re.compile(r"\b(will|going to|transfer\w*|escalat\w*|send|schedul\w*|connect\w*|call back)\b", re.I)
MOOD_WORDS = [
    ("angry", {"angry", "furious", "ridiculous", "unacceptable", "terrible", "worst", "outrageous"}),
    ("frustrated", {"frustrated", "frustrating", "annoyed", "upset", "again", "still", "waiting", "third"}),
    ("calm", {"thanks", "thank", "great", "appreciate", "fine", "okay"}),
]
MAX_FACTS = 5

ERRORS = {
    401: ("invalid_request_error", "invalid_api_key"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", None),
}
ERROR_MESSAGES = {
    429: "Rate limit reached for requests. Please try again later.",
    500: "The server had an error while processing your request. Sorry about that!",
    503: "The engine is currently overloaded, please try again later.",
}


def _message_text(message: dict) -> str:
    """The text of a chat message whose content is a string or a list of parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def _sentences(text: str) -> list:
    return [s.strip() for s in SENTENCE_END.split(" ".join(text.split())) if s.strip()]


def _has_fact(sentence: str) -> bool:
    """Digits, or a capitalised word that does not start the sentence (a name, a product)."""
    words = sentence.split()
    return any(ch.isdigit() for ch in sentence) or any(w[:1].isupper() and w[1:2].islower() for w in words[1:])


def summarize(messages: list) -> dict:
    """Extract reason, key facts, what was tried, mood and next step from a transcript.

    The transcript is the last user message; lines like "Caller: ..." and
    "Agent: ..." are split by speaker (without speaker labels, the whole
    message counts as the caller's words).
    """
    user_messages = [m for m in messages if m.get("role") == "user"]
    text = _message_text(user_messages[-1]) if user_messages else ""
    caller_lines: list[str] = []
    other_lines: list[str] = []
    for line in text.splitlines():
        match = SPEAKER_LINE.match(line)
        if match:
            speaker = match.group(1).strip().lower()
            (caller_lines if speaker in CALLER_SPEAKERS else other_lines).append(match.group(2))
    if not caller_lines and not other_lines:
        caller_lines = [text]
    caller_sentences = _sentences(" ".join(caller_lines))
    other_sentences = _sentences(" ".join(other_lines))
    everything = caller_sentences + other_sentences

    facts = []
    for sentence in everything:
        if _has_fact(sentence) and sentence not in facts:
            facts.append(sentence)
    caller_words = set(re.findall(r"[a-z']+", " ".join(caller_lines).lower()))
    mood = next((name for name, words in MOOD_WORDS if caller_words & words), "neutral")
    reason = caller_sentences[0] if caller_sentences else "No statement from the caller."
    next_steps = [s for s in other_sentences if NEXT_STEP_WORDS.search(s)]
    return {
        "reason": reason,
        "key_facts": facts[:MAX_FACTS],
        "tried": [s for s in everything if TRIED_WORDS.search(s)],
        "mood": mood,
        "next_step": next_steps[-1] if next_steps else f"Resolve: {reason}",
    }


def _empty_value(empty: dict[str, object], spec: object) -> object:
    """The empty value of a property's JSON Schema type; None for a type list (["string", "null"]),
    which the schema allows and which, unhashable, would otherwise fail the look-up."""
    kind = spec.get("type") if isinstance(spec, dict) else None
    return empty.get(kind) if isinstance(kind, str) else None


def _fit_schema(summary: dict, response_format: dict) -> dict:
    """Answer with exactly the properties a json_schema asks for (unknown ones empty)."""
    schema = (response_format.get("json_schema") or {}).get("schema") or {}
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return summary
    empty = {"string": "", "array": [], "number": 0, "integer": 0, "boolean": False, "object": {}}
    return {name: summary[name] if name in summary else _empty_value(empty, spec) for name, spec in properties.items()}


def _as_text(summary: dict) -> str:
    return "\n".join(
        [
            f"Reason: {summary['reason']}",
            f"Key facts: {'; '.join(summary['key_facts']) or 'none'}",
            f"Tried: {'; '.join(summary['tried']) or 'nothing yet'}",
            f"Mood: {summary['mood']}",
            f"Next step: {summary['next_step']}",
        ]
    )


def _tokens(text: str) -> int:
    """A rough token count (OpenAI's rule of thumb: ~4 characters a token)."""
    return max(1, len(text) // 4)


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code="-", size="-") -> None:
        pass


class FakeOpenAI:
    """OpenAI's chat-completions endpoint on loopback, with fault injection."""

    def __init__(self, api_key: str = "sk-sandbox", host: str = "127.0.0.1", port: int = 0):
        self.api_key = api_key
        self._host, self._port = host, port
        self._lock = threading.Lock()
        self._requests: list = []
        self._latency = 0.0
        self._failures: list = []
        self._flowing = threading.Event()  # cleared while hanging
        self._flowing.set()
        self._stopping = threading.Event()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> FakeOpenAI:
        self._server = server = make_server(
            self._host, self._port, self._wsgi, threaded=True, request_handler=_QuietHandler
        )
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-openai", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()
        self._flowing.set()  # release hanging requests
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(1.0)
        self._server = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeOpenAI is not started")
        return f"http://{self._host}:{self._server.server_port}"

    def set_latency(self, seconds: float) -> None:
        self._latency = seconds

    def fail_next(self, status: int = 500, count: int = 1, retry_after: float | None = None) -> None:
        """The next `count` completions fail with `status` (a 429 can carry Retry-After)."""
        with self._lock:
            self._failures.extend([(status, retry_after)] * count)

    def hang(self, on: bool = True) -> None:
        """While on, completions never answer (until hang(False) or stop())."""
        if on:
            self._flowing.clear()
        else:
            self._flowing.set()

    def requests(self) -> list:
        """Every received request body (parsed JSON), oldest first."""
        with self._lock:
            return list(self._requests)

    # -- HTTP ---------------------------------------------------------------------

    def _wsgi(self, environ, start_response):
        request = Request(environ)
        return self._handle(request)(environ, start_response)

    def _handle(self, request: Request) -> Response:
        if request.path not in ("/v1/chat/completions", "/chat/completions"):
            return _error(404, f"Invalid URL ({request.method} {request.path})", "invalid_request_error", None)
        if request.method != "POST":
            return _error(405, f"Method {request.method} not allowed", "invalid_request_error", None)
        body = request.get_json(silent=True)
        with self._lock:
            self._requests.append(body)
        if request.headers.get("Authorization", "") != f"Bearer {self.api_key}":
            presented = request.headers.get("Authorization", "").removeprefix("Bearer ")
            return _error(401, f"Incorrect API key provided: {presented[:6]}***.", *ERRORS[401])
        if self._latency:
            self._stopping.wait(self._latency)
        self._flowing.wait()
        if self._stopping.is_set():
            return _error(503, ERROR_MESSAGES[503], *ERRORS[503])
        with self._lock:
            failure = self._failures.pop(0) if self._failures else None
        if failure is not None:
            status, retry_after = failure
            kind, code = ERRORS.get(status, ("server_error", None))
            response = _error(status, ERROR_MESSAGES.get(status, "Simulated failure."), kind, code)
            if retry_after is not None:
                response.headers["Retry-After"] = str(retry_after)
            return response
        if not isinstance(body, dict) or not body.get("model") or not isinstance(body.get("messages"), list):
            return _error(400, "'model' and 'messages' are required.", "invalid_request_error", None)
        if body.get("stream"):
            return _error(400, "The sandbox double does not stream.", "invalid_request_error", None)
        return self._completion(body)

    def _completion(self, body: dict) -> Response:
        summary = summarize(body["messages"])
        response_format = body.get("response_format") or {}
        if response_format.get("type") in ("json_object", "json_schema"):
            content = json.dumps(_fit_schema(summary, response_format))
        else:
            content = _as_text(summary)
        prompt_tokens = sum(_tokens(_message_text(m)) for m in body["messages"])
        completion_tokens = _tokens(content)
        completion = {
            "id": "chatcmpl-" + uuid.uuid4().hex,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "system_fingerprint": "fp_sandbox",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
        response = Response(json.dumps(completion), mimetype="application/json")
        response.headers["x-request-id"] = "req_" + uuid.uuid4().hex
        return response


def _error(status: int, message: str, kind: str, code: str | None) -> Response:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    response = Response(json.dumps(body), status=status, mimetype="application/json")
    response.headers["x-request-id"] = "req_" + uuid.uuid4().hex
    return response
