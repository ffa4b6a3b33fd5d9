"""B gets the story on every channel, whatever OpenAI does: B's SMS, whisper and console carry the
call's reason and a key fact with OpenAI working, failing, rate-limited and hanging past the deadline."""

from __future__ import annotations

import pytest

from gateway.domain import summary as S
from tests.e2e.test_transfer import connect_call, sms_to, start_warm

B_PHONE = "+15550002222"
NOTES = "Wants a refund for the cracked blender, order 1234. Customer since 2019."


def whisper_heard(world, number: str) -> str:
    b_call = next((c for c in world.twilio.calls() if c.to == number), None)
    return " ".join(e[1] for e in b_call.events if e[0] == "say") if b_call else ""


@pytest.mark.parametrize(
    "openai, source, error",
    [
        ("working", "openai", {None}),
        ("failing", "fallback", {"http_500"}),
        ("rate-limited", "fallback", {"http_429"}),
        # The client's timeout (the time left to the deadline) and the deadline timer end it together.
        ("hanging", "fallback", {"deadline passed", "timeout"}),
    ],
)
def test_b_learns_the_reason_and_a_key_fact_on_every_channel(make_world, openai, source, error):
    world = make_world(ring_timeout_s=10.0)
    # B answers at once and presses 1 two seconds after the whisper: the console offer is still open meanwhile.
    world.twilio.script_phone(B_PHONE, answer=True, answer_after=0.5, digits="1", gather_delay=100)
    alice = world.add_agent("alice")
    bob = world.add_agent("bob", phone=B_PHONE, status="offline")  # not offered the inbound call
    mallory = world.add_agent("mallory", status="offline")
    call, call_id = connect_call(world, alice)
    world.services.agents.set_status("bob", "available")
    call.speak("Hello, thanks for picking up.")
    call.speak("I need a refund for order 1234. The blender arrived with a cracked jug.")
    world.wait(lambda: len(world.services.views.transcript(call_id)) == 2, what="both lines transcribed")

    if openai == "failing":
        world.openai.fail_next(status=500, count=5)
    elif openai == "rate-limited":
        world.openai.fail_next(status=429, count=5, retry_after=2)
    elif openai == "hanging":
        world.openai.hang(True)
    try:
        transfer = start_warm(world, alice, call_id, {"target_agent_id": "bob"}, notes=NOTES)
        tid = transfer["id"]

        # Console: A's notes on B's offer card, then the whole summary.
        offer = bob.wait_offer("transfer")
        assert offer["transfer"]["notes"] == NOTES and offer["from_agent"] == "Alice"
        summary = world.wait(lambda: bob.get(f"/api/transfers/{tid}").json()["transfer"]["summary"], what="summary")
        console = " ".join([summary["reason"], *summary["key_facts"], summary["next_step"]])
        assert "refund" in console.lower() and "1234" in console
        ready = next(e for e in world.services.views.timeline(call_id) if e["kind"] == "summary_ready")
        assert ready["detail"]["source"] == source and ready["detail"].get("openai_error") in error

        # SMS: the reason and the order number in at most two segments, and the short link.
        sms = world.wait(lambda: sms_to(world, B_PHONE), what="SMS to B")[0]
        assert "refund" in sms["body"].lower() and "1234" in sms["body"]
        assert sms["body"].startswith("Transfer from Alice: ") and sms["body"].endswith(f"{world.url}/t/{tid}")
        assert int(sms["num_segments"]) <= 2 and S.sms_segments(sms["body"]) == int(sms["num_segments"])

        # Whisper: what B's phone says before "press 1", the order number read digit by digit.
        heard = world.wait(
            lambda: "Press 1 to accept" in whisper_heard(world, B_PHONE) and whisper_heard(world, B_PHONE)
        )
        spoken = heard[heard.rindex("Transfer from Alice.") : heard.index("Press 1 to accept")]
        assert "refund" in spoken.lower() and "1234" in spoken
        assert "Hello, thanks" not in spoken and "Hello, thanks" not in sms["body"]
    finally:
        world.openai.hang(False)

    # The link resolves to the transfer in the console for B, and to nothing for an agent not on the call.
    link = bob.http.get(f"{world.url}/t/{tid}", allow_redirects=False, timeout=5)
    assert link.status_code == 302 and link.headers["Location"].endswith(f"/console?transfer={tid}")
    assert mallory.http.get(f"{world.url}/t/{tid}", allow_redirects=False, timeout=5).status_code == 404
    assert bob.http.get(f"{world.url}/t/not-a-transfer", allow_redirects=False, timeout=5).status_code == 404


def test_transfer_notes_are_redacted_and_shown_in_the_transcript_view(make_world):
    world = make_world(ring_timeout_s=10.0)
    alice = world.add_agent("alice")
    bob = world.add_agent("bob", status="offline")
    call, call_id = connect_call(world, alice)
    world.services.agents.set_status("bob", "available")
    notes = "Card 4111 1111 1111 1111 was charged twice for booking BK-20931."
    transfer = start_warm(world, alice, call_id, {"target_agent_id": "bob"}, notes=notes)
    offer = bob.wait_offer("transfer")
    assert offer["transfer"]["notes"] == "Card (card number removed) was charged twice for booking BK-20931."
    view = bob.get(f"/api/calls/{call_id}/transcript").json()
    assert [n["text"] for n in view["notes"]] == [offer["transfer"]["notes"]]
    assert "4111" not in str(world.services.views.transfer(transfer["id"]))


def test_simulate_call_say_reaches_the_transcript_and_the_summary(world):
    """The README's sandbox walkthrough: `simulate-call --say …`, notes typed at transfer, B's summary."""
    alice = world.add_agent("alice")
    world.add_agent("bob", status="offline")
    said = world.app.test_cli_runner().invoke(
        args=["simulate-call", "--say", "Hi, thanks for picking up.", "--say", "I want to cancel my gym membership."]
    )
    assert said.exit_code == 0, said.output
    offer = alice.wait_offer("call")
    alice.accept_and_join(offer["call_id"])
    lines = world.wait(
        lambda: (
            len(world.services.views.transcript(offer["call_id"])) == 2
            and world.services.views.transcript(offer["call_id"])
        )
    )
    assert [line["text"] for line in lines] == ["Hi, thanks for picking up.", "I want to cancel my gym membership."]
    world.wait(lambda: world.services.views.call(offer["call_id"])["state"] == "connected", what="connected")
    world.services.agents.set_status("bob", "available")
    notes = "Caller Maria Lopez, account 88231, moving to Leeds; membership ends 30 June."
    transfer = start_warm(world, alice, offer["call_id"], {"target_agent_id": "bob"}, notes=notes)
    summary = world.wait(lambda: world.services.views.transfer(transfer["id"])["summary"], what="summary")
    text = " ".join([summary["reason"], *summary["key_facts"], summary["next_step"]])
    assert "cancel" in text and "88231" in text and "Maria Lopez" in text


def test_simulate_call_say_without_transcription_says_what_to_do(make_world):
    world = make_world(transcription_enabled=False)
    world.add_agent("alice")
    said = world.app.test_cli_runner().invoke(args=["simulate-call", "--say", "I want a refund."])
    assert said.exit_code != 0 and "TRANSCRIPTION_ENABLED=true" in said.output
