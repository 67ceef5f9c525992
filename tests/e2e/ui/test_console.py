"""The web console in a real browser against a real server, two nodes, vcsim and the vCD
simulator (one stack for the module: these tests only read, or add and remove what they own).
"""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.e2e.ui.pages import NARROW, fits_width, go, login, shot
from tests.e2e.ui.stack import USERS, UiStack

VM = "DC0/vm/DC0_H0_VM0"


def test_a_wrong_password_shows_an_error_and_the_keyboard_alone_logs_in(
    page: Page, ui_stack: UiStack
):
    page.goto(ui_stack.url + "/")
    user, password = page.get_by_label("User name"), page.get_by_label("Password")
    expect(user).to_be_focused()
    user.fill("admin")
    password.fill("not-the-password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong user name or password.")
    expect(password).to_have_attribute("aria-invalid", "true")
    shot(page, "login-wrong-password")
    expect(password).to_be_focused()  # the wrong password is selected: typing replaces it
    page.keyboard.type(USERS["admin"])
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    expect(page.get_by_role("banner")).to_contain_text("admin")


def test_dashboard_shows_both_clouds_the_nodes_and_tasks_live(page: Page, ui_stack: UiStack):
    login(page, ui_stack)
    clouds = page.get_by_role("table", name="Clouds")
    onprem = clouds.locator("tr[data-row=onprem]")
    provider = clouds.locator("tr[data-row=provider]")
    assert ui_stack.vcsim is not None
    for text in ("vSphere", ui_stack.vcsim.sdk_url, "n-vsphere", "reachable", "listed"):
        expect(onprem).to_contain_text(text)
    for text in ("Cloud Director", "n-vcd", "reachable", "listed"):
        expect(provider).to_contain_text(text)
    nodes = page.get_by_role("table", name="Nodes")
    for node in ("n-vsphere", "n-vcd"):
        row = nodes.locator(f"tr[data-row={node}]")
        expect(row).to_contain_text("online")
        expect(row).to_contain_text("0.1.0")
        expect(row).to_contain_text(re.compile(r"GiB of .*GiB"))
    refreshes = page.get_by_role("cell", name="list onprem", exact=True)
    expect(refreshes.first).to_be_visible()
    before = refreshes.count()
    ui_stack.api("POST", "/api/v1/clouds/onprem/refresh")  # announced over SSE: no reload
    expect(refreshes).to_have_count(before + 1, timeout=15_000)
    shot(page, "dashboard")
    page.set_viewport_size(NARROW)
    expect(onprem).to_contain_text("n-vsphere")
    assert fits_width(page)
    shot(page, "dashboard-narrow")


def test_relative_times_keep_ticking_without_events(page: Page, ui_stack: UiStack):
    page.clock.install()
    login(page, ui_stack, "vic")
    done = ui_stack.api("GET", "/api/v1/tasks?state=succeeded&limit=1")["items"][0]
    go(page, ui_stack, f"tasks/{done['id']}", re.compile("Inventory refresh"))
    started = page.locator(".task-head time")
    expect(started).to_have_text(re.compile(r"now|ago"))
    page.clock.fast_forward("05:00")  # a finished task gets no events: the page's timer redraws
    expect(started).to_have_text(re.compile(r"^([5-9]|\d\d) min ago$"))


def test_both_inventories_side_by_side_with_filters(page: Page, ui_stack: UiStack):
    login(page, ui_stack)
    go(page, ui_stack, "inventory?left=onprem&right=provider", "Inventory")
    left = page.get_by_role("region", name="First cloud")
    right = page.get_by_role("region", name="Second cloud")
    vm = left.locator(f'[data-path="{VM}"]')
    expect(vm).to_contain_text("powered on")
    expect(vm).to_contain_text("1 vCPU")
    expect(left.locator('[data-kind="datacenter"]').first).to_contain_text("DC0")
    expect(right.locator('[data-kind="org"]')).to_contain_text("acme")
    expect(right.locator('[data-kind="vdc"]')).to_contain_text("acme-vdc")
    expect(right.locator('[data-kind="catalog"]')).to_contain_text("Templates")
    vm_folder = left.locator('summary:has([data-path="DC0/vm"])')
    vm_folder.focus()  # the tree is native <details>: Enter folds and unfolds
    page.keyboard.press("Enter")
    expect(vm).to_be_hidden()
    page.keyboard.press("Enter")
    expect(vm).to_be_visible()
    lbox, rbox = left.bounding_box(), right.bounding_box()
    assert lbox is not None
    assert rbox is not None
    assert lbox["x"] + lbox["width"] <= rbox["x"]  # beside each other
    assert lbox["y"] == rbox["y"]
    shot(page, "inventory")

    left.get_by_label("Filter by name").fill("H0_VM")
    expect(left.locator(".item")).to_have_count(2)
    expect(left.locator(".item .path")).to_have_text([VM, "DC0/vm/DC0_H0_VM1"])
    right.get_by_label("Show").select_option(label="Catalogs")
    expect(right.locator(".item")).to_have_count(1)
    expect(right.locator(".item .path")).to_have_text(re.compile("Templates"))
    assert "lname=H0_VM" in page.url  # the filters are part of the address
    shot(page, "inventory-filtered")

    page.set_viewport_size(NARROW)
    lbox, rbox = left.bounding_box(), right.bounding_box()
    assert lbox is not None
    assert rbox is not None
    assert rbox["y"] >= lbox["y"] + lbox["height"]  # one under the other
    assert fits_width(page)
    shot(page, "inventory-narrow")


def test_a_viewer_sees_no_copy_button_and_changes_nothing(page: Page, ui_stack: UiStack):
    login(page, ui_stack, "vic")
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link")).to_have_text(["Dashboard", "Inventory", "Tasks", "Settings"])
    go(page, ui_stack, "inventory?left=onprem", "Inventory")
    expect(page.locator(f'[data-path="{VM}"]').first).to_be_visible()
    expect(page.get_by_role("link", name=re.compile("^Copy"))).to_have_count(0)
    expect(page.get_by_role("button", name="Refresh")).to_have_count(0)
    shot(page, "inventory-viewer")
    go(page, ui_stack, "copy", "Copy")
    expect(page.get_by_text("Starting copies needs the operator role.")).to_be_visible()
    go(page, ui_stack, "settings", "Settings")
    expect(page.get_by_text("Only an administrator can change these settings.")).to_be_visible()
    expect(page.locator("tr[data-row=onprem]")).to_contain_text("reachable")
    expect(page.get_by_role("button")).to_have_text(["Log out"])  # nothing else to press
    tasks = ui_stack.api("GET", "/api/v1/tasks?limit=1")["items"]
    go(page, ui_stack, f"tasks/{tasks[0]['id']}", re.compile("Inventory refresh"))
    expect(page.get_by_role("button")).to_have_text(["Log out"])


def test_copy_wizard_shows_the_apis_validation_errors_beside_the_fields(
    page: Page, ui_stack: UiStack
):
    login(page, ui_stack, "olga")
    go(page, ui_stack, "inventory?left=onprem&right=provider", "Inventory")
    page.get_by_role("link", name="Copy DC0_H0_VM0").click()
    expect(page.get_by_role("heading", name="Copy to another cloud")).to_be_visible()
    source, name = page.get_by_label("VM, template or vApp"), page.get_by_label("Name of the copy")
    catalog, streams = page.get_by_label("Catalog"), page.get_by_label("Parallel streams")
    expect(source).to_have_value(VM)
    expect(name).to_have_value("DC0_H0_VM0")
    expect(page.get_by_label("To cloud")).to_have_value("provider")
    expect(catalog).to_have_value("Templates")  # the only catalog there

    name.fill("")
    catalog.fill("")
    page.get_by_text("Transfer options").click()
    streams.fill("0")
    page.get_by_role("button", name="Start copy").click()
    summary = page.locator("form .alert")
    expect(summary).to_contain_text("The copy cannot start:")
    expect(summary).to_contain_text("Name of the copy: Required.")  # API: "String should have
    expect(summary).to_contain_text("Parallel streams: Must be at least 1.")  # at least 1 ..."
    expect(name).to_have_attribute("aria-invalid", "true")
    expect(name).to_have_accessible_description(re.compile("Required"))
    expect(streams).to_have_accessible_description(re.compile("Must be at least 1"))
    expect(summary).to_be_focused()
    shot(page, "copy-wizard-errors")

    name.fill("ui-copy")
    streams.fill("4")
    page.get_by_role("button", name="Start copy").click()  # now the plan's own checks
    expect(catalog).to_have_accessible_description(re.compile("A vCD destination needs a catalog"))
    expect(name).not_to_have_attribute("aria-invalid", "true")
    catalog.fill("Nope")
    source.fill("DC0/vm/no-such-vm")
    page.get_by_role("button", name="Start copy").click()
    expect(source).to_have_accessible_description(re.compile("not in the inventory of 'onprem'"))
    source.fill(VM)
    page.get_by_role("button", name="Start copy").click()
    expect(catalog).to_have_accessible_description(re.compile("No catalog 'Nope' in 'provider'"))
    assert not [t for t in ui_stack.api("GET", "/api/v1/tasks")["items"] if t["kind"] == "copy"]


def test_settings_add_a_cloud_test_it_remove_it_and_a_node_token_shown_once(
    page: Page, ui_stack: UiStack
):
    assert ui_stack.vcsim is not None
    login(page, ui_stack)
    go(page, ui_stack, "settings", "Settings")
    page.get_by_role("button", name="Test connection to onprem").click()
    expect(page.locator("tr[data-row=onprem]")).to_contain_text(
        re.compile(r"connected\s*20 objects listed"), timeout=30_000
    )

    form = page.get_by_role("form", name="Add a cloud")
    form.get_by_label("Cloud id").fill("Bad Id")
    form.get_by_role("button", name="Add cloud").click()
    expect(form.locator(".alert")).to_contain_text("The cloud was not saved:")
    expect(form.get_by_label("Cloud id")).to_have_accessible_description(
        re.compile("Not in the expected form: Lower-case letters, digits and -")
    )
    expect(form.get_by_label("Endpoint")).to_have_accessible_description(re.compile("Required"))
    expect(form.get_by_label("Served by node")).to_have_accessible_description(
        re.compile("Required")
    )
    shot(page, "settings-add-cloud-errors")
    form.get_by_label("Cloud id").fill("wrongpass")
    form.get_by_label("Endpoint").fill(ui_stack.vcsim.sdk_url)
    form.get_by_label("User name").fill(ui_stack.vcsim.username)
    form.get_by_label("Password").fill("not-the-password")
    form.get_by_label("Served by node").select_option("n-vsphere")
    form.get_by_label("Skip TLS verification (test clouds only)").check()
    form.get_by_role("button", name="Add cloud").click()
    row = page.locator("tr[data-row=wrongpass]")
    expect(row).to_contain_text("n-vsphere")
    page.get_by_role("button", name="Test connection to wrongpass").click()
    expect(row).to_contain_text(re.compile("failed.*login", re.I), timeout=30_000)
    shot(page, "settings-test-connection")

    page.get_by_role("button", name="Edit wrongpass").click()
    edit = page.get_by_role("form", name="Edit cloud wrongpass")
    expect(edit.get_by_label("Cloud id")).to_be_disabled()
    expect(edit.get_by_label("Password")).to_have_attribute("placeholder", "unchanged")
    edit.get_by_label("User name").fill("someone-else")
    edit.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status").filter(has_text="Saved")).to_have_text("Saved wrongpass.")
    expect(row).to_contain_text("as someone-else")
    saved = ui_stack.api("GET", "/api/v1/clouds/wrongpass")
    assert saved["username"] == "someone-else"

    page.get_by_role("button", name="Remove wrongpass").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Remove cloud wrongpass?")
    dialog.get_by_role("button", name="Remove").click()
    expect(row).to_have_count(0)
    assert "wrongpass" not in {c["id"] for c in ui_stack.api("GET", "/api/v1/clouds")["items"]}

    page.get_by_label("Node id").fill("n-extra")
    page.get_by_role("button", name="Add node").click()
    token = page.get_by_label("Enrollment token")
    expect(token).to_have_value(re.compile(r"^\S{20,}$"))
    expect(page.get_by_label("Command on the node's machine")).to_have_value(
        re.compile(rf"--id n-extra --server {re.escape(ui_stack.url)} --enroll-token \S+")
    )
    expect(page.locator("tr[data-row=n-extra]")).to_contain_text("pending")
    shot(page, "settings")
    page.reload()
    expect(page.locator("tr[data-row=n-extra]")).to_contain_text("pending")
    expect(page.get_by_label("Enrollment token")).to_have_count(0)  # shown once
    page.get_by_role("button", name="Remove node n-extra").click()
    page.get_by_role("dialog").get_by_role("button", name="Remove").click()
    expect(page.locator("tr[data-row=n-extra]")).to_have_count(0)


def test_an_admin_adds_a_user_who_then_logs_in_with_that_role(page: Page, ui_stack: UiStack):
    login(page, ui_stack)
    go(page, ui_stack, "settings", "Settings")
    expect(page.locator("tr[data-row=vic]")).to_contain_text("viewer")
    form = page.get_by_role("form", name="Add a user")
    form.get_by_label("User name").fill("newbie")
    form.get_by_label("Password").fill("short")
    form.get_by_role("button", name="Add user").click()
    expect(form.locator(".alert")).to_contain_text("Password: At least 8 characters.")
    expect(form.get_by_label("Password")).to_have_attribute("aria-invalid", "true")
    form.get_by_label("Password").fill("long-enough-password")
    form.get_by_label("Role").select_option("operator")
    form.get_by_role("button", name="Add user").click()
    expect(page.locator("tr[data-row=newbie]")).to_contain_text("operator")
    shot(page, "settings-users")
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    page.get_by_label("User name").fill("newbie")
    page.get_by_label("Password").fill("long-enough-password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("banner")).to_contain_text("newbie operator")
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link")).to_have_text(
        ["Dashboard", "Inventory", "Copy", "Tasks", "Settings"]
    )


def test_task_list_filters_and_task_detail(page: Page, ui_stack: UiStack):
    login(page, ui_stack)
    go(page, ui_stack, "tasks", "Tasks")
    expect(page.get_by_role("cell", name="list provider", exact=True).first).to_be_visible()
    page.get_by_label("Kind").select_option(label="Copies")
    expect(page.get_by_text("No task matches these filters.")).to_be_visible()
    assert "kind=copy" in page.url
    page.get_by_label("Kind").select_option(label="Inventory refreshes")
    page.get_by_label("State").select_option(label="Succeeded")
    states = page.locator("tbody td[data-label=State]")
    expect(states.first).to_have_text("succeeded")
    expect(states.filter(has_not_text="succeeded")).to_have_count(0)
    assert "state=succeeded" in page.url
    shot(page, "tasks")
    page.get_by_role("link", name="Inventory refresh").first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Inventory refresh: list")
    steps = page.get_by_role("table", name="Steps")
    expect(steps).to_contain_text("List the cloud's inventory")
    expect(steps).to_contain_text("succeeded")
    expect(steps).to_contain_text("objects listed")
    shot(page, "task")


def test_a_failed_task_says_why_in_plain_words_and_can_be_retried(page: Page, ui_stack: UiStack):
    assert ui_stack.vcsim is not None
    ui_stack.api("POST", "/api/v1/clouds", {
        "id": "badcreds", "kind": "vsphere", "endpoint": ui_stack.vcsim.sdk_url,
        "username": "nobody", "password": "wrong", "node_id": "n-vsphere",
        "insecure": True})  # fmt: skip
    try:
        task = ui_stack.api("POST", "/api/v1/clouds/badcreds/refresh")
        assert ui_stack.wait_task(task["id"], timeout_s=60)["state"] == "failed"
        login(page, ui_stack, "olga")
        go(page, ui_stack, f"tasks/{task['id']}", re.compile("Inventory refresh: list badcreds"))
        state = page.locator(".task-head .badge")
        expect(state).to_have_text("failed")
        note = page.locator("tr[data-row=refresh] td[data-label=Notes]")
        expect(note).to_contain_text(re.compile("login", re.I))  # the node's own words ...
        expect(note).to_contain_text("The cloud refused the credentials. Fix them under Settings")
        shot(page, "task-failed")
        page.get_by_role("button", name="Retry").click()
        row = page.locator("tr[data-row=refresh]")
        expect(row).to_contain_text("(attempt 2)", timeout=30_000)  # shown live, no reload
        expect(state).to_have_text("failed", timeout=30_000)  # the retry fails the same way
        retried = ui_stack.api("GET", f"/api/v1/tasks/{task['id']}")
        assert retried["steps"][0]["attempt"] >= 1
    finally:
        ui_stack.api("DELETE", "/api/v1/clouds/badcreds")


def test_every_page_fits_a_narrow_window(page: Page, ui_stack: UiStack):
    page.set_viewport_size(NARROW)
    login(page, ui_stack)
    for route, heading in (("copy", "Copy to another cloud"), ("tasks", "Tasks"),
                           ("settings", "Settings")):  # fmt: skip
        go(page, ui_stack, route, heading)
        expect(page.locator("main table, main form").first).to_be_visible()
        assert fits_width(page), f"#/{route} scrolls sideways at {NARROW['width']} px"
        shot(page, f"{route}-narrow")


def test_log_out_ends_the_session(page: Page, ui_stack: UiStack):
    login(page, ui_stack, "olga")
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    page.reload()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    assert page.evaluate("fetch('/api/v1/auth/me').then(r => r.status)") == 401


def test_the_page_allows_only_its_own_scripts_and_styles(page: Page, ui_stack: UiStack):
    response = page.goto(ui_stack.url + "/")
    assert response is not None
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
