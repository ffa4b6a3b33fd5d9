"""The TwiML a caller or an agent's phone is answered with, and the callback URLs in it."""

from __future__ import annotations

import twiml
from gateway.adapters.store.models import Call, Leg
from gateway.services.ports import Dest, Gateway
from twiml.documents import SipTarget

APOLOGY = "We're sorry, no one is available to take your call right now."
APOLOGY_TECHNICAL = "We're sorry, we are having trouble connecting your call right now."
HOLD_FIRST = "Please hold while we connect you."
REASSURANCE = "Thank you for holding. Your call is important to us; please stay on the line."
ENDED_BY_AGENT = "The agent has ended the call. Thank you for calling. Goodbye."


class Answers:
    def __init__(self, gw: Gateway):
        self.gw = gw

    def sip_target(self) -> SipTarget:
        s = self.gw.settings
        return SipTarget(host=s.livekit_sip_host, username=s.livekit_sip_username, password=s.livekit_sip_password)

    def bridge(self, call: Call, greeting: str | None = None) -> str:
        urls, s = self.gw.urls, self.gw.settings
        return twiml.bridge_to_room(
            greeting=greeting,
            room_token=self.gw.room_token(call.room),
            sip=self.sip_target(),
            action_url=urls(Dest.DIAL_ACTION, call=call.id, room=call.room, gen=call.bridge_gen or 0),
            sip_status_url=urls(Dest.SIP_STATUS, call=call.id),
            timeout_s=int(s.queue_timeout_s) + 10,
            headers={"X-GW-Call": call.id},
        )

    def leg_bridge(self, leg: Leg) -> str:
        urls = self.gw.urls
        return twiml.bridge_to_room(
            room_token=self.gw.room_token(leg.room),
            sip=self.sip_target(),
            action_url=urls(Dest.LEG_DIAL_ACTION, leg=leg.id),  # (no <Sip> progress: nothing to learn)
            timeout_s=60,
            caller_id=leg.phone,
            headers={"X-GW-Leg": leg.id},
        )

    def hold(self, call_id: str, first: bool = True, message: str | None = None) -> str:
        return twiml.hold(
            music_url=self.gw.settings.hold_music_url,
            loop_url=self.gw.urls(Dest.HOLD, call=call_id, loop=1),
            message=(message or HOLD_FIRST) if first else None,
            reassurance=REASSURANCE,
        )

    def apology(self, call_id: str | None, technical: bool = False, message: str | None = None) -> str:
        voicemail = self.gw.settings.voicemail_enabled and call_id
        return twiml.apology(
            message=message or (APOLOGY_TECHNICAL if technical else APOLOGY),
            voicemail_action_url=self.gw.urls(Dest.VOICEMAIL, call=call_id) if voicemail else None,
        )
