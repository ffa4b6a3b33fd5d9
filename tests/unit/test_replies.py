"""Every reply a service answers, rendered as Twilio receives it and read back as XML.

The services say what happens next (``services/replies.py``); the web layer renders it
(``web/replies.py``). These tests build each reply as the services do, with no database and no
HTTP, and check what the caller or the agent's phone hears and which of our webhooks Twilio asks.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

import twiml
from gateway.adapters.store.models import Call, Leg
from gateway.config import Settings
from gateway.domain import legs as L
from gateway.services import replies as R
from gateway.services.answers import Answers
from gateway.services.ports import Dest, Gateway
from gateway.web.replies import render
from gateway.web.urls import PublicUrls

VOICE = "Polly.Joanna"
ORIGIN = "https://gw.example"


def gateway(**overrides) -> Gateway:
    settings = Settings(
        public_base_url=ORIGIN,
        livekit_sip_host="gw-test.sip.livekit.cloud",
        livekit_sip_username="trunk-user",
        livekit_sip_password="s3cret",
        livekit_room_prefix="call",
        queue_timeout_s=50.0,
        hold_music_url="https://cdn.example/hold.mp3",
    ).with_overrides(**overrides)
    # Rendering reads only the settings and the URLs: no store and no provider is reached.
    return Gateway(settings=settings, store=None, telephony=None, rooms=None, summarizer=None, urls=PublicUrls(ORIGIN))  # type: ignore[arg-type]


GW = gateway()


def heard(reply: R.Reply, gw: Gateway = GW) -> ET.Element:
    document = render(reply, gw)
    assert document.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(document)
    assert root.tag == "Response"
    return root


def verbs(element: ET.Element) -> list[str]:
    return [child.tag for child in element]


def said(element: ET.Element) -> list[str]:
    says = element.findall("Say")
    assert all(say.get("voice") == VOICE for say in says)
    return ["".join(say.itertext()) for say in says]


# ------------------------------------------------------------------ the caller into the room
def test_the_caller_is_bridged_into_their_room_and_its_ending_names_the_bridge():
    call = Call(id="call_1", room="call_CA42", bridge_gen=3)
    root = heard(Answers(GW).bridge(call))
    assert verbs(root) == ["Dial"]
    dial = root.find("Dial")
    assert dial.get("action") == f"{ORIGIN}/twilio/dial-action?call=call_1&room=call_CA42&gen=3"
    assert dial.get("answerOnBridge") == "true"  # ringback until someone is in the room
    assert dial.get("timeout") == "60"  # the queue's timeout (50 s) ends a long wait, not the <Dial>
    sip = dial.find("Sip")
    assert sip.text == "sip:CA42@gw-test.sip.livekit.cloud;transport=tcp?X-GW-Call=call_1"
    assert sip.get("username") == "trunk-user" and sip.get("password") == "s3cret"
    assert sip.get("statusCallback") == f"{ORIGIN}/twilio/sip-status?call=call_1"
    assert sip.get("statusCallbackEvent") == "initiated"


def test_a_first_bridge_counts_as_generation_zero():
    root = heard(Answers(GW).bridge(Call(id="call_1", room="call_CA42", bridge_gen=None)))
    assert root.find("Dial").get("action").endswith("&gen=0")


def test_a_called_back_caller_hears_the_greeting_before_the_bridge():
    reply = Answers(GW).bridge(Call(id="call_1", room="call_CA42", bridge_gen=1), greeting="Hello again.")
    root = heard(reply)
    assert verbs(root) == ["Say", "Dial"]
    assert said(root) == ["Hello again."]


def test_an_agents_phone_is_bridged_with_its_own_number_and_no_progress_callback():
    leg = Leg(id="leg_7", room="call_CA42", phone="+15550001000")
    root = heard(Answers(GW).leg_bridge(leg))
    dial = root.find("Dial")
    assert dial.get("action") == f"{ORIGIN}/twilio/leg/dial-action?leg=leg_7"
    assert dial.get("callerId") == "+15550001000" and dial.get("timeout") == "60"
    sip = dial.find("Sip")
    assert sip.text == "sip:CA42@gw-test.sip.livekit.cloud;transport=tcp?X-GW-Leg=leg_7"
    assert "statusCallback" not in sip.attrib


# ------------------------------------------------------------------ hold and the waiting line
def test_hold_opens_with_a_message_then_music_reassurance_and_the_next_pass():
    root = heard(Answers(GW).hold("call_1", first=True))
    assert verbs(root) == ["Say", "Play", "Say", "Redirect"]
    assert said(root) == [R.HOLD_FIRST, R.REASSURANCE]
    assert root.find("Play").text == "https://cdn.example/hold.mp3"
    assert root.find("Redirect").text == f"{ORIGIN}/twilio/hold?call=call_1&loop=1"


def test_hold_says_a_given_message_first_and_nothing_before_the_music_on_later_passes():
    assert said(heard(Answers(GW).hold("call_1", message="One moment.")))[0] == "One moment."
    root = heard(Answers(GW).hold("call_1", first=False, message="One moment."))
    assert verbs(root) == ["Play", "Say", "Redirect"]


def test_a_waiting_caller_can_press_a_key_at_any_moment_of_the_pass():
    reply = R.Hold(
        music_url="https://cdn.example/team.mp3",
        again=R.Webhook.to(Dest.QUEUE, call="call_1", loop=1),
        message="You are number 2 in line.",
        reassurance="Thank you for waiting.",
        choices=R.Webhook.to(Dest.QUEUE_CHOICE, call="call_1"),
        choices_prompt="Press 1 to leave a message.",
    )
    root = heard(reply)
    assert verbs(root) == ["Gather", "Redirect"]
    gather = root.find("Gather")
    assert gather.get("action") == f"{ORIGIN}/twilio/queue/choice?call=call_1"
    assert gather.get("input") == "dtmf speech"
    assert said(gather) == ["You are number 2 in line.", "Press 1 to leave a message.", "Thank you for waiting."]
    assert gather.find("Play").text == "https://cdn.example/team.mp3"
    assert root.find("Redirect").text == f"{ORIGIN}/twilio/queue?call=call_1&loop=1"


# ------------------------------------------------------------------ menu
def test_the_menu_asks_for_a_key_or_a_name_and_answers_with_the_attempt():
    reply = R.Menu(prompt="Press 1 for sales.", choice=R.Webhook.to(Dest.MENU, call="call_1", attempt=2), hints="sales")
    root = heard(reply)
    gather = root.find("Gather")
    assert gather.get("action") == f"{ORIGIN}/twilio/menu?call=call_1&attempt=2"
    assert gather.get("hints") == "sales" and gather.get("actionOnEmptyResult") == "true"
    assert said(gather) == ["Press 1 for sales."]


# ------------------------------------------------------------------ apology and voicemail
def test_the_apology_offers_voicemail_recorded_for_the_call():
    root = heard(Answers(GW).apology("call_1"))
    assert verbs(root) == ["Say", "Say", "Record", "Say", "Hangup"]
    assert said(root)[0] == R.APOLOGY
    assert root.find("Record").get("action") == f"{ORIGIN}/twilio/voicemail?call=call_1"


@pytest.mark.parametrize(
    ("gw", "call_id"), [(gateway(voicemail_enabled=False), "call_1"), (GW, None)], ids=["voicemail off", "no call"]
)
def test_no_voicemail_when_it_is_off_or_the_call_is_unknown(gw, call_id):
    root = heard(Answers(gw).apology(call_id, technical=True), gw)
    assert verbs(root) == ["Say", "Say", "Hangup"]
    assert said(root) == [R.APOLOGY_TECHNICAL, "Goodbye."]


def test_the_apology_says_a_given_message_instead():
    assert said(heard(Answers(GW).apology("call_1", message="Of course.")))[0] == "Of course."


# ------------------------------------------------------------------ endings
def test_goodbye_says_its_last_word_and_hangs_up():
    root = heard(R.Goodbye(R.ENDED_BY_AGENT))
    assert verbs(root) == ["Say", "Hangup"] and said(root) == [R.ENDED_BY_AGENT]
    assert verbs(heard(R.Goodbye())) == ["Hangup"]


def test_nothing_is_an_empty_document():
    assert verbs(heard(R.Nothing())) == []


# ------------------------------------------------------------------ the agent's phone
def test_the_whisper_reads_ids_digit_by_digit_and_asks_for_a_key():
    reply = R.Whisper(
        announcement=(("text", "Transfer from Alice. Order "), ("digits", "5520193"), ("text", ".")),
        keys=R.Webhook.to(Dest.LEG_GATHER, leg="leg_7"),
        wait_s=L.GATHER_TIMEOUT_S,
    )
    root = heard(reply)
    assert verbs(root) == ["Gather", "Say", "Hangup"]
    gather = root.find("Gather")
    assert gather.get("action") == f"{ORIGIN}/twilio/leg/gather?leg=leg_7"
    assert gather.get("timeout") == str(L.GATHER_TIMEOUT_S)
    assert gather.find("Say/say-as").attrib == {"interpret-as": "digits"}
    assert said(gather) == ["Transfer from Alice. Order 5520193.", R.WHISPER_PROMPT]


def test_a_repeated_prompt_asks_again_with_the_again_flag():
    reply = R.WhisperAgain(
        message=f"I did not hear a key. {R.WHISPER_PROMPT}",
        keys=R.Webhook.to(Dest.LEG_GATHER, leg="leg_7", again=1),
        wait_s=L.GATHER_TIMEOUT_S,
    )
    root = heard(reply)
    assert root.find("Gather").get("action") == f"{ORIGIN}/twilio/leg/gather?leg=leg_7&again=1"
    assert said(root) == ["Goodbye."]


def test_waiting_for_the_summary_asks_again_without_a_key():
    reply = R.WhisperWait(message="One moment.", retry=R.Webhook.to(Dest.LEG_ANSWER, leg="leg_7", wait=1))
    root = heard(reply)
    assert verbs(root) == ["Say", "Pause", "Redirect"]
    assert root.find("Redirect").text == f"{ORIGIN}/twilio/leg/answer?leg=leg_7&wait=1"


PROMPTS = [
    R.Whisper(announcement="Incoming call from 5 5 5.", keys=R.Webhook.to(Dest.LEG_GATHER, leg="l"), wait_s=6),
    R.Whisper(
        announcement=(("text", "Transfer  from Bo.\nCase "), ("characters", "BK-1"), ("text", " today.")),
        keys=R.Webhook.to(Dest.LEG_GATHER, leg="l"),
        wait_s=6,
    ),
    R.WhisperAgain(message="Sorry, that key does nothing here. Press 1.", keys=R.Webhook.to(Dest.LEG_GATHER), wait_s=6),
    R.WhisperWait(message="Transfer from Bo. One moment.", retry=R.Webhook.to(Dest.LEG_ANSWER, leg="l")),
]


@pytest.mark.parametrize("prompt", PROMPTS, ids=lambda p: type(p).__name__)
def test_a_prompts_own_account_of_its_words_is_what_the_phone_says(prompt):
    """The whisper's key-press budget is counted from ``said()``: it must be every word rendered."""
    document = render(prompt, GW)
    assert prompt.said() == twiml.spoken(document)
    assert prompt.asks_for_a_key == twiml.asks_for_a_key(document)


def test_anything_else_is_refused():
    with pytest.raises(TypeError):
        render("<Response/>", GW)  # type: ignore[arg-type]
