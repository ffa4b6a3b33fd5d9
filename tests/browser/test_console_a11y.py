"""The console for everyone: axe-core (every rule it runs by default, best practices included)
in both colour schemes at every step of a whole warm transfer, and a keyboard-only warm transfer
that checks where focus is after every action."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
CALLER = "+15557654321"
SCHEMES = ("light", "dark")

pytestmark = pytest.mark.skipif(not AXE.exists(), reason="axe-core is not installed (npm ci)")


class Audit:
    """Runs axe on a page in each colour scheme and keeps every violation under the state's name."""

    def __init__(self):
        self.found: dict[str, list[dict]] = {}
        self.runs = 0

    def __call__(self, console_page, state: str) -> None:
        page = console_page.page
        if not page.evaluate("typeof window.axe === 'object'"):
            page.add_script_tag(content=AXE.read_text())
        for scheme in SCHEMES:
            page.emulate_media(color_scheme=scheme)
            violations = page.evaluate(
                "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
            )
            self.runs += 1
            for v in violations:
                self.found.setdefault(f"{state} ({console_page.label}, {scheme})", []).append(
                    {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:3]}
                )
        page.emulate_media(color_scheme="light")

    def report(self) -> str:
        return "\n".join(
            f"{where}: {v['id']} ({v['impact']}) {v['nodes']}" for where, vs in self.found.items() for v in vs
        )


def test_axe_clean_in_both_schemes_through_a_whole_warm_transfer(world, console):
    audit = Audit()
    alice = world.add_agent("alice")
    bob = world.add_agent("bob", status="offline")  # so the call rings alice
    signin = console.page("signin", bypass_csp=True)
    audit(signin, "sign-in")
    a = console.open(alice, bypass_csp=True)
    b = console.open(bob, bypass_csp=True)
    audit(a, "available")

    call = world.call(CALLER)
    expect(a.offer()).to_be_visible()
    audit(a, "offer")
    a.offer().get_by_role("button", name="Accept").click()
    call.wait_current("bridged", timeout=8)
    expect(a.page.locator("#call-state")).to_have_text("Connected")
    call_id = world.db_call(call.sid)["id"]
    for n in range(1, 25):  # enough lines for the transcript and the activity list to scroll
        world.services.records.transcript_line(call_id, f"l{n}", "caller", f"I was charged twice, line {n}.")
    a.page.get_by_label("Add a note").fill("Double charge confirmed on order 5521.")
    a.page.get_by_role("button", name="Add note").click()
    expect(a.page.locator("#transcript")).to_contain_text("Double charge confirmed")
    audit(a, "in call")

    assert bob.post("/api/agents/me/status", {"status": "available"}).status_code == 200
    expect(a.page.locator("#transfer-agent")).to_have_value("bob")
    a.page.get_by_label("A phone number").check()
    a.page.get_by_label("Phone number", exact=True).fill("555-1234")
    a.page.get_by_role("button", name="Start transfer").click()
    expect(a.page.locator("#transfer-error")).to_contain_text("international format")
    audit(a, "transfer form with an error")
    a.page.get_by_label("An agent").check()
    a.page.get_by_label("Notes for the next agent").fill("Refund approved; needs a supervisor.")
    a.page.get_by_role("button", name="Start transfer").click()
    expect(a.page.locator("#transfer-state")).to_have_text("Ringing")
    audit(a, "transfer as A, B ringing")

    offer = b.offer("Transfer from Alice")
    expect(offer.locator(".preview-summary")).to_contain_text("Reason")
    offer.locator("summary", has_text="Transcript so far").click()
    expect(offer.locator(".preview-transcript")).to_contain_text("Double charge confirmed")
    audit(b, "transfer offer as B")

    offer.get_by_role("button", name="Accept").click()
    expect(a.page.get_by_role("button", name="Connect caller")).to_be_enabled()
    expect(b.page.locator("#transfer-hint")).to_contain_text("will connect the caller")
    audit(a, "consult")
    audit(b, "consult")

    a.page.get_by_role("button", name="Connect caller").click()
    expect(a.page.locator("#transfer-state")).to_have_text("Caller connected to both")
    expect(b.page.locator("#transfer-state")).to_have_text("Caller connected to both")
    audit(a, "conferenced")
    audit(b, "conferenced")

    a.page.get_by_role("button", name="Leave").click()
    expect(a.page.locator("#outcome-text")).to_have_text(f"Transfer complete: {CALLER} is now with Bob.")
    expect(b.page.locator("#transfer-hint")).to_have_text("The call is yours now.", timeout=20_000)
    audit(a, "after leave")
    audit(b, "after leave")
    print(f"\naxe: {audit.runs} runs, {sum(len(v) for v in audit.found.values())} violations\n{audit.report()}")
    assert not audit.found, audit.report()


# ---------------------------------------------------------------- keyboard only

DESCRIBE_FOCUS = """() => {
  const e = document.activeElement;
  if (!e || e === document.body) return "body";
  return e.id ? "#" + e.id : `${e.tagName.toLowerCase()} "${(e.textContent || "").trim().slice(0, 40)}"`;
}"""

# Every text the page puts in its live regions, in order (what a screen reader would say).
RECORD_ANNOUNCEMENTS = """() => {
  window.__said = [];
  for (const id of ["announce-polite", "announce-urgent"]) {
    new MutationObserver(() => {
      const text = document.getElementById(id).textContent;
      if (text) window.__said.push(text);
    }).observe(document.getElementById(id), {childList: true, characterData: true, subtree: true});
  }
}"""

RING = """() => {
  const e = document.activeElement, style = getComputedStyle(e);
  let p = e.parentElement, bg = "rgba(0, 0, 0, 0)";
  for (; p; p = p.parentElement) {
    bg = getComputedStyle(p).backgroundColor;
    if (!bg.endsWith(", 0)") && bg !== "transparent") break;
  }
  return {ring: style.outlineColor, width: parseFloat(style.outlineWidth), style: style.outlineStyle, bg};
}"""


def _rgb(css: str) -> tuple[float, ...]:
    return tuple(float(x) for x in css[css.index("(") + 1 : css.index(")")].split(",")[:3])


def _contrast(a: str, b: str) -> float:
    def lum(rgb):
        c = [v / 255 for v in rgb]
        c = [v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4 for v in c]
        return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]

    hi, lo = sorted((lum(_rgb(a)), lum(_rgb(b))), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def _focus(page) -> str:
    return page.evaluate(DESCRIBE_FOCUS)


def _tab_to(page, selector: str, *, back: bool = False, limit: int = 40) -> int:
    """Press Tab (Shift+Tab) until ``selector`` has focus; focus must be on something at every press."""
    key = "Shift+Tab" if back else "Tab"
    for presses in range(1, limit + 1):
        page.keyboard.press(key)
        where = _focus(page)
        assert where != "body", f"focus fell to <body> after {presses} × {key} on the way to {selector}"
        if page.evaluate("s => document.activeElement === document.querySelector(s)", selector):
            return presses
    raise AssertionError(f"{selector} not reached with {limit} × {key}; focus is on {_focus(page)}")


def _ring_is_visible(page, what: str) -> None:
    """The focus ring of the focused control: solid, >= 2px, >= 3:1 against what is behind it, both schemes."""
    for scheme in SCHEMES:
        page.emulate_media(color_scheme=scheme)
        ring = page.evaluate(RING)
        ratio = _contrast(ring["ring"], ring["bg"])
        assert ring["style"] == "solid" and ring["width"] >= 2, (what, scheme, ring)
        assert ratio >= 3, f"{what} ({scheme}): focus ring {ring['ring']} on {ring['bg']} is {ratio:.2f}:1"
    page.emulate_media(color_scheme="light")


def _sign_in_by_keyboard(console, agent):
    c = console.page(agent.id)
    page = c.page
    expect(page.locator("#credential")).to_be_focused()
    page.keyboard.type(agent.credential)
    page.keyboard.press("Enter")
    expect(page.locator("#stream-status")).to_have_attribute("data-state", "live")
    expect(page.locator("#main")).to_be_focused()
    page.evaluate(RECORD_ANNOUNCEMENTS)
    return c


def _available_by_keyboard(world, c, agent_id):
    page = c.page
    _tab_to(page, "#presence [data-status=available]")
    page.keyboard.press("Enter")
    expect(page.locator("#presence-text")).to_have_text("You are available.")
    expect(page.locator("#presence [data-status=available]")).to_be_focused()
    expect(page.locator("#presence [data-status=available]")).to_have_attribute("aria-pressed", "true")
    # Arrow keys are not choices: nothing changes on the server, focus stays.
    for key in ("ArrowRight", "ArrowDown", "ArrowLeft"):
        page.keyboard.press(key)
    assert world.services.agents.get(agent_id)["status"] == "available"
    expect(page.locator("#presence [data-status=available]")).to_be_focused()


def test_keyboard_only_warm_transfer_never_loses_focus(world, console):
    alice = world.add_agent("alice", status="offline")
    bob = world.add_agent("bob", status="offline")
    a = _sign_in_by_keyboard(console, alice)
    b = _sign_in_by_keyboard(console, bob)
    pa, pb = a.page, b.page

    _available_by_keyboard(world, a, "alice")
    _ring_is_visible(pa, "Available on the status card")

    # An offer arrives: focus is not taken from where A is; Alt+Shift+A reaches Accept at once.
    call = world.call(CALLER)
    expect(a.offer()).to_be_visible()
    expect(pa.locator("#announce-urgent")).to_have_text(f"Incoming call from {CALLER}.")
    expect(pa.locator("#presence [data-status=available]")).to_be_focused()
    pa.keyboard.press("Alt+Shift+A")
    expect(a.offer().get_by_role("button", name="Accept")).to_be_focused()
    _ring_is_visible(pa, "Accept on the offer card")
    pa.keyboard.press("Enter")
    expect(pa.locator("#call-heading")).to_be_focused()
    call.wait_current("bridged", timeout=8)
    expect(pa.locator("#call-state")).to_have_text("Connected")

    # Add note: focus comes back to the note field for the next one.
    _tab_to(pa, "#note-text")
    pa.keyboard.type("Double charge confirmed on order 5521.")
    _tab_to(pa, "#note-add")
    pa.keyboard.press("Enter")
    expect(pa.locator("#transcript")).to_contain_text("Double charge confirmed on order 5521.")
    expect(pa.locator("#note-text")).to_be_focused()

    # Start transfer: focus goes to the transfer's progress.
    _available_by_keyboard(world, b, "bob")
    expect(pa.locator("#transfer-agent")).to_have_value("bob")
    _tab_to(pa, "#transfer-start", back=True)
    pa.keyboard.press("Enter")
    expect(pa.locator("#transfer-progress-heading")).to_be_focused()
    expect(pa.locator("#transfer-progress-heading")).to_have_text("Transfer to Bob (warm)")

    # B reaches the offer with the "Go to incoming call" link, a few Shift+Tabs away.
    expect(pb.locator("#announce-urgent")).to_have_text(f"Incoming transfer from Alice, caller {CALLER}.")
    _tab_to(pb, "#offer-jump", back=True)
    pb.keyboard.press("Enter")
    expect(b.offer().get_by_role("button", name="Accept")).to_be_focused()
    pb.keyboard.press("Enter")
    expect(pb.locator("#call-heading")).to_be_focused()

    # A hears that Bob is there and it is time to connect; Connect caller → focus on Leave.
    expect(pa.locator("#announce-polite")).to_have_text("Bob joined — press Connect caller.")
    _tab_to(pa, "#transfer-connect")
    _ring_is_visible(pa, "Connect caller on the call card")
    pa.keyboard.press("Enter")
    expect(pa.locator("#transfer-leave")).to_be_focused()
    expect(pa.locator("#transfer-state")).to_have_text("Caller connected to both")
    expect(pb.locator("#announce-polite")).to_have_text("The caller has joined you and Alice.")

    # Leave → the outcome's Dismiss; Dismiss → where the next call will appear.
    pa.keyboard.press("Enter")
    expect(pa.locator("#outcome-dismiss")).to_be_focused()
    expect(pa.locator("#outcome-text")).to_have_text(f"Transfer complete: {CALLER} is now with Bob.")
    pa.keyboard.press("Enter")
    expect(pa.locator("#offers-heading")).to_be_focused()

    # B owns the call now; Hang up → Dismiss.
    expect(pb.locator("#transfer-hint")).to_have_text("The call is yours now.", timeout=20_000)
    _tab_to(pb, "#hangup")
    pb.keyboard.press("Enter")
    expect(pb.locator("#outcome-dismiss")).to_be_focused()
    expect(pb.locator("#outcome-text")).to_contain_text("has ended")

    # Each change was said once: no repeats of the same news, and the outcome not twice.
    said_a, said_b = pa.evaluate("window.__said"), pb.evaluate("window.__said")
    for text in ("Bob joined — press Connect caller.", f"Transfer complete: {CALLER} is now with Bob."):
        assert said_a.count(text) == 1, (text, said_a)
    assert said_b.count("The caller has joined you and Alice.") == 1, said_b
    assert len(said_a) == len(set(said_a)), said_a
    assert len(said_b) == len(set(said_b)), said_b
