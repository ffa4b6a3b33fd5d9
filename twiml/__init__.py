"""Pure builders for every TwiML document the gateway returns.

No I/O, no Flask: each function takes plain values (absolute URLs included) and
returns the XML string made by ``twilio.twiml.voice_response.VoiceResponse``.
Callers (``gateway/web/replies.py``, which renders the services' replies, and the smoke test's
pages) decide the URLs; these functions decide the document and its fixed words.
"""

from twiml.documents import (
    agent_taken,
    apology,
    asks_for_a_key,
    bridge_to_room,
    empty,
    goodbye,
    hold,
    menu,
    sip_uri,
    smoke_announcement,
    smoke_bridge,
    smoke_prompt,
    spoken,
    whisper_offer,
    whisper_prompt,
    whisper_retry,
    whisper_wait,
)

__all__ = [
    "agent_taken",
    "apology",
    "asks_for_a_key",
    "bridge_to_room",
    "empty",
    "goodbye",
    "hold",
    "menu",
    "sip_uri",
    "smoke_announcement",
    "smoke_bridge",
    "smoke_prompt",
    "spoken",
    "whisper_offer",
    "whisper_prompt",
    "whisper_retry",
    "whisper_wait",
]
