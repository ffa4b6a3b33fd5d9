"""TwiML documents: bridge into a LiveKit room, hold, whisper, apology/voicemail."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from urllib.parse import quote

from twilio.twiml.voice_response import Dial, Gather, Say, VoiceResponse

VOICE = "Polly.Joanna"
# What a Dial's <Sip> child leg reports back: only its start, which names the child CallSid that
# LiveKit will report. Ringing, answer and end are known from LiveKit's participant events and the
# <Dial> action (Twilio's call log keeps every stage); each extra event is a webhook per bridge.
SIP_EVENTS = "initiated"


@dataclass(frozen=True)
class SipTarget:
    """Where a leg is bridged: the LiveKit SIP endpoint and the credentials of our trunk."""

    host: str
    username: str | None = None
    password: str | None = None


def sip_uri(room_token: str, host: str, headers: dict[str, str] | None = None) -> str:
    """``sip:<room-token>@host;transport=tcp`` — the user part names the room (Callee dispatch).

    Custom ``X-`` headers ride in the URI query, which Twilio turns into SIP headers.
    """
    uri = f"sip:{room_token}@{host};transport=tcp"
    if headers:
        uri += "?" + "&".join(f"{k}={quote(str(v), safe='')}" for k, v in sorted(headers.items()))
    return uri


def bridge_to_room(
    *,
    room_token: str,
    sip: SipTarget,
    action_url: str,
    sip_status_url: str | None = None,
    timeout_s: int = 120,
    caller_id: str | None = None,
    headers: dict[str, str] | None = None,
    greeting: str | None = None,
) -> str:
    """Bridge this Twilio leg into a LiveKit room through LiveKit SIP.

    ``answerOnBridge`` keeps the caller hearing ringback (not silence) until LiveKit
    answers, which it does only once someone else is in the room. No ``<Start>`` comes first:
    it would answer the call early, and a new one on every re-bridge would start another
    transcription session (the gateway starts one per call by REST once connected).
    """
    response = VoiceResponse()
    if greeting:
        response.say(greeting, voice=VOICE)
    dial = Dial(
        action=action_url,
        method="POST",
        answer_on_bridge=True,
        timeout=max(5, min(600, timeout_s)),
        caller_id=caller_id,
    )
    progress = (
        dict(status_callback=sip_status_url, status_callback_event=SIP_EVENTS, status_callback_method="POST")
        if sip_status_url
        else {}
    )
    dial.sip(sip_uri(room_token, sip.host, headers), username=sip.username, password=sip.password, **progress)
    response.append(dial)
    return str(response)


def hold(
    *,
    music_url: str,
    loop_url: str,
    message: str | None = None,
    reassurance: str,
    choices_url: str | None = None,
    choices_prompt: str | None = None,
) -> str:
    """Hold: an optional opening message, music, a reassurance, then loop via Redirect.

    Looping through a Redirect (not ``loop=0``) lets every pass say something, so the
    caller is reassured periodically and never hears dead air. With ``choices_url`` the
    pass is wrapped in a ``<Gather>`` (a key or a few words) so a waiting caller can choose
    something else at any moment; when they say nothing the loop simply goes on.
    """
    response = VoiceResponse()
    target = response
    if choices_url:
        target = Gather(
            action=choices_url,
            method="POST",
            input="dtmf speech",
            num_digits=1,
            timeout=1,
            speech_timeout="auto",
            hints="voicemail, message, call me back, callback",
        )
        response.append(target)
    if message:
        target.say(message, voice=VOICE)
    if choices_prompt:
        target.say(choices_prompt, voice=VOICE)
    target.play(music_url)
    target.say(reassurance, voice=VOICE)
    response.redirect(loop_url, method="POST")
    return str(response)


def menu(*, prompt: str, action_url: str, hints: str, timeout_s: int = 5) -> str:
    """Ask which team the caller wants: a key or a few words. No answer still reaches
    ``action_url`` (empty Digits and no SpeechResult), which asks again or picks a default."""
    response = VoiceResponse()
    gather = Gather(
        action=action_url,
        method="POST",
        input="dtmf speech",
        num_digits=1,
        timeout=timeout_s,
        speech_timeout="auto",
        hints=hints,
        action_on_empty_result=True,
    )
    gather.say(prompt, voice=VOICE)
    response.append(gather)
    return str(response)


def apology(*, message: str, voicemail_action_url: str | None = None, max_length_s: int = 120) -> str:
    """The caller hears a clear apology; optionally leaves a voicemail, then goodbye."""
    response = VoiceResponse()
    response.say(message, voice=VOICE)
    if voicemail_action_url:
        response.say("Please leave a message after the tone, and we will call you back.", voice=VOICE)
        response.record(action=voicemail_action_url, method="POST", max_length=max_length_s, play_beep=True)
    response.say("Goodbye.", voice=VOICE)
    response.hangup()
    return str(response)


def whisper_prompt(accept_key: str = "1", decline_key: str = "2") -> str:
    return f"Press {accept_key} to accept, or {decline_key} to decline."


def spoken_say(parts: str | list[tuple[str, str]]) -> Say:
    """A <Say> from plain text or from (kind, text) parts, where "digits" and "characters" parts are
    read one by one (SSML ``<say-as interpret-as="digits">``): an order number is not "five million…"."""
    if isinstance(parts, str):
        return Say(parts, voice=VOICE)
    say = Say(voice=VOICE)
    for kind, text in parts:
        if kind == "text":
            say.nest(text)
        else:
            say.say_as(text, interpret_as=kind)
    return say


def whisper_offer(
    *,
    announcement: str | list[tuple[str, str]],
    gather_url: str,
    accept_key: str = "1",
    decline_key: str = "2",
    timeout_s: int = 6,
) -> str:
    """What an agent's phone plays on answer: who is calling, then press 1 / press 2.

    A key may be pressed during the announcement (barge-in). No key within ``timeout_s`` after the
    prompt posts empty Digits, so the gateway can repeat the prompt once; a voicemail box can never
    accept a call.
    """
    response = VoiceResponse()
    gather = Gather(action=gather_url, method="POST", num_digits=1, timeout=timeout_s, action_on_empty_result=True)
    gather.append(spoken_say(announcement))
    gather.say(whisper_prompt(accept_key, decline_key), voice=VOICE)
    response.append(gather)
    response.say("No response received. Goodbye.", voice=VOICE)
    response.hangup()
    return str(response)


def whisper_wait(*, message: str, retry_url: str, pause_s: int = 1) -> str:
    """B answered before the summary is ready: speak, pause briefly, ask again."""
    response = VoiceResponse()
    response.say(message, voice=VOICE)
    response.pause(length=pause_s)
    response.redirect(retry_url, method="POST")
    return str(response)


def whisper_retry(*, message: str, gather_url: str, timeout_s: int = 6) -> str:
    """No key or a wrong key: say so and ask once more."""
    response = VoiceResponse()
    gather = Gather(action=gather_url, method="POST", num_digits=1, timeout=timeout_s, action_on_empty_result=True)
    gather.say(message, voice=VOICE)
    response.append(gather)
    response.say("Goodbye.", voice=VOICE)
    response.hangup()
    return str(response)


def spoken(document: str) -> list[str]:
    """The texts a document says, in order (what its listener must sit through)."""
    return [" ".join("".join(say.itertext()).split()) for say in ET.fromstring(document).iter("Say")]


def asks_for_a_key(document: str) -> bool:
    return ET.fromstring(document).find(".//Gather") is not None


def agent_taken(message: str = "This call has already been answered. Goodbye.") -> str:
    response = VoiceResponse()
    response.say(message, voice=VOICE)
    response.hangup()
    return str(response)


def goodbye(message: str | None = None) -> str:
    response = VoiceResponse()
    if message:
        response.say(message, voice=VOICE)
    response.hangup()
    return str(response)


def empty() -> str:
    """An empty document: for callbacks whose reply Twilio ignores."""
    return str(VoiceResponse())


def smoke_announcement(*, text: str, heard_url: str) -> str:
    """The smoke test's whisper: speak, then ask for ``heard_url``, which Twilio requests only once
    the whole text has been said (how the test knows the whisper was heard)."""
    response = VoiceResponse()
    response.say(text, voice=VOICE)
    response.redirect(heard_url, method="POST")
    return str(response)


def smoke_prompt(*, prompt: str, gather_url: str, timeout_s: int = 10) -> str:
    """Ask for one key; no key still reaches ``gather_url`` (empty Digits), so the test can say so."""
    response = VoiceResponse()
    gather = Gather(action=gather_url, method="POST", num_digits=1, timeout=timeout_s, action_on_empty_result=True)
    gather.say(prompt, voice=VOICE)
    response.append(gather)
    return str(response)


def smoke_bridge(
    *, room_token: str, sip: SipTarget, action_url: str, sip_status_url: str, message: str, timeout_s: int = 30
) -> str:
    """Say what happens next, then bridge this (already answered) call into a LiveKit room by SIP,
    exactly as the gateway bridges callers and agents: same host, credentials and dispatch rule."""
    response = VoiceResponse()
    response.say(message, voice=VOICE)
    dial = Dial(action=action_url, method="POST", timeout=max(5, min(600, timeout_s)))
    dial.sip(
        sip_uri(room_token, sip.host),
        username=sip.username,
        password=sip.password,
        status_callback=sip_status_url,
        status_callback_event=SIP_EVENTS,
        status_callback_method="POST",
    )
    response.append(dial)
    return str(response)
