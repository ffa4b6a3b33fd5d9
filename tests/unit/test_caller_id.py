"""Caller ID rules (gateway/domain/caller_id.py): who can be called back, and how a caller is shown."""

from __future__ import annotations

import pytest

from gateway.domain.caller_id import WITHHELD_LABEL, callable_number, is_withheld, mask_caller

# What carriers send for a withheld number (Twilio error 13214), as words and as keypad spellings.
WITHHELD = [
    "anonymous",
    "Anonymous",
    "Restricted",
    "Unavailable",
    "Unknown",
    "",
    None,
    "   ",
    "+266696687",  # anonymous
    "+86282452253",  # unavailable
    "+7378742833",  # restricted
    "+2562533",  # blocked
    "client:alice",
    "15551234567",  # no "+": not E.164
    "+0123456789",
]


@pytest.mark.parametrize("from_", WITHHELD)
def test_a_withheld_or_invalid_caller_id_cannot_be_called_back_and_shows_as_withheld(from_):
    assert callable_number(from_) is None
    assert is_withheld(from_)
    assert mask_caller(from_) == WITHHELD_LABEL == "Withheld number"


@pytest.mark.parametrize("from_", ["+15551234567", " +15551234567 ", "+442079460000", "+4930123456"])
def test_an_e164_number_can_be_called_back_and_shows_its_last_four_digits(from_):
    assert callable_number(from_) == from_.strip()
    assert not is_withheld(from_)
    assert mask_caller(from_) == "…" + from_.strip()[-4:]


def test_a_number_already_masked_stays_as_it_is():
    # After retention the stored number is its last four digits: shown as such, never "withheld".
    assert mask_caller("…4567") == "…4567"
    assert not is_withheld("…4567")
    assert callable_number("…4567") is None
