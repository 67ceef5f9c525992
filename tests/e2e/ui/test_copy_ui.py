"""A whole copy through the browser: the wizard starts it, the task page follows it live to
100 %, the new vApp template and vApp appear in the vCD inventory; a second copy is cancelled
from its task page. Real vcsim (a seeded VM with a real disk), vCD simulator, server, nodes.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from sim.vcsim import seed
from tests.e2e.ui.pages import NARROW, VIEWPORT, fits_width, go, login, shot
from tests.e2e.ui.stack import UiStack
from tests.fixtures.vcsim import Seeder
from tests.waiting import wait_until

pytestmark = pytest.mark.slow
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def seeded(ui_stack: UiStack, tmp_path_factory: pytest.TempPathFactory) -> UiStack:
    """VMs ``web`` (24 MiB disk) and ``big`` (48 MiB of incompressible data) in vcsim."""
    sim = ui_stack.vcsim
    assert sim is not None
    si = seed.connect(sim.host, sim.port, sim.username, sim.password)
    try:
        seeder = Seeder(sim, si, tmp_path_factory.mktemp("seed"))
        seeder.vm("web", [24 * MIB], zero_fraction=0.5)
        seeder.vm("big", [48 * MIB], seed_value=2, zero_fraction=0.0)
    finally:
        seed.disconnect(si)
    ui_stack.api("POST", "/api/v1/clouds/onprem/refresh")

    def listed() -> bool:
        page = ui_stack.api("GET", "/api/v1/clouds/onprem/inventory?kind=vm")
        return {"web", "big"} <= {i["name"] for i in page["items"]}

    wait_until(listed, timeout_s=60, interval_s=0.2, what="seeded VMs in the inventory")
    return ui_stack


def test_copy_through_the_wizard_reaches_100_percent_and_lands_in_vcd(page: Page, seeded: UiStack):
    login(page, seeded, "olga")
    go(page, seeded, "inventory?left=onprem&right=provider", "Inventory")
    page.get_by_role("link", name="Copy web", exact=True).click()
    expect(page.get_by_label("VM, template or vApp")).to_have_value("DC0/vm/web")
    expect(page.get_by_label("Name of the copy")).to_have_value("web")  # suggested from the source
    page.get_by_label("Name of the copy").fill("web-ui")
    page.get_by_label("Deploy a vApp or VM from the copy").check()
    page.get_by_label("Name of the new vApp or VM").fill("web-ui-app")
    page.get_by_text("Transfer options").click()
    # the send lasts ~12 s: three 8 MiB chunks, the rate known from the second on
    page.get_by_label("Bandwidth cap (MB/s)").fill("1")
    shot(page, "copy-wizard")
    page.get_by_role("button", name="Start copy").click()

    heading = page.get_by_role("heading", level=1)
    expect(heading).to_contain_text("onprem:DC0/vm/web → provider:Templates/web-ui")
    state = page.locator(".task-head .badge")
    steps = page.get_by_role("table", name="Steps")
    send = steps.locator("tr[data-row=send]")
    # no reload from here on: the page follows the task over server-sent events
    expect(send.locator("td[data-label=Rate]")).to_contain_text("/s", timeout=60_000)
    expect(send.locator("td[data-label=ETA]")).to_contain_text(re.compile(r"\d+ (s|min)"))
    expect(state).to_have_text("running")
    shot(page, "task-copy-running")
    expect(state).to_have_text("succeeded", timeout=180_000)
    expect(send).to_contain_text("succeeded")
    expect(send.locator(".pct")).to_have_text("100%")
    expect(send).to_contain_text(re.compile(r"MiB of .*MiB"))
    expect(send.locator("td[data-label=Rate]")).to_contain_text(re.compile(r"B/s avg$"))
    for step in ("export", "import", "deploy"):
        expect(steps.locator(f"tr[data-row={step}]")).to_contain_text("succeeded")
    expect(page.locator(".overall .pct")).to_have_text("100%")
    expect(page.get_by_role("button", name="Cancel task")).to_have_count(0)
    shot(page, "task-copy-done")
    page.set_viewport_size(NARROW)
    expect(send).to_contain_text("succeeded")
    assert fits_width(page)
    shot(page, "task-copy-done-narrow")
    page.set_viewport_size(VIEWPORT)

    go(page, seeded, "inventory?left=onprem&right=provider", "Inventory")
    right = page.get_by_role("region", name="Second cloud")
    template = right.locator('[data-kind="vapp_template"]', has_text="web-ui")
    vapp = right.locator('[data-kind="vapp"]', has_text="web-ui-app")
    if not template.count() or not vapp.count():  # the copy's own listing may still be on its way
        right.get_by_role("button", name="Refresh").click()
    expect(template.first).to_be_visible(timeout=30_000)
    expect(vapp.first).to_be_visible(timeout=30_000)
    shot(page, "inventory-after-copy")


def test_a_second_copy_is_cancelled_from_its_task_page(page: Page, seeded: UiStack):
    login(page, seeded, "olga")
    go(page, seeded, "copy?cloud=onprem&ref=DC0/vm/big", "Copy to another cloud")
    expect(page.get_by_label("Name of the copy")).to_have_value("big")
    page.get_by_label("Name of the copy").fill("big-cancelled")
    page.get_by_text("Transfer options").click()
    page.get_by_label("Bandwidth cap (MB/s)").fill("0.5")  # 48 MiB at 0.5 MB/s: ~100 s
    page.get_by_role("button", name="Start copy").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Templates/big-cancelled")
    state = page.locator(".task-head .badge")
    expect(state).to_have_text("running")
    page.get_by_role("button", name="Cancel task").click()
    expect(state).to_have_text(re.compile("cancelling|cancelled"))
    expect(state).to_have_text("cancelled", timeout=60_000)
    expect(page.get_by_role("button", name="Retry")).to_be_visible()
    shot(page, "task-copy-cancelled")
    task = seeded.api("GET", f"/api/v1/tasks/{Path(page.url).name}")
    assert task["state"] == "cancelled"
    assert task["spec"]["destination"]["name"] == "big-cancelled"
