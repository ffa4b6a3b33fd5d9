"""Findings 5 and 6: bad bytes get clear JSON 400s (never an HTML 500), and guessing credentials stops
paying: failures are throttled with Retry-After, per address and per agent."""

from __future__ import annotations

import requests

JSON = {"Content-Type": "application/json"}


def _post_raw(world, path: str, body: str, headers: dict | None = None) -> requests.Response:
    return requests.post(world.url + path, data=body.encode(), headers=JSON | (headers or {}), timeout=10)


def test_lone_surrogates_deep_nesting_and_non_ascii_tokens_get_json_errors(world):
    alice = world.add_agent("alice")
    bearer = {"Authorization": f"Bearer {alice.credential}"}
    replies = {
        "surrogate sign-in": _post_raw(world, "/api/auth/login", '{"credential":"\\udfff.x"}'),
        "surrogate status": _post_raw(world, "/api/agents/me/status", '{"status":"\\ud800"}', bearer),
        "surrogate room": _post_raw(world, "/api/rooms/join", '{"room":"call_\\udfff"}', bearer),
        "2000 deep": _post_raw(world, "/api/auth/login", "[" * 2000 + "]" * 2000),
        "invalid UTF-8": requests.post(
            world.url + "/api/auth/login", data=b'{"credential":"\xff\xfe"}', headers=JSON, timeout=10
        ),
    }
    admin = requests.get(world.url + "/api/admin/agents", headers={"Authorization": "Bearer tökén"}, timeout=10)

    assert {k: r.status_code for k, r in replies.items()} == dict.fromkeys(replies, 400)
    assert all(r.headers["Content-Type"] == "application/json" and r.json()["error"] for r in replies.values())
    assert "surrogate" in replies["surrogate sign-in"].json()["error"]
    assert "nested" in replies["2000 deep"].json()["error"]
    assert admin.status_code == 401 and admin.json()["error"]


def test_wrong_sign_ins_are_throttled_even_when_the_right_credential_follows(world):
    alice = world.add_agent("alice")
    wrong = [
        requests.post(world.url + "/api/auth/login", json={"credential": f"alice.wrong{i}"}, timeout=5).status_code
        for i in range(10)
    ]

    right = requests.post(world.url + "/api/auth/login", json={"credential": alice.credential}, timeout=5)

    assert wrong == [401] * 10
    assert right.status_code == 429 and right.json()["error"]
    assert 0 < int(right.headers["Retry-After"]) <= 300


def test_bearer_and_admin_token_failures_are_throttled(world):
    alice = world.add_agent("alice")
    for i in range(10):
        assert (
            requests.get(world.url + "/api/me", headers={"Authorization": f"Bearer alice.x{i}"}, timeout=5).ok is False
        )
    for i in range(10):
        requests.get(world.url + "/api/admin/agents", headers={"Authorization": f"Bearer guess{i}"}, timeout=5)

    agent = requests.get(world.url + "/api/me", headers={"Authorization": f"Bearer {alice.credential}"}, timeout=5)
    admin = requests.get(
        world.url + "/api/admin/agents", headers={"Authorization": f"Bearer {world.settings.admin_token}"}, timeout=5
    )

    assert agent.status_code == 429 and int(agent.headers["Retry-After"]) > 0
    assert admin.status_code == 429 and int(admin.headers["Retry-After"]) > 0
