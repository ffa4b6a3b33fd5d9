"""What a Twilio webhook is answered with, as values: what the caller (or an agent's phone) hears
next and where Twilio asks next.

The services return these; ``gateway/web/replies.py`` renders each as TwiML with the ``twiml/``
builders and turns every ``Webhook`` into a public URL. No TwiML, no URLs and no Flask here: a
destination is a ``Dest`` and its query, and a test reads a reply's fields directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.services.ports import Dest

APOLOGY = "We're sorry, no one is available to take your call right now."
APOLOGY_TECHNICAL = "We're sorry, we are having trouble connecting your call right now."
HOLD_FIRST = "Please hold while we connect you."
REASSURANCE = "Thank you for holding. Your call is important to us; please stay on the line."
ENDED_BY_AGENT = "The agent has ended the call. Thank you for calling. Goodbye."
ALREADY_ANSWERED = "This call has already been answered. Goodbye."
VOICEMAIL_THANKS = "Thank you. Goodbye."
# What an agent's phone says around the whisper (the budget of a key press counts these words).
WHISPER_PROMPT = "Press 1 to accept, or 2 to decline."
WHISPER_NO_KEY = "No response received. Goodbye."
WHISPER_RETRY_END = "Goodbye."

# A text spoken as is, or as (kind, text) parts where "digits" and "characters" are read one by one.
Spoken = str | tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Webhook:
    """One of our webhooks and its query: where Twilio asks next (``Urls`` builds the URL)."""

    dest: Dest
    query: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def to(cls, dest: Dest, **query: Any) -> Webhook:
        return cls(dest, tuple(query.items()))


@dataclass(frozen=True)
class Bridge:
    """The line joins a LiveKit room (by SIP). A caller hears ringback until someone is there;
    when the bridge ends Twilio asks ``dial_ended`` what comes next."""

    room: str
    dial_ended: Webhook
    ring_s: int
    headers: tuple[tuple[str, str], ...]
    sip_progress: Webhook | None = None  # told when the SIP leg starts (names the CallSid LiveKit reports)
    caller_id: str | None = None
    greeting: str | None = None

    @classmethod
    def caller(cls, call_id: str, room: str, gen: int, ring_s: int, greeting: str | None = None) -> Bridge:
        """The caller into their call's room; ``gen`` tells this bridge's ending from an older one's."""
        return cls(
            room=room,
            dial_ended=Webhook.to(Dest.DIAL_ACTION, call=call_id, room=room, gen=gen),
            sip_progress=Webhook.to(Dest.SIP_STATUS, call=call_id),
            ring_s=ring_s,
            headers=(("X-GW-Call", call_id),),
            greeting=greeting,
        )

    @classmethod
    def agent(cls, leg_id: str, room: str, phone: str | None) -> Bridge:
        """An agent's phone into the room of its leg (no SIP progress: nothing to learn from it)."""
        return cls(
            room=room,
            dial_ended=Webhook.to(Dest.LEG_DIAL_ACTION, leg=leg_id),
            ring_s=60,
            caller_id=phone,
            headers=(("X-GW-Leg", leg_id),),
        )


@dataclass(frozen=True)
class Hold:
    """Music on a loop: an opening message (first pass), the music, a reassurance, then ``again``.
    With ``choices`` a key or a few words at any moment of a pass go there (a waiting caller)."""

    music_url: str
    again: Webhook
    reassurance: str
    message: str | None = None
    choices: Webhook | None = None
    choices_prompt: str | None = None


@dataclass(frozen=True)
class Menu:
    """Which team the caller wants: a key or a few words, answered to ``choice`` (nothing too)."""

    prompt: str
    choice: Webhook
    hints: str


@dataclass(frozen=True)
class Apology:
    """Why nobody can take the call; then a message after the tone when ``voicemail`` is offered
    (the recording goes there), goodbye, and the call ends."""

    message: str
    voicemail: Webhook | None = None


@dataclass(frozen=True)
class Goodbye:
    """An optional last word, then the call ends."""

    message: str | None = None


@dataclass(frozen=True)
class Nothing:
    """An empty answer: for callbacks whose reply Twilio ignores (the line is gone)."""


@dataclass(frozen=True)
class Whisper:
    """An agent's phone on answer: who is calling, then press 1 or 2 (to ``keys``); no key in
    ``wait_s`` after the prompt asks ``keys`` with no digits."""

    announcement: Spoken
    keys: Webhook
    wait_s: int

    asks_for_a_key = True

    def said(self) -> list[str]:
        return [plain(self.announcement), WHISPER_PROMPT, WHISPER_NO_KEY]


@dataclass(frozen=True)
class WhisperAgain:
    """No key or a wrong one: ``message`` and the prompt once more, the key to ``keys``."""

    message: str
    keys: Webhook
    wait_s: int

    asks_for_a_key = True

    def said(self) -> list[str]:
        return [plain(self.message), WHISPER_RETRY_END]


@dataclass(frozen=True)
class WhisperWait:
    """B answered before the summary is ready: ``message``, a short pause, then ``retry``."""

    message: str
    retry: Webhook

    asks_for_a_key = False

    def said(self) -> list[str]:
        return [plain(self.message)]


Reply = Bridge | Hold | Menu | Apology | Goodbye | Nothing | Whisper | WhisperAgain | WhisperWait
AgentPrompt = Whisper | WhisperAgain | WhisperWait


def plain(text: Spoken) -> str:
    """The words of a spoken text, whitespace made single (as a listener hears them)."""
    words = text if isinstance(text, str) else "".join(part for _, part in text)
    return " ".join(words.split())
