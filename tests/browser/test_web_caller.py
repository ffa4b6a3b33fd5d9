"""A caller from the web, in Chromium with a fake microphone: the caller page (/call) on a phone-sized
screen, agent A's console, agent B over the API. Asserted on what the caller's page shows and who
is in which room; a refused microphone, an origin that may not frame the page."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

from gateway.domain import web_calls as W
from tests.browser.conftest import SCREENSHOTS, TIMEOUT_MS, _in_thread
from tests.browser.test_console_transfer import _start_warm_transfer

SECRET = "shop-shared-secret"
PHONE = {"width": 390, "height": 844}  # a phone's screen


def _caller_page(browser, world, **options):
    context = browser.new_context(
        permissions=["microphone"], base_url=world.url, viewport=PHONE, is_mobile=True, has_touch=True, **options
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    return context, page, errors


def _web_calls(world) -> list[str]:
    from sqlalchemy import select

    from gateway.adapters.store.models import Call

    return list(world.store.read(lambda s: s.execute(select(Call.id).where(Call.channel == "web")).scalars().all()))


def _newest_identity(world, call_id: str) -> str:
    from sqlalchemy import select

    from gateway.adapters.store.models import WebJoin

    return world.store.read(
        lambda s: (
            s.execute(select(WebJoin.id).where(WebJoin.call_id == call_id).order_by(WebJoin.gen.desc()))
            .scalars()
            .first()
        )
    )


@pytest.mark.world(web_call_context_secret=SECRET)
def test_web_caller_queued_answered_held_during_a_warm_transfer_and_completed(world, console, browser):
    alice = world.add_agent("alice", status="offline")
    bob = world.add_agent("bob", status="offline")
    world.add_agent("zed", status="busy")  # signed in, not free: the web caller waits in line first
    a = console.open(alice)
    context, caller, errors = _caller_page(browser, world)
    signed = W.sign_context({"customer_id": "C-1001", "name": "Maria Lopez", "page": "/orders/5521"}, SECRET)
    caller.goto(f"/call#context={signed}")
    expect(caller.locator("body[data-ready=true]")).to_have_count(1)
    caller.get_by_role("button", name="Call").click()

    # Nobody free: in line, with the place shown and hold music playing.
    expect(caller.locator("#state")).to_have_text("Waiting in line")
    expect(caller.locator("#position-number")).to_have_text("1")
    expect(caller.locator("#context-note")).to_be_visible()
    (call_id,) = world.wait(lambda: _web_calls(world), what="the web call")
    expect(caller.locator("#hangup")).to_be_visible()

    # A becomes available: the console offers a web call, with what the website vouched for.
    a.page.get_by_role("button", name="Available", exact=True).click()
    offer = a.offer("Incoming web call from Maria Lopez")
    expect(offer).to_be_visible()
    expect(offer.locator(".web-context")).to_contain_text("C-1001")
    expect(offer.locator(".web-context")).to_contain_text("/orders/5521")
    a.shot("web-call-offer")
    offer.get_by_role("button", name="Accept").click()
    expect(caller.locator("#state")).to_have_text("Connected")
    expect(a.page.locator("#call-state")).to_have_text("Connected")
    call_room = world.services.views.call(call_id)["room"]
    identity = W.identity(call_id, 0)
    world.wait(lambda: world.participants(call_room) == sorted(["alice", identity]), what="caller with A")

    # Mute is a toggle button the caller can reach by keyboard.
    mute = caller.get_by_role("button", name="Mute")
    mute.focus()
    caller.keyboard.press("Enter")
    expect(caller.get_by_role("button", name="Unmute")).to_have_attribute("aria-pressed", "true")
    caller.get_by_role("button", name="Unmute").click()

    # Warm transfer: the caller's page says on hold and plays music; nobody else is in their room.
    a.page.get_by_label("Add a note").fill("Parcel for order 5521 arrived damaged; wants a replacement.")
    a.page.get_by_role("button", name="Add note").click()
    bob_status = bob.post("/api/agents/me/status", {"status": "available"})
    assert bob_status.status_code == 200
    expect(a.page.locator("#transfer-agent")).to_have_value("bob")
    transfer = _start_warm_transfer(world, a, call_id)
    expect(caller.locator("#state")).to_have_text("On hold")
    expect(caller.locator("#message")).to_have_text(W.HOLD_ANNOUNCEMENT)
    assert caller.evaluate("document.body.dataset.state") == "on_hold"
    world.wait(lambda: world.participants(call_room) == [identity], what="the caller alone in their room")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    caller.screenshot(path=str(SCREENSHOTS / "web-caller-on-hold.png"))

    accepted = bob.post(f"/api/transfers/{transfer['id']}/accept")
    assert accepted.status_code == 200, accepted.text
    bob.join(accepted.json()["token"])
    room = transfer["consult_room"]
    world.wait(lambda: "bob" in world.participants(room), what="B in the consult room")
    assert identity not in world.participants(room)  # the consult stays private
    summary = world.wait(lambda: world.services.views.transfer(transfer["id"])["summary"], what="summary")
    assert "5521" in str(summary) and "C-1001" in str(summary)  # notes and the verified context

    connect = a.page.get_by_role("button", name="Connect caller")
    expect(connect).to_be_enabled()
    connect.click()
    expect(caller.locator("#state")).to_have_text("Connected")
    moved = _newest_identity(world, call_id)
    assert moved != identity  # a new one-use token for the room the caller moved to
    world.wait(lambda: world.participants(room) == sorted(["alice", "bob", moved]), what="three-way")
    a.page.get_by_role("button", name="Leave").click()
    world.wait(lambda: world.participants(room) == sorted(["bob", moved]), what="the caller with B only")
    world.wait(lambda: call_room not in world.livekit.rooms(), what="the first room deleted")
    assert world.services.views.call(call_id)["agent_id"] == "bob"

    caller.get_by_role("button", name="Hang up").click()
    expect(caller.locator("#state")).to_have_text("Call ended")
    expect(caller.get_by_role("button", name="Call again")).to_be_visible()
    world.wait(lambda: world.services.views.call(call_id)["state"] == "ended", what="call ended")
    world.wait(lambda: room not in world.livekit.rooms(), what="the room deleted")
    assert not errors, errors
    context.close()


# Every text the status line shows, from before the page's script runs (module scripts run after
# the document turns interactive): transient ones such as "Reconnecting…" included.
RECORD_STATES = """
document.addEventListener("readystatechange", () => {
  if (document.readyState !== "interactive") return;
  const state = document.getElementById("state");
  window.seenStates = [];
  new MutationObserver(() => window.seenStates.push(state.textContent)).observe(state, {
    childList: true, characterData: true, subtree: true,
  });
});
"""


def test_a_caller_who_reloads_the_page_while_queued_is_back_in_line_then_answered(world, browser):
    alice = world.add_agent("alice", status="offline")
    world.add_agent("zed", status="busy")  # signed in, not free: the web caller waits in line
    context, caller, errors = _caller_page(browser, world)
    context.add_init_script(RECORD_STATES)
    caller.goto("/call")
    caller.get_by_role("button", name="Call").click()
    expect(caller.locator("#state")).to_have_text("Waiting in line")
    expect(caller.locator("#position-number")).to_have_text("1")
    (call_id,) = world.wait(lambda: _web_calls(world), what="the web call")
    room = world.services.views.call(call_id)["room"]
    before = _newest_identity(world, call_id)
    kept = caller.evaluate("sessionStorage.getItem('web-call')")
    assert call_id in kept and "secret" in kept and "secret" not in caller.url

    caller.reload()
    expect(caller.locator("#state")).to_have_text("Waiting in line")
    expect(caller.locator("#position-number")).to_have_text("1")
    assert "Reconnecting…" in caller.evaluate("window.seenStates")
    after = _newest_identity(world, call_id)
    assert after != before and "web_caller_rejoined" in world.timeline(call_id)
    world.wait(lambda: world.participants(room) == [after], what="the caller back in their room, alone")
    assert caller.evaluate("sessionStorage.getItem('web-call')") != kept  # the used secret was replaced
    assert world.services.views.call(call_id)["state"] == "queued"

    world.services.agents.set_status("alice", "available")
    assert alice.wait_offer()["call_id"] == call_id
    alice.accept_and_join(call_id)
    expect(caller.locator("#state")).to_have_text("Connected")
    world.wait(lambda: world.participants(room) == sorted(["alice", after]), what="the caller with A")
    caller.get_by_role("button", name="Hang up").click()
    expect(caller.locator("#state")).to_have_text("Call ended")
    world.wait(lambda: world.services.views.call(call_id)["state"] == "ended", what="ended at once")
    assert world.services.views.call(call_id)["end_reason"] == "web caller hung up"
    assert caller.evaluate("sessionStorage.getItem('web-call')") is None
    caller.reload()  # nothing kept: a fresh page, not a rejoin
    expect(caller.locator("#state")).to_have_text("Ready to call")
    assert not errors, errors
    context.close()


def test_microphone_refused_says_so_and_places_no_call(world, browser):
    """The browser refuses the microphone: here because the page framing the caller page forbids it
    (``Permissions-Policy: microphone=()``), so the browser denies it whatever the person would say."""
    world.add_agent("alice")
    context = browser.new_context(viewport=PHONE)
    context.set_default_timeout(TIMEOUT_MS)
    shop = '<title>Shop</title><iframe title="Call us" src="/call" width="380" height="700"></iframe>'
    context.route(
        world.url + "/shop",
        lambda route: route.fulfill(
            body=shop, content_type="text/html", headers={"Permissions-Policy": "microphone=()"}
        ),
    )
    page = context.new_page()
    page.goto(world.url + "/shop")
    frame = page.frame_locator("iframe")
    expect(frame.locator("body[data-ready=true]")).to_have_count(1)
    frame.get_by_role("button", name="Call").click()
    expect(frame.locator("#state")).to_have_text("Microphone needed")
    expect(frame.get_by_role("alert")).to_contain_text("blocked the microphone")
    expect(frame.get_by_role("button", name="Call again")).to_be_focused()
    time.sleep(0.3)
    assert not _web_calls(world)  # no call was placed without a microphone
    context.close()


@pytest.mark.world(web_calls_max=0)
def test_over_the_cap_the_page_says_try_again(world, browser):
    world.add_agent("alice")
    context, page, _errors = _caller_page(browser, world)
    page.goto("/call")
    page.get_by_role("button", name="Call").click()
    expect(page.locator("#state")).to_have_text("Call failed")
    expect(page.get_by_role("alert")).to_contain_text("too many web calls at once")
    context.close()


@pytest.mark.world(web_call_origins=("https://shop.example",))
def test_only_allowed_origins_may_frame_the_page(world, browser):
    page_csp = world.app.test_client().get("/call").headers["Content-Security-Policy"]
    assert "frame-ancestors 'self' https://shop.example;" in page_csp
    context = browser.new_context(base_url=world.url)
    page = context.new_page()
    blocked: list[str] = []
    page.on("console", lambda m: blocked.append(m.text) if "frame-ancestors" in m.text else None)
    # A page of another origin (data: is opaque) framing the caller page is refused by the browser.
    page.set_content(f'<iframe id="f" src="{world.url}/call"></iframe>')
    _in_thread(lambda: time.sleep(0.5))
    assert blocked, "the browser should refuse to frame /call for an origin not listed"
    context.close()


def test_a_media_connection_that_fails_is_explained_and_the_call_ended(world, browser):
    world.add_agent("alice")
    context, page, _errors = _caller_page(browser, world)
    # The media server cannot be reached from this browser (a firewall, a dropped network).
    context.route("**/call/sandbox/rtc/join", lambda route: route.abort("connectionfailed"))
    page.goto("/call")
    page.get_by_role("button", name="Call").click()
    expect(page.locator("#state")).to_have_text("Call failed")
    expect(page.get_by_role("alert")).to_contain_text("The audio connection failed")
    expect(page.get_by_role("button", name="Call again")).to_be_focused()
    (call_id,) = _web_calls(world)
    world.wait(lambda: world.services.views.call(call_id)["state"] == "ended", what="the call ended")
    assert world.services.views.call(call_id)["end_reason"] == "web caller hung up"
    context.close()


def test_the_caller_page_passes_axe_at_every_step(world, browser):
    from tests.browser.test_console_a11y import AXE, Audit

    if not AXE.exists():
        pytest.skip("axe-core is not installed (npm ci)")
    world.add_agent("zed", status="busy")  # the caller waits in line first
    alice = world.add_agent("alice", status="offline")
    context, page, _errors = _caller_page(browser, world, bypass_csp=True)
    audit = Audit()

    class Caller:
        label = "caller"

    Caller.page = page
    page.goto("/call")
    expect(page.locator("body[data-ready=true]")).to_have_count(1)
    audit(Caller, "ready")
    page.get_by_role("button", name="Call").click()
    expect(page.locator("#state")).to_have_text("Waiting in line")
    audit(Caller, "queued")
    world.services.agents.set_status("alice", "available")
    (call_id,) = _web_calls(world)
    alice.accept_and_join(alice.wait_offer()["call_id"])
    expect(page.locator("#state")).to_have_text("Connected")
    audit(Caller, "connected")
    page.get_by_role("button", name="Hang up").click()
    expect(page.locator("#state")).to_have_text("Call ended")
    audit(Caller, "ended")
    assert not audit.found, audit.report()
    assert world.services.views.call(call_id)["state"] == "ended"
    context.close()


def test_the_call_us_button_opens_the_caller_page_in_a_dialog(world, browser):
    world.add_agent("alice")
    context = browser.new_context(permissions=["microphone"], viewport=PHONE)
    context.set_default_timeout(TIMEOUT_MS)
    shop = (
        "<!doctype html><title>Shop</title><h1>Order 5521</h1>"
        '<script src="/call/button.js" data-team="default" data-label="Call us" async></script>'
    )
    context.route(world.url + "/shop", lambda route: route.fulfill(body=shop, content_type="text/html"))
    page = context.new_page()
    page.goto(world.url + "/shop")
    button = page.get_by_role("button", name="Call us")
    expect(button).to_have_attribute("aria-expanded", "false")
    button.focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Call us")
    expect(dialog).to_be_visible()
    assert page.locator("iframe").get_attribute("allow") == "microphone; autoplay"
    frame = page.frame_locator("iframe")
    frame.get_by_role("button", name="Call").click()
    expect(frame.locator("#state")).to_have_text("Ringing")
    (call_id,) = _web_calls(world)
    assert world.services.views.call(call_id)["channel"] == "web"
    frame.get_by_role("button", name="Hang up").click()
    expect(frame.locator("#state")).to_have_text("Call ended")
    dialog.get_by_role("button", name="Close").focus()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(button).to_be_focused()
    context.close()


def test_a_queued_web_caller_leaves_a_number_and_is_told_when_we_will_call(world, browser):
    from tests.browser.test_console_a11y import AXE, Audit

    world.add_agent("zed", status="busy")  # signed in, not free: the caller waits in line
    context, page, errors = _caller_page(browser, world, bypass_csp=AXE.exists())
    audit = Audit()

    class Caller:
        label = "caller"

    Caller.page = page
    page.goto("/call")
    expect(page.locator("body[data-ready=true]")).to_have_count(1)
    choice = page.get_by_role("button", name="Call me back instead")
    expect(choice).to_be_hidden()  # only while in line
    page.get_by_role("button", name="Call").click()
    expect(page.locator("#state")).to_have_text("Waiting in line")
    (call_id,) = world.wait(lambda: _web_calls(world), what="the web call")

    # Keyboard all the way: open the choice, type a number that is not a full one, told why inline.
    choice.focus()
    page.keyboard.press("Enter")
    expect(choice).to_be_hidden()
    number = page.get_by_role("textbox", name="Your phone number")
    expect(number).to_be_focused()
    number.fill("555 0123")
    page.keyboard.press("Enter")
    error = page.locator("#callback-error")
    expect(error).to_contain_text("Start with + and your country code")
    expect(number).to_have_attribute("aria-invalid", "true")
    expect(number).to_be_focused()
    assert world.services.views.call(call_id)["state"] == "queued"
    page.screenshot(path=str(SCREENSHOTS / "web-caller-callback-form.png"))
    if AXE.exists():
        audit(Caller, "callback form, invalid number")

    # A number as people write it: the page says when we will call, out loud (a live region).
    number.fill("+1 (555) 090-0123")
    page.get_by_role("button", name="Call me back", exact=True).click()
    expect(page.locator("#state")).to_have_text("We'll call you back")
    expect(page.locator("#message")).to_have_text(
        "We'll call you at …0123 when it's your turn. You keep your place in line, so you can close this page now."
    )
    assert page.locator("#state").get_attribute("aria-live") == "polite"
    expect(page.locator("#callback")).to_be_hidden()
    expect(page.get_by_role("button", name="Hang up")).to_be_hidden()
    expect(page.get_by_role("button", name="Call", exact=True)).to_be_hidden()
    page.screenshot(path=str(SCREENSHOTS / "web-caller-callback.png"))
    if AXE.exists():
        audit(Caller, "callback arranged")
    assert not audit.found, audit.report()

    from tests.e2e.test_queue_callbacks import entries

    (entry,) = entries(world)
    assert (entry.call_id, entry.kind, entry.callback_number) == (call_id, "callback", "+15550900123")
    # Leaving the page now does not end the call: the place in line waits as a callback.
    page.close()
    time.sleep(0.5)
    assert world.services.views.call(call_id)["state"] == "queued"
    assert not errors, errors
    context.close()
