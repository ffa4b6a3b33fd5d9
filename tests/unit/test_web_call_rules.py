"""Web callers' rules (domain/web_calls.py): signed context, identities, what the page shows; and the
summary of a web call made from the agents' notes and the verified context alone."""

from __future__ import annotations

import base64
import json

import pytest

from gateway.domain import calls as C
from gateway.domain import summary as S
from gateway.domain import web_calls as W

SECRET = "shared-with-the-shop"
NOW = 1_800_000_000.0


def test_signed_context_is_verified_and_only_known_fields_are_kept_trimmed():
    token = W.sign_context(
        {"customer_id": "C-1001", "name": "  Maria   Lopez ", "role": "admin", "note": "x" * 900}, SECRET, now=NOW
    )
    facts, why = W.verify_context(token, SECRET, now=NOW + 10)
    assert why == "verified"
    assert facts == {"customer_id": "C-1001", "name": "Maria Lopez", "note": "x" * 500}


@pytest.mark.parametrize(
    ("token", "why"),
    [
        (None, "none"),
        ("", "none"),
        ('{"name": "Trust me"}', "malformed"),
        (12, "malformed"),
        (W.sign_context({"name": "Maria"}, "another-secret", now=NOW), "bad signature"),
        (W.sign_context({"name": "Maria"}, SECRET, now=NOW - 3600), "expired"),
        (W.sign_context({"name": "Maria", "exp": NOW + 10 * 86400}, SECRET, now=NOW), "expiry too far ahead"),
        (W.sign_context({"name": "Maria", "exp": "tomorrow"}, SECRET, now=NOW), "no expiry"),
        (W.sign_context({"role": "admin"}, SECRET, now=NOW), "empty"),
    ],
)
def test_unsigned_forged_expired_or_empty_context_is_ignored(token, why):
    assert W.verify_context(token, SECRET, now=NOW) == (None, why)


def test_a_payload_changed_after_signing_is_refused():
    token = W.sign_context({"name": "Maria"}, SECRET, now=NOW)
    payload, signature = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=="))
    body["name"] = "Someone else"
    forged = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    assert W.verify_context(f"{forged}.{signature}", SECRET, now=NOW) == (None, "bad signature")


def test_without_a_secret_no_context_is_trusted():
    token = W.sign_context({"name": "Maria"}, "", now=NOW)
    assert W.verify_context(token, "", now=NOW)[0] is None


def test_identities_name_the_call_and_the_move():
    identity = W.identity("call_0123456789abcdef", 3)
    assert W.parse_identity(identity) == ("call_0123456789abcdef", 3)
    assert W.is_web_identity(identity)
    assert W.parse_identity("alice") is None and not W.is_web_identity("alice")
    assert W.parse_identity("webcaller-../x-1") is None


@pytest.mark.parametrize(
    ("state", "in_room", "shown"),
    [
        (C.QUEUED, True, W.QUEUED),
        (C.BRIDGING, True, W.RINGING),
        (C.BRIDGING, False, W.CONNECTING),
        (C.CONNECTED, True, W.CONNECTED),
        (C.CONNECTED, False, W.CONNECTING),
        (C.ON_HOLD, True, W.ON_HOLD),
        (C.VOICEMAIL, False, W.ENDED),
        (C.ENDED, False, W.ENDED),
    ],
)
def test_what_the_page_shows_for_each_call_state(state, in_room, shown):
    assert W.page_state(state, caller_in_room=in_room) == shown


def test_ending_messages_say_why_in_the_callers_words():
    assert "agent ended" in W.ending_message(C.AGENT_ENDED)
    assert "nobody could take your call" in W.ending_message("queue timeout")
    assert W.ending_message("web caller hung up") == "You ended the call."
    assert "could not connect" in W.ending_message("web caller never joined")


def test_a_rejoin_secret_is_random_kept_as_a_digest_and_matched_exactly():
    secret = W.new_rejoin_secret()
    assert len(secret) >= 43 and secret != W.new_rejoin_secret()
    digest = W.secret_digest(secret)
    assert secret not in digest and len(digest) == 64
    assert W.secret_matches(secret, digest)
    for wrong in (secret[:-1], secret + "x", "", None, 42, "x" * 500):
        assert not W.secret_matches(wrong, digest)
    assert not W.secret_matches(secret, None)


@pytest.mark.parametrize(
    "state,away_s,refused",
    [
        (C.QUEUED, None, None),  # still in the room (a reload the gateway has not seen yet)
        (C.QUEUED, 12.0, None),
        (C.CONNECTED, 30.0, None),
        (C.ON_HOLD, 5.0, None),
        (C.QUEUED, 30.5, W.GONE),
        (C.ENDED, None, W.ENDED_ALREADY),
        (C.VOICEMAIL, 1.0, W.ENDED_ALREADY),
    ],
)
def test_a_page_may_rejoin_a_live_call_within_the_grace_period(state, away_s, refused):
    assert W.rejoin_refusal(state, away_s, grace_s=30.0) == refused


def test_a_caller_who_did_not_come_back_is_told_the_connection_was_lost():
    assert "did not come back in time" in W.ending_message(W.LEFT)


def test_a_web_calls_summary_from_notes_and_verified_context_alone():
    facts = {
        "minutes_on_call": 2.0,
        "agent": "Alice",
        "channel": "web call from the website's caller page",
        f"{S.VERIFIED_PREFIX}customer_id": "C-1001",
        f"{S.VERIFIED_PREFIX}name": "Maria Lopez",
    }
    notes = ["Parcel for order 5521 arrived damaged; she wants a replacement, not a refund."]
    summary = S.fallback(facts, [], notes)
    assert summary["key_facts"][:2] == ["customer id: C-1001", "name: Maria Lopez"]
    assert "5521" in " ".join(summary["key_facts"]) and "damaged" in summary["reason"]
    prompt = S.build_messages(facts, [], notes)[1]["content"]
    assert "verified customer id: C-1001" in prompt and "web call" in prompt


@pytest.mark.parametrize(
    ("typed", "dialled"),
    [
        ("+15551234567", "+15551234567"),
        ("+1 (555) 123-4567", "+15551234567"),  # as people write it
        ("+44 20.7946.0958", "+442079460958"),
        ("5551234567", None),  # no country code: never guessed
        ("+0123456789", None),
        ("+1555", None),  # too short
        ("+1 555 CALL NOW", None),
        ("+266696687", None),  # "anonymous" on a keypad: no one answers it
        ("", None),
        (None, None),
        (15551234567, None),
        ("+1" + "5" * 50, None),
    ],
)
def test_a_callback_number_a_web_caller_types_must_be_one_we_can_dial(typed, dialled):
    assert W.callback_number(typed) == dialled


def test_a_web_caller_is_on_the_page_until_a_callback_dials_their_phone():
    assert W.on_the_page(W.CHANNEL_WEB, "web:call_1")
    assert not W.on_the_page(W.CHANNEL_WEB, "CA0123")  # called back: a Twilio leg now
    assert not W.on_the_page(W.CHANNEL_PHONE, "CA0123")
    assert W.callback_confirmation("+15551234567").startswith("We'll call you at …4567 when it's your turn.")
