"""Caller ID: whether the number a caller reached us from can be dialled back, and how it is shown.

A caller who withholds their number still reaches us, with a From that is no number at all:
Twilio passes on what the carrier sends ("Carriers may send invalid Caller IDs on Incoming calls
to Twilio", Twilio error 13214). Commonly a word ("anonymous", "Restricted", "Unavailable"...),
nothing, or that word spelled on a phone keypad, which looks like a number and is not one
("+266696687" is "anonymous"). Such a caller cannot be called back, and showing four of those
"digits" to an agent would mislead: they are shown as a withheld number.

Plain Python, no framework: the queue's hold loop, the callback request and every place that
shows a caller ask these functions.
"""

from __future__ import annotations

import re

from gateway.domain.agents import E164, mask_phone

# A number already masked for display or after retention (its last four digits): not withheld.
MASKED = re.compile(r"^…\d{1,4}$")
WITHHELD_LABEL = "Withheld number"

# Words carriers send instead of a number ("anonymous", "Restricted", "") fail the E.164 shape; the
# same words spelled on a phone keypad do not, so they are named here: E.164 in shape, no one's number.
KEYPAD_WITHHELD = frozenset(
    {
        "+266696687",  # anonymous
        "+86282452253",  # unavailable
        "+7378742833",  # restricted
        "+2562533",  # blocked
        "+8656696",  # unknown
        "+7748283",  # private
    }
)


def callable_number(from_: str | None) -> str | None:
    """The number we could dial to call this caller back (E.164, not a withheld spelling), or None."""
    number = (from_ or "").strip()
    if not E164.match(number) or number in KEYPAD_WITHHELD:
        return None
    return number


def is_withheld(from_: str | None) -> bool:
    """The caller's number is withheld or invalid (a number we masked ourselves is not)."""
    return callable_number(from_) is None and not MASKED.match((from_ or "").strip())


def mask_caller(from_: str | None) -> str:
    """A caller as shown outside the call itself: the last four digits, or "Withheld number"."""
    number = (from_ or "").strip()
    if is_withheld(number):
        return WITHHELD_LABEL
    return number if MASKED.match(number) else mask_phone(number)
