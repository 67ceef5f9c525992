// The login form. The API sets an HttpOnly cookie; the page never sees the token.

import { ApiError, get, post } from "../api.js";
import { field, h } from "../dom.js";

export function render(main, { message, onLogin }) {
  const user = h("input", { name: "username", autocomplete: "username", required: true, autocapitalize: "none", spellcheck: "false" });
  const password = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true });
  const error = h("p", { class: "alert", role: "alert", id: "login-error", hidden: !message }, message || "");
  const button = h("button", { type: "submit" }, "Log in");

  async function submit(event) {
    event.preventDefault();
    error.hidden = true;
    if (!user.value || !password.value) {
      showError("Enter your user name and password.");
      return;
    }
    button.disabled = true;
    button.textContent = "Logging in…";
    try {
      await post("/auth/login", { username: user.value, password: password.value });
      onLogin(await get("/auth/me"));
    } catch (exc) {
      const wrong = exc instanceof ApiError && exc.status === 401;
      showError(wrong ? "Wrong user name or password." : `Cannot log in: ${exc.message}`);
      password.select();
    } finally {
      button.disabled = false;
      button.textContent = "Log in";
    }
  }

  function showError(text) {
    error.textContent = text;
    error.hidden = false;
    password.setAttribute("aria-invalid", "true");
  }

  password.setAttribute("aria-describedby", "login-error");
  main.replaceChildren(
    h("section", { class: "login card" },
      h("h1", {}, h("img", { src: "/ui/favicon.svg", alt: "", width: 32, height: 32 }), "Hybrid Cloud Connector"),
      h("p", { class: "muted" }, "One console over your vSphere and Cloud Director clouds."),
      h("form", { onsubmit: submit, novalidate: true, "aria-label": "Log in" },
        error,
        field("User name", user),
        field("Password", password),
        h("div", { class: "actions" }, button))));
  user.focus();
}
