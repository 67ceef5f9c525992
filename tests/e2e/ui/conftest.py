"""Browser tests of the web UI: Playwright (sync API) driving Debian's Chromium.

* ``ui_stack`` (module): vcsim, the vCD simulator, ``hcc server``, nodes ``n-vsphere`` and
  ``n-vcd`` online, clouds ``onprem`` (vSphere) and ``provider`` (vCD) listed, users admin,
  olga (operator) and vic (viewer) — on a broker vhost of its own, stopped by PID afterwards.
* ``browser`` (module, see its docstring): one headless Chromium (``/usr/bin/chromium``,
  never a downloaded one).
* ``page`` (function): a fresh context at 1280x800; fails the test on any uncaught script
  error in the page and on any request that leaves the server (the UI works offline).

Helpers (log in, open a page, screenshots) are in :mod:`tests.e2e.ui.pages`.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.e2e.conftest import call_failed
from tests.e2e.ui.pages import CHROMIUM, CHROMIUM_ARGS, VIEWPORT
from tests.e2e.ui.stack import UiStack
from tests.fixtures.rabbit import VhostFactory


@pytest.fixture(scope="module")
def ui_stack(
    rabbit_vhosts: VhostFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[UiStack]:
    vhost, url = rabbit_vhosts.create("ui")
    stack = UiStack(tmp_path_factory.mktemp("ui"), url)
    try:
        stack.start()
        stack.wait_inventories("onprem", "provider")
        yield stack
    except BaseException:
        print(stack.logs())
        raise
    finally:
        stack.close()
        rabbit_vhosts.delete(vhost)


@pytest.fixture(autouse=True)
def stack_logs_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    """A browser test that fails prints the stack's logs: what the server and nodes did is
    the first thing to read, and the stack's temp dir is gone once the run ends."""
    yield
    if call_failed(request) and "ui_stack" in request.fixturenames:
        print(request.getfixturevalue("ui_stack").logs(lines=200))


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Module-scoped on purpose: Playwright's sync API keeps an event loop running in the main
    thread while it is open, and every asyncio test after it would fail ("Runner.run() cannot
    be called from a running event loop"). Closing it at the end of each UI module keeps the
    rest of the suite (which runs later) working."""
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (make system-deps)")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=VIEWPORT)
    errors: list[str] = []
    elsewhere: list[str] = []
    tab = context.new_page()
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.on("request", lambda r: None if local(r.url) else elsewhere.append(r.url))
    try:
        yield tab
    finally:
        context.close()
    assert not errors, f"script errors in the page: {errors}"
    assert not elsewhere, f"the UI fetched something from elsewhere: {elsewhere}"


def local(url: str) -> bool:
    """Everything the UI loads comes from the server itself (no CDN, font or tracker)."""
    parts = urlsplit(url)
    return parts.scheme in ("data", "blob", "about") or parts.hostname == "127.0.0.1"
