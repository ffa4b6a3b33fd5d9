"""Every twiml/ builder, read back as XML: the verbs in order, their attributes, and the words a person hears.

Twilio acts on verbs and attributes, not on the text of the document, so these tests parse the XML
rather than compare strings. The expectations are what the caller, or the agent's phone, must get:
hold music that actually plays, a recording that reaches our action URL, a key press that is read.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

import twiml
from twiml.documents import SipTarget

VOICE = "Polly.Joanna"
SIP = SipTarget(host="gw-test.sip.livekit.cloud", username="trunk-user", password="s3cret")


def parse(document: str) -> ET.Element:
    assert document.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(document)
    assert root.tag == "Response"
    return root


def verbs(element: ET.Element) -> list[str]:
    return [child.tag for child in element]


def said(element: ET.Element) -> list[str]:
    """What is spoken, in order, each <Say> in the house voice."""
    says = element.findall("Say")
    assert all(say.get("voice") == VOICE for say in says), [say.attrib for say in says]
    return [say.text for say in says]


# ------------------------------------------------------------------ bridge into a LiveKit room
def test_sip_uri_names_the_room_and_carries_headers_sorted_and_escaped():
    assert (
        twiml.sip_uri("call_CA42", "gw-test.sip.livekit.cloud")
        == "sip:call_CA42@gw-test.sip.livekit.cloud;transport=tcp"
    )
    assert twiml.sip_uri("call_CA42", "h.example", {}) == "sip:call_CA42@h.example;transport=tcp"
    uri = twiml.sip_uri("call_CA42", "h.example", {"X-GW-Leg": "leg 7/a&b", "X-GW-Call": 42})
    assert uri == "sip:call_CA42@h.example;transport=tcp?X-GW-Call=42&X-GW-Leg=leg%207%2Fa%26b"


def test_bridge_dials_the_room_over_sip_with_ringback_and_the_dial_action():
    root = parse(
        twiml.bridge_to_room(
            room_token="call_CA42",
            sip=SIP,
            action_url="https://gw.example/twilio/dial-action?call=c1&gen=2",
            sip_status_url="https://gw.example/twilio/sip-status?call=c1",
            timeout_s=45,
            caller_id="+15557654321",
            headers={"X-GW-Call": "c1"},
        )
    )
    assert verbs(root) == ["Dial"]
    dial = root.find("Dial")
    assert dial.attrib == {
        "action": "https://gw.example/twilio/dial-action?call=c1&gen=2",
        "method": "POST",
        "answerOnBridge": "true",  # the caller hears ringback until someone is in the room
        "timeout": "45",
        "callerId": "+15557654321",
    }
    (sip,) = list(dial)
    assert sip.tag == "Sip"
    assert sip.text == "sip:call_CA42@gw-test.sip.livekit.cloud;transport=tcp?X-GW-Call=c1"
    assert sip.attrib == {
        "username": "trunk-user",
        "password": "s3cret",
        "statusCallback": "https://gw.example/twilio/sip-status?call=c1",
        "statusCallbackEvent": "initiated",
        "statusCallbackMethod": "POST",
    }


def test_bridge_with_a_greeting_says_it_before_the_dial_and_starts_nothing():
    """No <Start> before <Dial answerOnBridge>: it would answer the caller early (silence instead
    of ringback) and start another transcription on every re-bridge; transcription is started
    once per call by REST instead."""
    root = parse(
        twiml.bridge_to_room(
            room_token="call_CA42",
            sip=SipTarget(host="h.example"),
            action_url="https://gw.example/twilio/dial-action",
            greeting="Connecting you to an agent.",
        )
    )
    assert verbs(root) == ["Say", "Dial"]
    assert said(root) == ["Connecting you to an agent."]
    dial = root.find("Dial")
    assert dial.get("timeout") == "120" and "callerId" not in dial.attrib and dial.get("answerOnBridge") == "true"
    sip = dial.find("Sip")
    # No trunk credentials and no progress callback asked for: none sent.
    assert sip.attrib == {} and sip.text == "sip:call_CA42@h.example;transport=tcp"


@pytest.mark.parametrize(("asked", "dialled"), [(1, 5), (5, 5), (6, 6), (600, 600), (3600, 600)])
def test_bridge_timeout_stays_within_what_twilio_accepts(asked, dialled):
    root = parse(twiml.bridge_to_room(room_token="r", sip=SIP, action_url="https://a", timeout_s=asked))
    assert root.find("Dial").get("timeout") == str(dialled)


# ------------------------------------------------------------------ hold
def test_hold_plays_the_music_reassures_and_loops():
    root = parse(
        twiml.hold(
            music_url="https://cdn.example/hold/classical.mp3",
            loop_url="https://gw.example/twilio/hold?call=c1",
            message="Please hold while I connect you to a colleague.",
            reassurance="Thank you for waiting, you are still connected.",
        )
    )
    assert verbs(root) == ["Say", "Play", "Say", "Redirect"]
    assert root.find("Play").text == "https://cdn.example/hold/classical.mp3"
    assert said(root) == [
        "Please hold while I connect you to a colleague.",
        "Thank you for waiting, you are still connected.",
    ]
    redirect = root.find("Redirect")
    assert redirect.text == "https://gw.example/twilio/hold?call=c1" and redirect.get("method") == "POST"


def test_hold_without_an_opening_message_starts_with_the_music():
    root = parse(
        twiml.hold(music_url="https://cdn.example/m.mp3", loop_url="https://gw.example/l", reassurance="Still here.")
    )
    assert verbs(root) == ["Play", "Say", "Redirect"]
    assert said(root) == ["Still here."]


# ------------------------------------------------------------------ apology and voicemail
def test_apology_with_voicemail_records_to_our_action_after_a_beep():
    root = parse(
        twiml.apology(
            message="Sorry, all our agents are busy.",
            voicemail_action_url="https://gw.example/twilio/voicemail?call=c1",
            max_length_s=90,
        )
    )
    assert verbs(root) == ["Say", "Say", "Record", "Say", "Hangup"]
    assert said(root) == [
        "Sorry, all our agents are busy.",
        "Please leave a message after the tone, and we will call you back.",
        "Goodbye.",
    ]
    assert root.find("Record").attrib == {
        "action": "https://gw.example/twilio/voicemail?call=c1",
        "method": "POST",
        "maxLength": "90",
        "playBeep": "true",
    }


def test_apology_without_voicemail_says_sorry_and_goodbye():
    root = parse(twiml.apology(message="Sorry, nobody can take your call."))
    assert verbs(root) == ["Say", "Say", "Hangup"]
    assert said(root) == ["Sorry, nobody can take your call.", "Goodbye."]


def test_apology_records_two_minutes_by_default():
    root = parse(twiml.apology(message="Sorry.", voicemail_action_url="https://gw.example/vm"))
    assert root.find("Record").get("maxLength") == "120"


# ------------------------------------------------------------------ the agent's phone: whisper
def gather_of(root: ET.Element, action: str) -> ET.Element:
    gather = root.find("Gather")
    assert gather.attrib == {
        "action": action,
        "method": "POST",
        "numDigits": "1",
        "timeout": "6",
        "actionOnEmptyResult": "true",  # no key still reaches us: we decide, not the voicemail box
    }
    return gather


def test_whisper_offer_announces_and_asks_for_one_key_then_hangs_up_on_silence():
    root = parse(
        twiml.whisper_offer(
            announcement="Transfer from Alice. Reason: a broken router.",
            gather_url="https://gw.example/twilio/leg/gather?leg=l1",
        )
    )
    assert verbs(root) == ["Gather", "Say", "Hangup"]
    gather = gather_of(root, "https://gw.example/twilio/leg/gather?leg=l1")
    assert said(gather) == ["Transfer from Alice. Reason: a broken router.", "Press 1 to accept, or 2 to decline."]
    assert said(root) == ["No response received. Goodbye."]


def test_whisper_offer_names_the_keys_it_was_given():
    root = parse(twiml.whisper_offer(announcement="A call.", gather_url="https://g", accept_key="5", decline_key="9"))
    assert said(root.find("Gather"))[1] == "Press 5 to accept, or 9 to decline."


def test_whisper_wait_speaks_pauses_and_asks_again():
    root = parse(
        twiml.whisper_wait(
            message="One moment, the summary is on its way.",
            retry_url="https://gw.example/twilio/leg/answer?leg=l1",
            pause_s=2,
        )
    )
    assert verbs(root) == ["Say", "Pause", "Redirect"]
    assert said(root) == ["One moment, the summary is on its way."]
    assert root.find("Pause").attrib == {"length": "2"}
    redirect = root.find("Redirect")
    assert redirect.text == "https://gw.example/twilio/leg/answer?leg=l1" and redirect.get("method") == "POST"


def test_whisper_wait_pauses_one_second_by_default():
    root = parse(twiml.whisper_wait(message="One moment.", retry_url="https://r"))
    assert root.find("Pause").get("length") == "1"


def test_whisper_retry_asks_once_more_then_says_goodbye():
    root = parse(
        twiml.whisper_retry(
            message="Sorry, press 1 to accept or 2 to decline.", gather_url="https://gw.example/g?leg=l1"
        )
    )
    assert verbs(root) == ["Gather", "Say", "Hangup"]
    gather = gather_of(root, "https://gw.example/g?leg=l1")
    assert said(gather) == ["Sorry, press 1 to accept or 2 to decline."]
    assert said(root) == ["Goodbye."]


# ------------------------------------------------------------------ endings
def test_agent_taken_tells_the_agent_and_hangs_up():
    root = parse(twiml.agent_taken())
    assert verbs(root) == ["Say", "Hangup"]
    assert said(root) == ["This call has already been answered. Goodbye."]
    assert said(parse(twiml.agent_taken("This transfer is no longer needed. Goodbye."))) == [
        "This transfer is no longer needed. Goodbye."
    ]


def test_goodbye_hangs_up_with_or_without_words():
    assert verbs(parse(twiml.goodbye())) == ["Hangup"]
    root = parse(twiml.goodbye("Thank you. Goodbye."))
    assert verbs(root) == ["Say", "Hangup"]
    assert said(root) == ["Thank you. Goodbye."]


def test_empty_is_a_response_with_nothing_to_do():
    root = parse(twiml.empty())
    assert verbs(root) == [] and root.attrib == {} and not (root.text or "").strip()


def test_whisper_waits_as_long_as_it_is_told_for_the_key():
    offer = parse(twiml.whisper_offer(announcement="A call.", gather_url="https://g", timeout_s=9))
    assert offer.find("Gather").get("timeout") == "9"
    retry = parse(twiml.whisper_retry(message="Once more.", gather_url="https://g", timeout_s=4))
    assert retry.find("Gather").get("timeout") == "4"
    assert twiml.whisper_prompt() == "Press 1 to accept, or 2 to decline."
    assert twiml.whisper_prompt("3", "4") == "Press 3 to accept, or 4 to decline."


# ------------------------------------------------------------------ the smoke test's call (doctor --call)
def test_smoke_announcement_speaks_then_reports_it_was_heard():
    root = parse(
        twiml.smoke_announcement(text="This is the gateway's test call.", heard_url="https://gw.example/smoke/heard")
    )
    assert verbs(root) == ["Say", "Redirect"]
    assert said(root) == ["This is the gateway's test call."]
    redirect = root.find("Redirect")
    assert redirect.text == "https://gw.example/smoke/heard" and redirect.get("method") == "POST"


def test_smoke_prompt_asks_for_one_key_and_reports_silence_too():
    root = parse(twiml.smoke_prompt(prompt="Press 5 if you can hear me.", gather_url="https://gw.example/smoke/key"))
    assert verbs(root) == ["Gather"]
    gather = root.find("Gather")
    assert gather.attrib == {
        "action": "https://gw.example/smoke/key",
        "method": "POST",
        "numDigits": "1",
        "timeout": "10",
        "actionOnEmptyResult": "true",
    }
    assert said(gather) == ["Press 5 if you can hear me."]
    assert (
        parse(twiml.smoke_prompt(prompt="p", gather_url="https://g", timeout_s=3)).find("Gather").get("timeout") == "3"
    )


def test_smoke_bridge_says_what_happens_then_dials_the_room_like_a_caller():
    root = parse(
        twiml.smoke_bridge(
            room_token="smoke_1",
            sip=SIP,
            action_url="https://gw.example/smoke/dial-action",
            sip_status_url="https://gw.example/smoke/sip-status",
            message="Now joining a LiveKit room.",
        )
    )
    assert verbs(root) == ["Say", "Dial"]
    assert said(root) == ["Now joining a LiveKit room."]
    dial = root.find("Dial")
    assert dial.attrib == {"action": "https://gw.example/smoke/dial-action", "method": "POST", "timeout": "30"}
    sip = dial.find("Sip")
    assert sip.text == "sip:smoke_1@gw-test.sip.livekit.cloud;transport=tcp"
    assert sip.attrib == {
        "username": "trunk-user",
        "password": "s3cret",
        "statusCallback": "https://gw.example/smoke/sip-status",
        "statusCallbackEvent": "initiated",
        "statusCallbackMethod": "POST",
    }
    for asked, dialled in ((1, 5), (45, 45), (900, 600)):
        document = twiml.smoke_bridge(
            room_token="r", sip=SIP, action_url="a", sip_status_url="s", message="m", timeout_s=asked
        )
        assert parse(document).find("Dial").get("timeout") == str(dialled)


def test_whisper_reads_order_numbers_and_codes_one_by_one():
    root = parse(
        twiml.whisper_offer(
            announcement=[
                ("text", "Transfer from Alice. Order "),
                ("digits", "5520193"),
                ("text", ", code "),
                ("characters", "AB12"),
            ],
            gather_url="https://gw.example/g",
        )
    )
    announcement = root.find("Gather").find("Say")
    assert announcement.get("voice") == VOICE
    assert announcement.text == "Transfer from Alice. Order "
    assert [(e.tag, e.get("interpret-as"), e.text, e.tail) for e in announcement] == [
        ("say-as", "digits", "5520193", ", code "),
        ("say-as", "characters", "AB12", None),
    ]
