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
LIVE = (RINGING, ACCEPTED, JOINED)  # a leg that still rings, or holds its agent

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

# Webhooks are hints, the API is the truth: when a join (or a leave) LiveKit should report has not
# been seen after each of these delays, the gateway lists the room's participants and reconciles.
RECONCILE_AFTER_S = (4.0, 6.0, 10.0)

# --- timers that match people (provider-facts.md, "People are slower than doubles") ---------------
# A phone leg has three phases, each on its own clock: ringing (RING_TIMEOUT_S, stopped by the
# answer), answering-machine detection (which holds Twilio's answer webhook, up to its 30 s default
# timeout: counted in neither budget, only capped by DETECTION_ALLOWANCE_S), and the whisper with
# its key press, whose budget covers the words at Polly's pace plus the <Gather> wait, and starts
# again when the prompt is repeated after no input.
SPEECH_S_PER_WORD = 0.35  # Polly: about 170 words a minute
GATHER_TIMEOUT_S = 6  # the whisper's <Gather timeout>: seconds after the prompt has been said
DETECTION_ALLOWANCE_S = 40.0  # answer -> TwiML request, answering-machine detection included
BUDGET_SLACK_S = 8.0  # webhook round trips, a person reaching for the keypad


def speech_s(*texts: str) -> float:
    """How long Polly takes to say these texts."""
    return sum(len(text.split()) for text in texts) * SPEECH_S_PER_WORD


def whisper_budget_s(*spoken: str) -> float:
    """From the moment the whisper's TwiML is served until a key press is overdue: everything it
    says, then the <Gather> wait that starts when the prompt has been said, then slack."""
    return speech_s(*spoken) + GATHER_TIMEOUT_S + BUDGET_SLACK_S
