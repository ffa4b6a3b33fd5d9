"""A warm (or cold) transfer from agent A to target B.

initiated → consulting (caller on hold, A in the consult room) → target_ringing (B's leg
requested) → target_accepted → conferenced (caller bridged into A and B's room) → completed
(A dropped). B may be reached before the consult room is ready, so initiated may go straight
to target_ringing. Failure endings are terminal: cancelled, declined, no_answer, abandoned
(the caller hung up), failed.

A transfer to a team with a free member goes to that member as above. With nobody free it waits
in team_busy (the caller still with A, who is told the expected wait) for A's choice: queued
(terminal: the caller waits in the team's line at transfer priority, the summary waiting for
whoever takes them; A is free) or cancelled (the caller stays with A).
"""

from gateway.domain.machine import StateMachine

INITIATED, CONSULTING, TARGET_RINGING, TARGET_ACCEPTED = "initiated", "consulting", "target_ringing", "target_accepted"
CONFERENCED, COMPLETED = "conferenced", "completed"
TEAM_BUSY, QUEUED = "team_busy", "queued"
CANCELLED, DECLINED, NO_ANSWER, ABANDONED, FAILED = "cancelled", "declined", "no_answer", "abandoned", "failed"

ACTIVE = (INITIATED, TEAM_BUSY, CONSULTING, TARGET_RINGING, TARGET_ACCEPTED, CONFERENCED)
TERMINAL = (COMPLETED, QUEUED, CANCELLED, DECLINED, NO_ANSWER, ABANDONED, FAILED)

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
    (INITIATED, "team_busy"): TEAM_BUSY,
    (TEAM_BUSY, "queue"): QUEUED,
}
for _state in (INITIATED, TEAM_BUSY, CONSULTING, TARGET_RINGING, TARGET_ACCEPTED):
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
SOURCE_ACTIONS = ("complete", "queue", "cancel", "leave")
TARGET_ACTIONS = ("accept", "decline")


def allowed_actions(state: str, target_joined: bool = False) -> list[str]:
    """Actions the API accepts now. Connect needs B in the consult room, not only accepted:
    bridging the caller into a room B has not reached would leave the caller with A alone."""
    actions = []
    if state == TARGET_ACCEPTED and target_joined:
        actions.append("complete")
    if state == TEAM_BUSY:
        actions.append("queue")
    if (state, "cancel") in _transitions:
        actions.append("cancel")
    if state == CONFERENCED:
        actions.append("leave")
    if state == TARGET_RINGING:
        actions.extend(TARGET_ACTIONS)
    return actions


def team_busy_notice(team_name: str, wait_s: float | None) -> str:
    """What A is told when nobody in the team is free: the caller's expected wait in its line."""
    if wait_s is None:
        wait = "how long the caller would wait is not known yet"
    elif wait_s < 60:
        wait = "the caller would wait less than a minute"
    else:
        minutes = max(1, round(wait_s / 60))
        wait = f"the caller would wait about {minutes} min"
    return f"No one free in {team_name} — {wait}. Keep the caller in {team_name}'s queue, or cancel."
