"""The caller's side of a call.

bridging  — the caller's leg is dialling into a LiveKit room (hears ringback) and no agent is with them yet
connected — the caller and at least one agent share a room
on_hold   — the caller's leg plays hold music outside any room (during a transfer)
queued    — the caller waits in a team's line: greeting, their place, hold music, until an agent is free
voicemail — nobody could take the call: apology, optional recording
ended     — the caller hung up or the call finished (terminal)
"""

from gateway.domain.machine import StateMachine

BRIDGING, CONNECTED, ON_HOLD, VOICEMAIL, ENDED = "bridging", "connected", "on_hold", "voicemail", "ended"
QUEUED = "queued"

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
        # Nobody free in the team: the caller waits in line (from ringback, or from hold when a
        # re-route or a transfer to a team finds nobody free) until an agent joins their room.
        (BRIDGING, "enqueue"): QUEUED,
        (ON_HOLD, "enqueue"): QUEUED,
        (QUEUED, "rebridge"): BRIDGING,
        (QUEUED, "no_agent"): VOICEMAIL,
        (QUEUED, "hangup"): ENDED,
    },
    terminal=[ENDED],
)

# Where the caller is, for the invariant "in a room with an agent, on hold, or hung up"
# (bridging: hearing ringback while an agent is rung; voicemail: hearing the apology).
# The end reason an agent's hang-up sets while the caller still hears goodbye (see AgentLegs).
AGENT_ENDED = "agent ended the call"

LIVE_STATES = frozenset({BRIDGING, CONNECTED, ON_HOLD, QUEUED, VOICEMAIL})
