"""Real-browser tests of the agent console: headless Chromium (Debian's) driven by Playwright.

They skip, with the reason, when Playwright, /usr/bin/chromium or the built bundle
(``npm ci && npm run build``) is missing. Screenshots go to tests/artifacts/screenshots/.
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from gateway.web.console import BUNDLE_ENTRY, STATIC_DIR, init_console

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # A fake microphone (a beep) and no permission prompt: the level meter and mute have something to show.
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]
TIMEOUT_MS = 10_000
RING_TIMEOUT_S = 15.0

try:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
except ImportError:  # pragma: no cover - depends on the environment
    sync_playwright = expect = None


def _skip_reason() -> str | None:
    if sync_playwright is None:
        return "Playwright is not installed (pip install -r requirements.txt)"
    if not os.path.exists(CHROMIUM):
        return f"no Chromium at {CHROMIUM} (apt-get install -y chromium)"
    if not (STATIC_DIR / BUNDLE_ENTRY).is_file():
        return f"the console bundle is not built: gateway/static/{BUNDLE_ENTRY} (npm ci && npm run build)"
    return None


def pytest_collection_modifyitems(config, items):
    reason = _skip_reason()
    if reason:
        marker = pytest.mark.skip(reason=reason)
        for item in items:
            if "tests/browser" in str(item.fspath).replace(os.sep, "/"):
                item.add_marker(marker)


def _in_thread(fn):
    """Run ``fn`` on a fresh thread: Playwright's sync API keeps an asyncio loop running on
    this one, and building a World calls asyncio.run (LiveKit provisioning)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(fn).result()


def pytest_configure(config):
    config.addinivalue_line("markers", "world(**settings): Settings overrides for this test's World")


@pytest.fixture
def world(database_url, request):
    """tests/conftest.py's World, built and closed off the Playwright thread. People are slower
    than API clients (and CI machines slower still), so offers ring for RING_TIMEOUT_S here;
    ``@pytest.mark.world(ring_timeout_s=…)`` overrides that or any other setting."""
    from tests.conftest import World

    marker = request.node.get_closest_marker("world")
    overrides = {"ring_timeout_s": RING_TIMEOUT_S} | (marker.kwargs if marker else {})
    w = _in_thread(lambda: World(database_url, **overrides))
    yield w
    _in_thread(w.close)


@pytest.fixture(scope="package")
def browser():
    """One Chromium for the package, closed after its last test: Playwright's sync API runs an
    asyncio loop on this thread, which must be gone before other tests call asyncio.run()."""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield browser
        browser.close()


class ConsolePage:
    """One agent's console in its own browser context (own cookies, own microphone)."""

    def __init__(self, browser, world, label: str, **context_options):
        self.world, self.label = world, label
        self.agent = None  # the tests' AgentClient (REST with Bearer) once signed in
        self.context = browser.new_context(
            permissions=["microphone"], base_url=world.url, viewport={"width": 1280, "height": 900}, **context_options
        )
        self.context.set_default_timeout(TIMEOUT_MS)
        self.page = self.context.new_page()
        self.console_errors: list[str] = []
        self.expected_errors = r"Failed to load resource"  # HTTP errors the page handles (401, 409…)
        self.page.on("console", lambda m: self.console_errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.console_errors.append(str(e)))
        self.stream_requests: list[dict] = []
        self.page.on("request", self._on_request)

    def _on_request(self, request) -> None:
        if "/api/events" in request.url:
            self.stream_requests.append({"url": request.url, "headers": request.all_headers()})

    def open(self) -> ConsolePage:
        self.page.goto("/console")
        expect(self.page.locator("body[data-ready=true]")).to_have_count(1)
        return self

    def sign_in(self, credential: str) -> ConsolePage:
        self.page.get_by_label("Agent credential").fill(credential)
        self.page.get_by_role("button", name="Sign in").click()
        expect(self.page.locator("#console-view")).to_be_visible()
        expect(self.page.locator("#stream-status")).to_have_attribute("data-state", "live")
        return self

    def offer(self, text: str | None = None):
        offers = self.page.locator("#offer-list > li")
        return offers.filter(has_text=text) if text else offers.first

    def shot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def console(world, browser):
    """Open console pages on the world: ``console.open(agent_client)`` signs that agent in.
    Keyword arguments go to the browser context (``bypass_csp=True`` for axe, ``color_scheme``…)."""
    init_console(world.app)  # idempotent: harmless once create_app wires it
    opened: list[ConsolePage] = []

    class Factory:
        def page(self, label: str = "page", **context_options) -> ConsolePage:
            page = ConsolePage(browser, world, label, **context_options)
            opened.append(page)
            return page.open()

        def open(self, agent, **context_options) -> ConsolePage:
            page = self.page(agent.id, **context_options)
            page.agent = agent
            return page.sign_in(agent.credential)

    yield Factory()
    for page in opened:
        page.close()
    world.app.extensions["console"].shutdown()
    for page in opened:
        errors = [e for e in page.console_errors if not re.search(page.expected_errors, e)]
        assert not errors, f"JavaScript errors on {page.label}'s page: {errors}"
