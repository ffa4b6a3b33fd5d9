"""An agent leg: one attempt to bring one agent (by browser or phone) into a room.

ringing  — offered to the agent (console alert and/or phone call)
accepted — the agent said yes (browser accept, or pressed 1 on the phone)
joined   — the agent is in the LiveKit room
terminal — declined, no_answer, busy, failed, cancelled (withdrawn by us), left
"""

from gateway.domain.machine import StateMachine

RINGING, ACCEPTED, JOINED = "ringing", "accepted", "joined"
DECLINED, NO_ANSWER, BUSY, FAILED, CANCELLED, LEFT = "declined", "no_answer", "busy", "failed", "cancelled", "left"
TERMINAL = (DECLINED, NO_ANSWER, BUSY, FAILED, CANCELLED, LEFT)

LEG = StateMachine(
    "leg",
    {
        (RINGING, "accept"): ACCEPTED,
        (RINGING, "join"): JOINED,  # a participant_joined may overtake the accept callback
        (RINGING, "decline"): DECLINED,
        (RINGING, "no_answer"): NO_ANSWER,
        (RINGING, "busy"): BUSY,
        (RINGING, "fail"): FAILED,
        (RINGING, "cancel"): CANCELLED,
        (ACCEPTED, "join"): JOINED,
        (ACCEPTED, "fail"): FAILED,
        (ACCEPTED, "cancel"): CANCELLED,
        (ACCEPTED, "leave"): LEFT,
        (JOINED, "leave"): LEFT,
        (JOINED, "cancel"): LEFT,
    },
    terminal=TERMINAL,
)

# Why a ringing leg ended, as Twilio reports it on the agent's phone call.
TWILIO_END_EVENTS = {"busy": "busy", "no-answer": "no_answer", "failed": "fail", "canceled": "cancel"}
