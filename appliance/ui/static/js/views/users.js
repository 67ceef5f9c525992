// Users and their roles (admins only): list, add. Part of the Settings page.

import { get, post, turns } from "../api.js";
import { field, h, replace, table } from "../dom.js";
import { showErrors } from "../forms.js";
import { timeEl } from "../format.js";

const ROLES = ["viewer", "operator", "admin"];
const ROLE_HINT = "A viewer reads; an operator also copies, refreshes, cancels and retries; an admin also manages clouds, nodes and users.";

export function usersSection(say) {
  const list = h("div");
  const username = h("input", { name: "new-username", autocomplete: "off", spellcheck: "false" });
  const password = h("input", { name: "new-password", type: "password", autocomplete: "new-password" });
  const role = h("select", { name: "role" }, ROLES.map((r) => h("option", { value: r }, r)));
  const summary = h("div", { class: "alert", role: "alert", tabindex: "-1", hidden: true });

  const turn = turns();
  async function load() {
    const mine = turn();
    const users = (await get("/users?limit=500")).items;
    if (!mine()) return;
    replace(list, table("!Users", [
      { label: "User", cell: (u) => u.username },
      { label: "Role", cell: (u) => u.role },
      { label: "Added", cell: (u) => timeEl(u.created_at) },
    ], users, { rowKey: (u) => u.username }));
  }

  async function submit(event) {
    event.preventDefault();
    showErrors(form, summary, null);
    try {
      const user = await post("/users", { username: username.value, password: password.value, role: role.value });
      say(`Added ${user.role} ${user.username}.`);
      username.value = "";
      password.value = "";
      await load();
    } catch (exc) {
      showErrors(form, summary, exc, { title: "The user was not added", conflictField: "username" });
    }
  }

  const form = h("form", { class: "card settings-form", novalidate: true, onsubmit: submit, "aria-labelledby": "user-form-title" },
    h("h3", { id: "user-form-title" }, "Add a user"), summary,
    h("div", { class: "grid-fields" },
      field("User name", username, { field: "username" }),
      field("Password", password, { field: "password", hint: "At least 8 characters." }),
      field("Role", role, { field: "role" }),
      h("p", { class: "hint wide" }, ROLE_HINT)),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Add user")));

  const section = h("section", { "aria-labelledby": "set-users" }, h("h2", { id: "set-users" }, "Users"), list, form);
  return { section, load };
}
