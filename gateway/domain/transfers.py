"""A warm (or cold) transfer from agent A to target B.

initiated → consulting (caller on hold, A in the consult room) → target_ringing (B's leg
requested) → target_accepted → conferenced (caller bridged into A and B's room) → completed
(A dropped). B may be reached before the consult room is ready, so initiated may go straight
to target_ringing. Failure endings are terminal: cancelled, declined, no_answer, abandoned
(the caller hung up), failed.
"""

from gateway.domain.machine import StateMachine

INITIATED, CONSULTING, TARGET_RINGING, TARGET_ACCEPTED = "initiated", "consulting", "target_ringing", "target_accepted"
CONFERENCED, COMPLETED = "conferenced", "completed"
CANCELLED, DECLINED, NO_ANSWER, ABANDONED, FAILED = "cancelled", "declined", "no_answer", "abandoned", "failed"

ACTIVE = (INITIATED, CONSULTING, TARGET_RINGING, TARGET_ACCEPTED, CONFERENCED)
TERMINAL = (COMPLETED, CANCELLED, DECLINED, NO_ANSWER, ABANDONED, FAILED)

_transitions = {
    (INITIATED, "consult_ready"): CONSULTING,
    (INITIATED, "target_dialed"): TARGET_RINGING,
    (CONSULTING, "target_dialed"): TARGET_RINGING,
    (TARGET_RINGING, "consult_ready"): TARGET_RINGING,
    (TARGET_RINGING, "target_accepted"): TARGET_ACCEPTED,
    (TARGET_RINGING, "target_declined"): DECLINED,
    (TARGET_RINGING, "target_no_answer"): NO_ANSWER,
    (TARGET_ACCEPTED, "consult_ready"): TARGET_ACCEPTED,
    (TARGET_ACCEPTED, "connect"): CONFERENCED,
    (CONFERENCED, "source_left"): COMPLETED,
}
for _state in (INITIATED, CONSULTING, TARGET_RINGING, TARGET_ACCEPTED):
    _transitions[(_state, "cancel")] = CANCELLED
for _state in ACTIVE:
    _transitions[(_state, "caller_hangup")] = ABANDONED
    _transitions[(_state, "fail")] = FAILED
# Once the caller is conferenced with B the transfer has succeeded, whoever hangs up next.
_transitions[(CONFERENCED, "caller_hangup")] = COMPLETED
_transitions[(CONFERENCED, "target_left")] = COMPLETED

TRANSFER = StateMachine("transfer", _transitions, terminal=TERMINAL)

# The reasons the caller goes back to A (or to routing) rather than on to B.
RETURN_REASONS = {DECLINED: "declined", NO_ANSWER: "did not answer", CANCELLED: "cancelled", FAILED: "failed"}

# What an agent may ask for in each state, by the endpoint's name: the transferring agent
# (A) connects, cancels and leaves; the target (B) accepts or declines while B's leg rings.
# The console renders its buttons from this list rather than repeating these rules.
SOURCE_ACTIONS = ("complete", "cancel", "leave")
TARGET_ACTIONS = ("accept", "decline")


def allowed_actions(state: str, target_joined: bool = False) -> list[str]:
    """Actions the API accepts now. Connect needs B in the consult room, not only accepted:
    bridging the caller into a room B has not reached would leave the caller with A alone."""
    actions = []
    if state == TARGET_ACCEPTED and target_joined:
        actions.append("complete")
    if (state, "cancel") in _transitions:
        actions.append("cancel")
    if state == CONFERENCED:
        actions.append("leave")
    if state == TARGET_RINGING:
        actions.extend(TARGET_ACTIONS)
    return actions
