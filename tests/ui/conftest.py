"""The browser tests: Playwright drives Debian's Chromium (`make browser` installs it; the
Playwright wheel cannot download a browser here). Without Chromium they are skipped with a
plain reason, unless TASKBEAT_BROWSER_REQUIRED=1 (CI), which makes the absence a failure."""

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Every browser run takes its screenshots; `make screenshots` keeps them for the README.
SCREENSHOTS = ROOT / (
    "docs/screenshots" if os.environ.get("TASKBEAT_SCREENSHOTS") == "docs" else "var/screenshots"
)
LOCAL_SCHEMES = ("data:", "blob:")


def chromium_or_skip() -> str:
    found = shutil.which("chromium")
    if found:
        return found
    reason = "Chromium is not installed (`make browser` installs it with apt-get)"
    if os.environ.get("TASKBEAT_BROWSER_REQUIRED") == "1":
        pytest.fail(f"{reason}; TASKBEAT_BROWSER_REQUIRED=1 makes that a failure")
    pytest.skip(reason)


# Per test, and set up after the test's server (list `open_page` after `start_server`):
# while Playwright's sync API is open an event loop runs on this thread, so nothing else
# may call asyncio.run then (the PostgreSQL fixtures do).
@pytest.fixture
def browser() -> Iterator[Any]:
    executable = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class Watched:
    """A page, and what it did that a user would not want: console errors, failed page
    scripts, and requests leaving the service."""

    page: Any
    origin: str
    errors: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)

    def console(self, kind: str, text: str) -> None:
        if kind == "error":
            self.errors.append(text)

    def check_clean(self) -> None:
        assert self.errors == [], self.errors
        assert self.foreign == [], self.foreign

    def shoot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


@pytest.fixture
def open_page(browser: Any) -> Iterator[Any]:
    contexts = []

    def open_(origin: str, *, width: int = 1280, height: int = 800) -> Watched:
        context = browser.new_context(viewport={"width": width, "height": height})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        watched = Watched(page, origin)
        page.on("console", lambda message: watched.console(message.type, message.text))
        page.on("pageerror", lambda error: watched.errors.append(f"page error: {error}"))

        def only_the_service(route: Any) -> None:
            url = route.request.url
            if url.startswith((f"{origin}/", *LOCAL_SCHEMES)):
                route.continue_()
            else:  # recorded, and refused: nothing leaves the machine
                watched.foreign.append(url)
                route.abort()

        page.route("**/*", only_the_service)
        return watched

    yield open_
    for context in contexts:
        context.close()
