"""Typed jobs: what the outbox stores for each kind decodes back to the same job, rows stored by
an earlier release still decode, and a payload that makes no job of its kind is refused."""

from __future__ import annotations

import json

import pytest

from gateway.services import job_types as J
from gateway.services.jobs import URGENT_KINDS
from gateway.services.ports import Dest

EXAMPLES = [
    J.CreateRoom("call_1", "call_tr", "tr_1"),
    J.DeleteRoom("call_x", "call_1"),
    J.RemoveParticipant("call_x", "alice", "call_1"),
    J.MoveParticipant("call_x", "alice", "call_tr", "call_1"),
    J.ReconcileRoom("call_1", "call_x", 1, "alice"),
    J.DialLeg("leg_1", "+15550001111", True),
    J.HangupLeg("leg_1"),
    J.RedirectCaller("call_1", Dest.BRIDGE, 3),
    J.RedirectLeg("leg_1", Dest.LEG_BRIDGE),
    J.HoldCaller("call_1", "tr_1"),
    J.StartTranscription("call_1"),
    J.DialCallback("call_1", 2, 1),
    J.DispatchTeam(("billing", "default")),
    J.RingTimeout(("leg_1", "leg_2"), "call_1"),
    J.WhisperTimeout("leg_1", "whisper", "call_1"),
    J.QueueTimeout("call_1"),
    J.IntroTimeout("tr_1"),
    J.ReturnTimeout("call_1", "leg_1", "tr_1"),
    J.WebJoinDeadline("call_1", 2),
    J.WebRejoinDeadline("call_1", 3),
    J.SummaryDeadline("tr_1"),
    J.Summarize("tr_1"),
    J.SendSms("tr_1", "+15550002222"),
    J.PurgeCallData("call_1"),
    J.DeliverEvents("call_1", "https://hooks.example.com/in"),
]


def test_every_kind_has_an_example():
    assert {job.kind for job in EXAMPLES} == set(J.KINDS)


@pytest.mark.parametrize("job", EXAMPLES, ids=lambda job: job.kind)
def test_what_the_outbox_stores_decodes_to_the_same_job(job):
    stored = json.loads(json.dumps(job.payload()))  # the JSON column
    assert J.decode(job.kind, stored) == job
    assert J.decode(job.kind, {**stored, "_attempt": 2, "_fresh": True}).fresh is True


def test_the_urgent_lane_is_what_a_caller_or_agent_waits_on():
    assert {"hold_caller", "redirect_caller", "dial_leg", "redirect_leg", "hangup_leg", "dispatch_team"} == URGENT_KINDS


@pytest.mark.parametrize(
    ("kind", "payload", "job"),
    [
        # A redirect stored with a path before destinations had names: the path is kept for the
        # handler to resolve (web/urls.py).
        (
            "redirect_caller",
            {"call_id": "call_1", "path": "/twilio/bridge"},
            J.RedirectCaller("call_1", "/twilio/bridge"),
        ),
        (
            "redirect_leg",
            {"leg_id": "leg_1", "path": "/twilio/leg/bridge"},
            J.RedirectLeg("leg_1", "/twilio/leg/bridge"),
        ),
        # Fields an earlier release did not write take their defaults.
        ("create_room", {"call_id": "call_1"}, J.CreateRoom("call_1")),
        ("reconcile_room", {"call_id": "call_1", "room": "call_x"}, J.ReconcileRoom("call_1", "call_x")),
        ("dial_leg", {"leg_id": "leg_1"}, J.DialLeg("leg_1")),
        ("dial_callback", {"call_id": "call_1", "attempt": 1}, J.DialCallback("call_1", 1)),
        # Keys it wrote that are gone are ignored.
        ("hangup_leg", {"leg_id": "leg_1", "reason": "old"}, J.HangupLeg("leg_1")),
    ],
)
def test_rows_of_an_earlier_release_still_decode(kind, payload, job):
    assert J.decode(kind, payload) == job


@pytest.mark.parametrize(
    ("kind", "payload"),
    [
        ("hold_caller", {"call_id": "call_1"}),  # no transfer_id
        ("ring_timeout", {"leg_ids": "leg_1"}),  # not a list
        ("reconcile_room", {"call_id": "call_1", "room": "r", "round": "1"}),
        ("dial_leg", {"leg_id": "leg_1", "transfer": 1}),
        ("redirect_caller", {"call_id": "call_1"}),  # nowhere to go
    ],
)
def test_a_payload_that_makes_no_job_is_refused_with_what_is_wrong(kind, payload):
    with pytest.raises(J.InvalidJob, match=kind):
        J.decode(kind, payload)


def test_an_unknown_kind_is_no_job():
    assert J.decode("no_such_kind", {}) is None
