"""A loopback OpenAI chat-completions endpoint, for tests and the sandbox.

Modelled: `POST /v1/chat/completions` (and `/chat/completions`) with Bearer-key
auth, answering a real `chat.completion` object, so `openai.OpenAI(base_url=
fake.url + "/v1")` works unchanged. The reply is computed from the request, never
canned, as a model that follows the prompt would answer it: it reads the
transcript and A's notes from the last user message, and in JSON mode
(`response_format` json_object) answers one object with exactly the keys the
system prompt asks for ("keys: reason (string…), key_facts (array…)"); for a
json_schema, the schema's own properties; otherwise plain text. As OpenAI does,
JSON mode is refused (400, param "messages") unless some message contains the
word "json". Errors use OpenAI's error body (`{"error": {"message", "type",
"param", "code"}}`); 429s carry Retry-After. Fault modes: latency, a number of
failures, and hanging until released.

Deliberately not modelled: streaming (answers 400), tools and function calls,
n > 1, truncation by max_tokens, other endpoints (404), and any real language
understanding: the rules are simple on purpose, so a test can predict the
summary from its own transcript and notes.
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
NOTE_LINE = re.compile(r"^\s*[-*•]\s*(.+)$")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
TRIED_WORDS = re.compile(
    r"\b(tried|try|trying|restart\w*|reboot\w*|reset\w*|reinstall\w*|already|attempt\w*|checked|power-cycled)\b", re.I
)
NEXT_STEP_WORDS = re.compile(
    r"\b(will|going to|transfer\w*|escalat\w*|send|schedul\w*|connect\w*|call back|needs?|next|arrange)\b", re.I
)
REQUEST_WORDS = re.compile(
    r"\b(need|want|would like|i'd like|calling about|refund|cancel\w*|charged|broken|not working|doesn't|didn't|"
    r"won't|can't|late|lost|wrong|locked|error|dropp\w*|problem|move|change|reschedule|declined|estimate|never|missing)\b",
    re.I,
)
GREETING = re.compile(r"^(hi|hello|hey|good (morning|afternoon|evening)|thanks|thank you|how are you)\b", re.I)
# A model that follows its system prompt does not act on instructions quoted in the call data.
INJECTION = re.compile(
    r"\b(ignore (all |the )?(previous|prior|above)|instructions|send the sms|tell the agent)\b", re.I
)
FACT_TOKEN = re.compile(r"[$£€]?\b[A-Z]*\d[\w./-]*")
MOOD_WORDS = [
    ("angry", {"angry", "furious", "ridiculous", "unacceptable", "terrible", "worst", "outrageous"}),
    ("frustrated", {"frustrated", "frustrating", "annoyed", "upset", "again", "still", "waiting", "third"}),
    ("calm", {"thanks", "thank", "great", "appreciate", "fine", "okay"}),
]
DEFAULT_KEYS = {"reason": "string", "key_facts": "array", "tried": "array", "mood": "string", "next_step": "string"}
# "... with exactly these keys: reason (string: ...), key_facts (array of ...), ..." as our prompt words it.
KEYS_CLAUSE = re.compile(r"keys?\s*:?\s*(.+)", re.I | re.S)
KEY_SPEC = re.compile(r"\b([a-z][a-z_]*)\s*\((string|array|number|integer|boolean|object|one or two words)", re.I)
MAX_FACTS = 8
UNITS = {"dollars", "pounds", "euros", "mg", "ml", "days", "nights", "machines", "a", "per"}
JSON_WORD_MESSAGE = (
    "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'."
)

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


def _fact_phrases(sentence: str) -> list:
    """The word before each number or code with it ("order 4411", "of 49.99"), and two-word capitalised names."""
    words = sentence.replace(",", " ").split()
    phrases = []
    for k, word in enumerate(words):
        if FACT_TOKEN.fullmatch(word.strip(".;:!?()")):
            unit = k + 1 < len(words) and words[k + 1].strip(".;:!?").lower() in UNITS
            phrases.append(" ".join(words[max(0, k - 1) : k + (2 if unit else 1)]).strip(".;:!?"))
        elif k and word[:1].isupper() and word[1:2].islower() and k + 1 < len(words) and words[k + 1][:1].isupper():
            phrases.append(f"{word} {words[k + 1]}".strip(".;:!?"))
    return phrases


def asked_keys(messages: list) -> dict:
    """The keys (and their types) the system prompt asks for; the usual summary keys if it names none."""
    system = " ".join(_message_text(m) for m in messages if m.get("role") in ("system", "developer"))
    clause = KEYS_CLAUSE.search(system)
    specs = KEY_SPEC.findall(clause.group(1)) if clause else []
    if not specs:
        return dict(DEFAULT_KEYS)
    return {name: ("string" if kind.lower() == "one or two words" else kind.lower()) for name, kind in specs}


def read_call(text: str) -> tuple:
    """(caller sentences, agent sentences, note sentences) from the quoted call data or a bare transcript."""
    caller_lines: list[str] = []
    other_lines: list[str] = []
    notes: list[str] = []
    in_notes = False
    for line in text.splitlines():
        if line.strip().lower().startswith("notes from the agent"):
            in_notes = True
            continue
        if in_notes:
            match = NOTE_LINE.match(line)
            if match:
                notes.append(match.group(1))
            continue
        match = SPEAKER_LINE.match(line)
        if match and match.group(1).strip().lower() not in ("facts", "transcript"):
            speaker = match.group(1).strip().lower()
            (caller_lines if speaker in CALLER_SPEAKERS else other_lines).append(match.group(2))
    if not caller_lines and not other_lines and not notes:
        caller_lines = [text]
    return (
        [s for s in _sentences(" ".join(caller_lines)) if not INJECTION.search(s)],
        [s for s in _sentences(" ".join(other_lines)) if not INJECTION.search(s)],
        [s for n in notes for s in _sentences(n)],
    )


def summarize(messages: list) -> dict:
    """What a model following our prompt would answer, by simple, predictable rules.

    Reads the transcript ("Caller: …" / "Agent: …" lines) and A's notes ("- …" lines after "Notes from
    the agent:") from the last user message. The reason is the first caller sentence that states a
    request or problem, else A's first note; key facts are short phrases around every number and code
    (notes first), and capitalised names; the next step comes from the notes or the agent's plan.
    Instructions quoted in the call data are not acted on.
    """
    user_messages = [m for m in messages if m.get("role") == "user"]
    text = _message_text(user_messages[-1]) if user_messages else ""
    caller, agent, notes = read_call(text)
    requests = [s for s in caller if REQUEST_WORDS.search(s) and not GREETING.match(s)]
    reason = (requests or notes or [s for s in caller if not GREETING.match(s)] or ["No statement from the caller."])[0]
    facts: list[str] = []
    for sentence in notes + caller + agent:
        for phrase in _fact_phrases(sentence):
            if not any(phrase.lower() in f.lower() for f in facts):
                facts.append(phrase)
    caller_words = set(re.findall(r"[a-z']+", " ".join(caller).lower()))
    mood = next((name for name, words in MOOD_WORDS if caller_words & words), "neutral")
    planned = [s for s in notes[1:] + agent if NEXT_STEP_WORDS.search(s)]
    return {
        "reason": reason,
        "key_facts": facts[:MAX_FACTS],
        "tried": [s for s in notes + caller + agent if TRIED_WORDS.search(s)][:4],
        "mood": mood,
        "next_step": planned[-1] if planned else f"Help the caller with: {reason}",
    }


def answer_for(messages: list) -> dict:
    """The JSON object for the keys the prompt asks for (keys it asks for that we cannot fill: empty)."""
    summary = summarize(messages)
    empty = {"string": "", "array": [], "number": 0, "integer": 0, "boolean": False, "object": {}}
    return {name: summary.get(name, empty.get(kind)) for name, kind in asked_keys(messages).items()}


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
        self._scripted: list = []
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

    def answer_next(self, content: dict | str, count: int = 1) -> None:
        """The next `count` completions answer `content` (a dict is sent as JSON) instead of following the
        prompt: a model that obeys what the caller said, or one that answers nonsense."""
        with self._lock:
            self._scripted.extend([content] * count)

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
        response_format = body.get("response_format") or {}
        if response_format.get("type") == "json_object" and not any(
            "json" in _message_text(m).lower() for m in body["messages"] if isinstance(m, dict)
        ):
            # OpenAI refuses JSON mode unless a message says "JSON" (provider-facts.md, OpenAI section).
            return _error(400, JSON_WORD_MESSAGE, "invalid_request_error", None, param="messages")
        return self._completion(body)

    def _completion(self, body: dict) -> Response:
        response_format = body.get("response_format") or {}
        with self._lock:
            scripted = self._scripted.pop(0) if self._scripted else None
        if scripted is not None:
            content = scripted if isinstance(scripted, str) else json.dumps(scripted)
        elif response_format.get("type") == "json_schema":
            content = json.dumps(_fit_schema(summarize(body["messages"]), response_format))
        elif response_format.get("type") == "json_object":
            content = json.dumps(answer_for(body["messages"]))
        else:
            content = _as_text(summarize(body["messages"]))
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


def _error(status: int, message: str, kind: str, code: str | None, param: str | None = None) -> Response:
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    response = Response(json.dumps(body), status=status, mimetype="application/json")
    response.headers["x-request-id"] = "req_" + uuid.uuid4().hex
    return response
