"""A tiny table-driven state machine shared by calls, legs and transfers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


class IllegalTransition(Exception):
    """The event is not allowed in the current state; nothing changes."""

    def __init__(self, machine: str, state: str, event: str):
        super().__init__(f"{machine}: event {event!r} is not allowed in state {state!r}")
        self.machine, self.state, self.event = machine, state, event


@dataclass(frozen=True)
class Outcome:
    """Result of offering an event: the new state, and whether anything changed.

    ``changed`` is False for a duplicate (the event already brought us here), which is
    how retried and duplicated webhooks become harmless.
    """

    state: str
    changed: bool


class StateMachine:
    def __init__(self, name: str, transitions: Mapping[tuple[str, str], str], terminal: Iterable[str]):
        self.name = name
        self.transitions = dict(transitions)
        self.terminal = frozenset(terminal)
        self.states = frozenset({s for s, _ in self.transitions} | set(self.transitions.values()) | self.terminal)
        self.events = frozenset(e for _, e in self.transitions)

    def apply(self, state: str, event: str) -> Outcome:
        if state not in self.states:
            raise IllegalTransition(self.name, state, event)
        target = self.transitions.get((state, event))
        if target is not None:
            return Outcome(target, target != state)
        if self.is_duplicate(state, event):
            return Outcome(state, False)
        raise IllegalTransition(self.name, state, event)

    def is_duplicate(self, state: str, event: str) -> bool:
        """The event could only have led to ``state``: seeing it again changes nothing."""
        targets = {t for (_, e), t in self.transitions.items() if e == event}
        return targets == {state}

    def can(self, state: str, event: str) -> bool:
        try:
            self.apply(state, event)
            return True
        except IllegalTransition:
            return False

    def is_terminal(self, state: str) -> bool:
        return state in self.terminal
