"""Helpers for the UI tests: Chromium flags, logging in, opening a page, screenshots."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Page, ViewportSize, expect

from tests.e2e.ui.stack import USERS, UiStack

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "ui"
"""Screenshots of every page land here (git-ignored)."""
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
NARROW: ViewportSize = {"width": 390, "height": 800}


def shot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def login(page: Page, stack: UiStack, user: str = "admin") -> None:
    page.goto(stack.url + "/")
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(USERS[user])
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()


def go(page: Page, stack: UiStack, route: str, heading: str | re.Pattern[str]) -> None:
    """Open a hash route and wait for its page heading."""
    page.goto(f"{stack.url}/#/{route}")
    expect(page.get_by_role("heading", level=1, name=heading)).to_be_visible()


def fits_width(page: Page) -> bool:
    """Nothing sticks out sideways (no horizontal scrolling of the whole page)."""
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))
