"""The replies a caller or an agent's phone is answered with most often, made from the call's
(or the leg's) row and the settings. Values only (``services/replies.py``): the web layer renders them."""

from __future__ import annotations

from gateway.adapters.store.models import Call, Leg
from gateway.services.ports import Dest, Gateway
from gateway.services.replies import (
    APOLOGY,
    APOLOGY_TECHNICAL,
    HOLD_FIRST,
    REASSURANCE,
    Apology,
    Bridge,
    Hold,
    Webhook,
)


class Answers:
    def __init__(self, gw: Gateway):
        self.gw = gw

    def bridge(self, call: Call, greeting: str | None = None) -> Bridge:
        # A long wait ends by the queue's timeout (voicemail), not by the <Dial>: it rings a little longer.
        ring_s = int(self.gw.settings.queue_timeout_s) + 10
        return Bridge.caller(call.id, call.room, call.bridge_gen or 0, ring_s, greeting=greeting)

    def leg_bridge(self, leg: Leg) -> Bridge:
        return Bridge.agent(leg.id, leg.room, leg.phone)

    def hold(self, call_id: str, first: bool = True, message: str | None = None) -> Hold:
        return Hold(
            music_url=self.gw.settings.hold_music_url,
            again=Webhook.to(Dest.HOLD, call=call_id, loop=1),
            message=(message or HOLD_FIRST) if first else None,
            reassurance=REASSURANCE,
        )

    def apology(self, call_id: str | None, technical: bool = False, message: str | None = None) -> Apology:
        voicemail = self.gw.settings.voicemail_enabled and call_id
        return Apology(
            message=message or (APOLOGY_TECHNICAL if technical else APOLOGY),
            voicemail=Webhook.to(Dest.VOICEMAIL, call=call_id) if voicemail else None,
        )
