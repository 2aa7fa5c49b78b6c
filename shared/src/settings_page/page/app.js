// The token settings page: list, create, rotate and revoke the signed-in user's tokens and read
// their security log, through the bundle's Quay-dialect routes with the session as
// `Authorization: Bearer <jwt>`. No framework: the DOM, fetch and <dialog>.
"use strict";

(() => {
  const config = JSON.parse(document.body.dataset.config || "{}");
  const $ = (id) => document.getElementById(id);
  const DAY = 86400000;
  let session = null; // { token, user, expiresAt }, in memory only
  let sessionTimer = 0;
  let nextLogPage = null;

  // Thrown once the page has already said what happened (the session ended).
  class Shown extends Error {}

  function element(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) {
      if (name === "class") node.className = value;
      else node.setAttribute(name, value);
    }
    node.append(...children.filter((c) => c !== null && c !== undefined));
    return node;
  }

  function say(text) {
    $("status").textContent = text;
  }

  function showError(error) {
    if (error instanceof Shown) return;
    const box = $("error");
    box.textContent = error.message || String(error);
    box.hidden = false;
  }

  function clearError() {
    $("error").hidden = true;
    $("error").textContent = "";
  }

  // Words for an API error: the dialect's own message when it has one.
  function describe(status, body) {
    const detail = body && (body.detail || body.error_message || body.message);
    const what = {
      400: "The service refused the request", 403: "Not allowed", 404: "Not found",
      409: "Someone else changed this token at the same time; try again",
      413: "The request is too large", 429: "Too many requests; wait a moment and try again",
      503: "The service is busy; try again in a moment",
    }[status] || `The service answered ${status}`;
    return detail ? `${what}: ${detail}` : `${what}.`;
  }

  async function call(method, path, body) {
    if (!session || Date.now() >= session.expiresAt) {
      signedOut("Your session has ended. Sign in again.");
      throw new Shown();
    }
    const headers = { Authorization: `Bearer ${session.token}`, Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(new URL(path, location.href), {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch {
      throw new Error("The token service cannot be reached. Check your connection and try again.");
    }
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { data = null; }
    if (response.status === 401) {
      signedOut("Your session was refused or has ended. Sign in again.");
      throw new Shown();
    }
    if (!response.ok) throw new Error(describe(response.status, data));
    return data;
  }

  // "in 3 days", "2 hours ago", "yesterday".
  const relative = new Intl.RelativeTimeFormat("en", { numeric: "auto" });
  function ago(date) {
    const seconds = Math.round((date.getTime() - Date.now()) / 1000);
    const units = [["year", 31536000], ["month", 2592000], ["week", 604800], ["day", 86400],
      ["hour", 3600], ["minute", 60]];
    for (const [unit, size] of units) {
      if (Math.abs(seconds) >= size) return relative.format(Math.trunc(seconds / size), unit);
    }
    return "just now";
  }

  const dateText = (date) => date.toLocaleDateString("en", { year: "numeric", month: "short", day: "numeric" });
  const timeElement = (date, text) =>
    element("time", { datetime: date.toISOString(), title: date.toUTCString() }, text);

  function expiry(text) {
    if (!text) return element("span", { class: "warn" }, "Never expires");
    const date = new Date(text);
    const left = date.getTime() - Date.now();
    if (left <= 0) return element("span", { class: "bad" }, "Expired");
    const days = Math.ceil(left / DAY);
    const words = left < DAY ? "Expires today" : `Expires in ${days} day${days === 1 ? "" : "s"}`;
    return element("span", { class: days <= 7 ? "warn" : "" }, timeElement(date, words),
      element("span", { class: "hint" }, ` (${dateText(date)})`));
  }

  function cell(label, ...content) {
    return element("td", { "data-label": label }, ...content);
  }

  function renderTokens(tokens) {
    const body = $("tokens").tBodies[0];
    body.replaceChildren();
    tokens.sort((a, b) => new Date(b.created) - new Date(a.created));
    for (const token of tokens) {
      const created = new Date(token.created);
      const scopes = token.scopes.length
        ? element("ul", { class: "chips" }, ...token.scopes.map((s) => element("li", {}, s)))
        : "none";
      const used = token.last_accessed
        ? timeElement(new Date(token.last_accessed), ago(new Date(token.last_accessed)))
        : "Never used";
      const rotate = element("button", { type: "button", class: "rotate", "aria-label": `Rotate ${token.title}` }, "Rotate");
      const revoke = element("button", { type: "button", class: "revoke danger", "aria-label": `Revoke ${token.title}` }, "Revoke");
      rotate.addEventListener("click", () => rotateToken(token));
      revoke.addEventListener("click", () => revokeToken(token));
      body.append(element("tr", { "data-uuid": token.uuid },
        element("th", { scope: "row", "data-label": "Note" }, token.title),
        cell("Scopes", scopes),
        cell("Created", timeElement(created, dateText(created))),
        cell("Expires", expiry(token.expiration)),
        cell("Last used", used),
        cell("Actions", element("div", { class: "row-actions" }, rotate, revoke))));
    }
    $("no-tokens").hidden = tokens.length > 0;
    $("tokens").hidden = tokens.length === 0;
  }

  async function loadTokens() {
    const list = await call("GET", "api/v1/user/apptoken");
    renderTokens(list.tokens);
  }

  const KINDS = {
    create_app_specific_token: "Created", revoke_app_specific_token: "Revoked",
    rotate_app_specific_token: "Rotated", expire_app_specific_token: "Expired and removed",
    leak_revoke_app_specific_token: "Revoked: found leaked",
  };
  const PERFORMERS = { session: "You, signed in", token: "A token", system: "The service" };

  // `MM/DD/YYYY` in UTC, as Quay's logs API takes days.
  const quayDay = (date) => {
    const two = (n) => String(n).padStart(2, "0");
    return `${two(date.getUTCMonth() + 1)}/${two(date.getUTCDate())}/${date.getUTCFullYear()}`;
  };

  async function loadLogs(more) {
    const days = Number($("log-range").value) || 1;
    const now = new Date();
    const query = new URLSearchParams({
      starttime: quayDay(new Date(now.getTime() - (days - 1) * DAY)), endtime: quayDay(now),
    });
    if (more && nextLogPage) query.set("next_page", nextLogPage);
    const page = await call("GET", `api/v1/user/logs?${query}`);
    const body = $("logs").tBodies[0];
    if (!more) body.replaceChildren();
    for (const log of page.logs) {
      const when = new Date(log.datetime);
      const meta = log.metadata || {};
      body.append(element("tr", { "data-kind": log.kind },
        cell("When", timeElement(when, ago(when))),
        cell("Event", KINDS[log.kind] || log.kind),
        cell("Token", meta.app_specific_token_title || ""),
        cell("By", PERFORMERS[meta.performed_with] || log.performer.name),
        cell("From", log.ip || "")));
    }
    nextLogPage = page.next_page || null;
    $("more-logs").hidden = !nextLogPage;
    $("no-logs").hidden = body.rows.length > 0;
    $("logs").hidden = body.rows.length === 0;
  }

  async function refresh() {
    await Promise.all([loadTokens(), loadLogs(false)]);
  }

  function showSecret(title, secret, what) {
    $("new-secret").value = secret;
    $("secret-heading").textContent = `${what}: ${title}`;
    $("secret-box").hidden = false;
    $("secret-heading").focus();
  }

  // Asks in a modal dialog; resolves to the grace chosen ("" for none), or null if cancelled.
  function confirmAction({ title, text, action, grace }) {
    const dialog = $("confirm");
    $("confirm-title").textContent = title;
    $("confirm-text").textContent = text;
    $("confirm-ok").textContent = action;
    $("grace-field").hidden = !grace;
    $("grace").value = "";
    dialog.returnValue = "";
    return new Promise((resolve) => {
      dialog.addEventListener("close", () =>
        resolve(dialog.returnValue === "confirm" ? $("grace").value : null), { once: true });
      dialog.showModal();
      $("confirm-cancel").focus();
    });
  }

  async function act(work) {
    clearError();
    try { await work(); } catch (error) { showError(error); }
  }

  function rotateToken(token) {
    return act(async () => {
      const grace = await confirmAction({
        title: `Rotate "${token.title}"?`,
        text: "It gets a new secret and a new expiry; everything else stays. Update whatever uses the old secret.",
        action: "Rotate token", grace: config.grace.length > 0,
      });
      if (grace === null) return;
      const answer = await call("POST", `api/v1/user/apptoken/${encodeURIComponent(token.uuid)}/rotate`,
        grace ? { grace } : {});
      showSecret(token.title, answer.token.token_code, "Rotated");
      say(`Token "${token.title}" rotated.`);
      await refresh();
    });
  }

  function revokeToken(token) {
    return act(async () => {
      const ok = await confirmAction({
        title: `Revoke "${token.title}"?`,
        text: "Anything using this token stops working at once. This cannot be undone.",
        action: "Revoke token",
      });
      if (ok === null) return;
      await call("DELETE", `api/v1/user/apptoken/${encodeURIComponent(token.uuid)}`);
      if ($("new-secret").dataset.uuid === token.uuid) $("secret-box").hidden = true;
      say(`Token "${token.title}" revoked.`);
      await refresh();
      $("status").focus();
    });
  }

  function create(event) {
    event.preventDefault();
    act(async () => {
      const title = $("title").value.trim();
      if (!title) {
        $("title").focus();
        throw new Error("Give the token a note, so you know later what it is for.");
      }
      const body = { title };
      const choice = $("expiry").value;
      if (choice === "custom") {
        const day = $("custom-date").value;
        if (!day) throw new Error("Choose the day the token expires.");
        body.expiration = new Date(`${day}T23:59:59Z`).toISOString().replace(/\.\d+Z$/, "Z");
      } else if (choice) {
        body.expiration = Number(choice);
      }
      const scopes = [...document.querySelectorAll("#scopes input:checked")].map((c) => c.value);
      if (scopes.length) body.scopes = scopes;
      $("create").disabled = true;
      try {
        const answer = await call("POST", "api/v1/user/apptoken", body);
        $("new-secret").dataset.uuid = answer.token.uuid;
        showSecret(answer.token.title, answer.token.token_code, "Created");
        say(`Token "${answer.token.title}" created.`);
        $("create-form").reset();
        setUpForm();
        await refresh();
      } finally {
        $("create").disabled = false;
      }
    });
  }

  function setUpForm() {
    const expiry = $("expiry");
    const d = config.default_expiry || { label: "Default", seconds: null };
    const options = [element("option", { value: "" }, `${d.label} (default)`),
      ...(config.expiry || []).map((c) => element("option", { value: String(c.seconds) }, c.label)),
      element("option", { value: "custom" }, "Custom date…")];
    expiry.replaceChildren(...options);
    const max = config.max_expiry_seconds;
    $("expiry-hint").textContent = max
      ? `At most ${Math.floor(max / 86400)} days from now.` : "Tokens may live forever here; prefer an expiry.";
    const custom = $("custom-date");
    custom.min = new Date(Date.now() + DAY).toISOString().slice(0, 10);
    if (max) custom.max = new Date(Date.now() + max * 1000 - DAY).toISOString().slice(0, 10);
    $("custom-date-field").hidden = true;
    $("grace").replaceChildren(element("option", { value: "" }, "No time: it stops working now"),
      ...(config.grace || []).map((g) => element("option", { value: g.value }, g.label)));
    const defaults = new Set(config.default_scopes || []);
    $("scopes").replaceChildren(...(config.scopes || []).map((scope, i) => {
      const input = element("input", { type: "checkbox", name: "scope", value: scope, id: `scope-${i}` });
      input.checked = defaults.has(scope);
      return element("div", { class: "scope" }, input, element("label", { for: `scope-${i}` }, scope));
    }));
  }

  function signedOut(message) {
    session = null;
    clearTimeout(sessionTimer);
    $("signed-in").hidden = true;
    $("signed-out").hidden = false;
    $("sign-out").hidden = true;
    $("who").hidden = true;
    $("new-secret").value = "";
    $("secret-box").hidden = true;
    $("signed-out-text").textContent = message || "Sign in to see and manage your tokens.";
  }

  async function signedIn(started) {
    session = started;
    clearTimeout(sessionTimer);
    sessionTimer = setTimeout(() => signedOut("Your session has ended. Sign in again."),
      Math.max(0, Math.min(session.expiresAt - Date.now(), 2147483647)));
    $("signed-out").hidden = true;
    $("signed-in").hidden = false;
    $("who").textContent = `Signed in as ${session.user}`;
    $("who").hidden = false;
    $("sign-out").hidden = false;
    await act(refresh);
  }

  async function main() {
    setUpForm();
    $("create-form").addEventListener("submit", create);
    $("expiry").addEventListener("change", () => {
      $("custom-date-field").hidden = $("expiry").value !== "custom";
    });
    $("copy").addEventListener("click", () => act(async () => {
      const secret = $("new-secret");
      try {
        await navigator.clipboard.writeText(secret.value);
        say("Copied to the clipboard.");
      } catch {
        secret.select();
        say("Select and copy it yourself: the browser did not allow copying.");
      }
    }));
    $("secret-done").addEventListener("click", () => {
      $("new-secret").value = "";
      $("secret-box").hidden = true;
    });
    $("log-range").addEventListener("change", () => act(() => loadLogs(false)));
    $("more-logs").addEventListener("click", () => act(() => loadLogs(true)));
    $("sign-out").addEventListener("click", () => signedOut("You signed out."));
    $("sign-in").addEventListener("click", () => act(() => window.TokenSignin.start(config)));
    if (!config.issuer || !config.client_id) {
      signedOut("Sign-in is not configured for this deployment (OIDC_ISSUER and OIDC_CLIENT_ID).");
      $("sign-in").disabled = true;
      return;
    }
    let started = null;
    try {
      started = await window.TokenSignin.finish(config);
    } catch (error) {
      showError(error);
    }
    if (started) await signedIn(started);
    else signedOut();
  }

  main();
})();
