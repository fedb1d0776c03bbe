"""Debian's Chromium driven by Playwright (nothing downloaded), and screenshots to look at."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parent.parent.parent / "test-artifacts" / "screenshots"
SIZES = {"phone": (390, 844), "desktop": (1280, 900)}


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium; the test is skipped where Debian's chromium is not installed."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (make browser)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )  # fmt: skip
        try:
            yield launched
        finally:
            launched.close()


@contextmanager
def watched_page(browser: Browser, width: int = 1280, height: int = 900) -> Iterator[Page]:
    """A page whose console errors (a CSP violation, a script error) fail the test."""
    context = browser.new_context(locale="nl-NL", viewport={"width": width, "height": height})
    opened = context.new_page()
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and message.location.get("url") != opened.url:
            problems.append(f"{message.text} ({message.location.get('url')})")

    opened.on("console", on_console)
    opened.on("pageerror", lambda e: problems.append(str(e)))
    try:
        yield opened
    finally:
        context.close()
    assert problems == [], f"the browser reported: {problems}"


def shoot(page: Page, name: str, size: str) -> Path:
    """Keep the page as it looks now, at its current size, in test-artifacts/screenshots/."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}-{size}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
