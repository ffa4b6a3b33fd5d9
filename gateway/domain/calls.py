"""The caller's side of a call.

bridging  — the caller's leg is dialling into a LiveKit room (hears ringback) and no agent is with them yet
connected — the caller and at least one agent share a room
on_hold   — the caller's leg plays hold music outside any room (during a transfer)
voicemail — nobody could take the call: apology, optional recording
ended     — the caller hung up or the call finished (terminal)
"""

from gateway.domain.machine import StateMachine

BRIDGING, CONNECTED, ON_HOLD, VOICEMAIL, ENDED = "bridging", "connected", "on_hold", "voicemail", "ended"

# Every room of a call (the caller's, made by the dispatch rule; a consult room, made by CreateRoom):
# closed 2 minutes after it is made if nobody joins, 30 s after the last one leaves.
ROOM_EMPTY_TIMEOUT_S = 120
ROOM_DEPARTURE_TIMEOUT_S = 30

CALL = StateMachine(
    "call",
    {
        (BRIDGING, "agent_joined"): CONNECTED,
        (BRIDGING, "no_agent"): VOICEMAIL,
        (BRIDGING, "hold"): ON_HOLD,
        (BRIDGING, "hangup"): ENDED,
        (CONNECTED, "hold"): ON_HOLD,
        (CONNECTED, "agents_left"): BRIDGING,
        (CONNECTED, "hangup"): ENDED,
        (ON_HOLD, "rebridge"): BRIDGING,
        (ON_HOLD, "hold_failed"): CONNECTED,  # the hold redirect never happened: still in the room
        (ON_HOLD, "no_agent"): VOICEMAIL,
        (ON_HOLD, "hangup"): ENDED,
        (VOICEMAIL, "hangup"): ENDED,
    },
    terminal=[ENDED],
)

# Where the caller is, for the invariant "in a room with an agent, on hold, or hung up"
# (bridging: hearing ringback while an agent is rung; voicemail: hearing the apology).
LIVE_STATES = frozenset({BRIDGING, CONNECTED, ON_HOLD, VOICEMAIL})
