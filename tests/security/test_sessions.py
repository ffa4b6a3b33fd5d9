"""Finding 4: signing out ends the session on the server; so do a credential reset and removal."""

from __future__ import annotations

import requests

CSRF = {"X-Requested-With": "console"}


def _sign_in(world, credential: str) -> requests.Session:
    browser = requests.Session()
    reply = browser.post(world.url + "/api/auth/login", json={"credential": credential}, timeout=5)
    assert reply.status_code == 200, reply.text
    return browser


def _me_with(world, cookies) -> int:
    return requests.get(world.url + "/api/me", cookies=cookies, timeout=5).status_code


def test_a_cookie_saved_before_sign_out_is_refused_after_it(world):
    alice = world.add_agent("alice")
    browser = _sign_in(world, alice.credential)
    saved = browser.cookies.copy()
    assert _me_with(world, saved) == 200

    assert browser.post(world.url + "/api/auth/logout", headers=CSRF, timeout=5).status_code == 200

    assert _me_with(world, saved) == 401


def test_credential_reset_and_removal_end_every_session_at_once(world):
    alice, bob = world.add_agent("alice"), world.add_agent("bob")
    alice_desk, alice_laptop = _sign_in(world, alice.credential), _sign_in(world, alice.credential)
    bob_desk = _sign_in(world, bob.credential)

    world.services.agents.reset_secret("alice")
    world.services.agents.remove("bob")

    assert [_me_with(world, s.cookies) for s in (alice_desk, alice_laptop, bob_desk)] == [401, 401, 401]
