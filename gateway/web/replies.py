"""Replies rendered as TwiML: each value the services answer (``services/replies.py``) becomes the
document Twilio receives, made by the ``twiml/`` builders, with every ``Webhook`` turned into its
public URL (``web/urls.py``). The settings give what the services never name: LiveKit's SIP
endpoint and credentials, and the room's token in a SIP URI.
"""

from __future__ import annotations

import twiml
from gateway.services.ports import Gateway
from gateway.services.replies import (
    Apology,
    Bridge,
    Goodbye,
    Hold,
    Menu,
    Nothing,
    Reply,
    Webhook,
    Whisper,
    WhisperAgain,
    WhisperWait,
)
from twiml.documents import SipTarget


def render(reply: Reply, gw: Gateway) -> str:
    """The TwiML document of ``reply``."""

    def url(webhook: Webhook) -> str:
        return gw.urls(webhook.dest, **dict(webhook.query))

    match reply:
        case Bridge():
            s = gw.settings
            return twiml.bridge_to_room(
                greeting=reply.greeting,
                room_token=gw.room_token(reply.room),
                sip=SipTarget(
                    host=s.livekit_sip_host, username=s.livekit_sip_username, password=s.livekit_sip_password
                ),
                action_url=url(reply.dial_ended),
                sip_status_url=url(reply.sip_progress) if reply.sip_progress else None,
                timeout_s=reply.ring_s,
                caller_id=reply.caller_id,
                headers=dict(reply.headers),
            )
        case Hold():
            return twiml.hold(
                music_url=reply.music_url,
                loop_url=url(reply.again),
                message=reply.message,
                reassurance=reply.reassurance,
                choices_url=url(reply.choices) if reply.choices else None,
                choices_prompt=reply.choices_prompt,
            )
        case Menu():
            return twiml.menu(prompt=reply.prompt, action_url=url(reply.choice), hints=reply.hints)
        case Apology():
            return twiml.apology(
                message=reply.message, voicemail_action_url=url(reply.voicemail) if reply.voicemail else None
            )
        case Goodbye():
            return twiml.goodbye(reply.message)
        case Nothing():
            return twiml.empty()
        case Whisper():
            return twiml.whisper_offer(
                announcement=reply.announcement if isinstance(reply.announcement, str) else list(reply.announcement),
                gather_url=url(reply.keys),
                timeout_s=reply.wait_s,
            )
        case WhisperAgain():
            return twiml.whisper_retry(message=reply.message, gather_url=url(reply.keys), timeout_s=reply.wait_s)
        case WhisperWait():
            return twiml.whisper_wait(message=reply.message, retry_url=url(reply.retry))
    raise TypeError(f"not a reply: {reply!r}")
