"""Where Twilio is sent next: every destination the services name has a webhook of ours, its
URL is on the public origin, and a job stored with a path by an earlier release still resolves."""

from __future__ import annotations

import pytest

from gateway.services.ports import Dest
from gateway.web.urls import PublicUrls

urls = PublicUrls("https://gw.example.com/")


@pytest.mark.parametrize("dest", list(Dest))
def test_every_destination_is_a_public_webhook_that_resolves_back(dest):
    url = urls(dest, call="call_1")
    assert url.startswith("https://gw.example.com/twilio/")
    assert url.endswith("?call=call_1")
    assert urls.destination(url.removeprefix(urls.origin).split("?")[0]) == dest
    assert urls.destination(dest.value) == dest


def test_query_keeps_its_order_and_drops_what_is_unset():
    assert (
        urls(Dest.DIAL_ACTION, call="call_1", room="call_abc", gen=0, none=None)
        == "https://gw.example.com/twilio/dial-action?call=call_1&room=call_abc&gen=0"
    )
    assert urls(Dest.SMS_STATUS) == "https://gw.example.com/twilio/sms-status"


@pytest.mark.parametrize(
    ("path", "dest"),
    [
        ("/twilio/bridge", Dest.BRIDGE),
        ("/twilio/goodbye", Dest.GOODBYE),
        ("/twilio/apology", Dest.APOLOGY),
        ("/twilio/queue", Dest.QUEUE),
        ("/twilio/leg/bridge", Dest.LEG_BRIDGE),
    ],
)
def test_a_redirect_job_stored_with_a_path_still_goes_where_it_said(path, dest):
    assert urls.destination(path) == dest
