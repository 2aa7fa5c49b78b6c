// Sign-in with the configured OIDC issuer: the authorization code flow with PKCE (RFC 7636,
// S256) as a public client, endpoints from the issuer's discovery document. The session lives
// in this page's memory only; while the browser is at the issuer, the PKCE verifier, state and
// nonce wait in sessionStorage (this tab only), and are removed on the way back.
"use strict";

window.TokenSignin = (() => {
  const PENDING = "token-settings.signin";

  const base64url = (bytes) =>
    btoa(String.fromCharCode(...new Uint8Array(bytes)))
      .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  const random = () => base64url(crypto.getRandomValues(new Uint8Array(32)));

  // Where the issuer sends the browser back: this page, without its query.
  const redirectUri = () => location.origin + location.pathname;

  // The claims of a JWT, unverified: the token endpoint answered over the connection the
  // browser checked, and the API verifies every session it is given.
  function claims(jwt) {
    try {
      const part = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      const bytes = Uint8Array.from(atob(part), (c) => c.charCodeAt(0));
      return JSON.parse(new TextDecoder().decode(bytes));
    } catch {
      return {};
    }
  }

  async function discover(issuer) {
    const url = issuer.replace(/\/$/, "") + "/.well-known/openid-configuration";
    let response;
    try {
      response = await fetch(url, { headers: { Accept: "application/json" } });
    } catch {
      throw new Error(`The sign-in service (${issuer}) cannot be reached.`);
    }
    const document = response.ok ? await response.json().catch(() => null) : null;
    if (!document) {
      throw new Error(`The sign-in service answered ${response.status} for its discovery document.`);
    }
    if (document.issuer !== issuer) {
      throw new Error(`The sign-in service calls itself ${document.issuer}, not ${issuer}.`);
    }
    for (const key of ["authorization_endpoint", "token_endpoint"]) {
      if (typeof document[key] !== "string") {
        throw new Error(`The sign-in service's discovery document has no ${key}.`);
      }
    }
    return document;
  }

  // Sends the browser to the issuer's authorization endpoint.
  async function start(config) {
    const endpoints = await discover(config.issuer);
    const pending = { state: random(), verifier: random(), nonce: random() };
    const challenge = base64url(
      await crypto.subtle.digest("SHA-256", new TextEncoder().encode(pending.verifier)));
    sessionStorage.setItem(PENDING, JSON.stringify(pending));
    const url = new URL(endpoints.authorization_endpoint);
    for (const [name, value] of Object.entries({
      response_type: "code",
      client_id: config.client_id,
      redirect_uri: redirectUri(),
      scope: config.scope,
      state: pending.state,
      nonce: pending.nonce,
      code_challenge: challenge,
      code_challenge_method: "S256",
    })) {
      url.searchParams.set(name, value);
    }
    location.assign(url.toString());
  }

  // On the way back from the issuer: the code for a session. `null` when this load is not a
  // return from the issuer.
  async function finish(config) {
    const params = new URLSearchParams(location.search);
    if (!params.has("code") && !params.has("error")) {
      return null;
    }
    const pending = JSON.parse(sessionStorage.getItem(PENDING) || "null");
    sessionStorage.removeItem(PENDING);
    // The code is single-use; keep it out of the history and of a reload.
    history.replaceState(null, "", redirectUri());
    // The state first: until it matches, the address is anyone's link, and none of its text
    // (`error`, `error_description`) is shown.
    if (!pending || !params.get("state") || params.get("state") !== pending.state) {
      throw new Error("Sign-in failed: the answer does not belong to a sign-in started here. Sign in again.");
    }
    if (params.has("error")) {
      throw new Error(`Sign-in failed: ${params.get("error_description") || params.get("error")}.`);
    }
    const endpoints = await discover(config.issuer);
    let response;
    try {
      response = await fetch(endpoints.token_endpoint, {
        method: "POST",
        headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
        body: new URLSearchParams({
          grant_type: "authorization_code",
          code: params.get("code"),
          redirect_uri: redirectUri(),
          client_id: config.client_id,
          code_verifier: pending.verifier,
        }),
      });
    } catch {
      throw new Error("Sign-in failed: the sign-in service's token endpoint cannot be reached.");
    }
    const body = await response.json().catch(() => ({}));
    if (!response.ok || typeof body.access_token !== "string") {
      const why = body.error_description || body.error || `the sign-in service answered ${response.status}`;
      throw new Error(`Sign-in failed: ${why}.`);
    }
    const identity = body.id_token ? claims(body.id_token) : {};
    if (body.id_token && identity.nonce !== pending.nonce) {
      throw new Error("Sign-in failed: the identity token does not belong to this sign-in.");
    }
    const access = claims(body.access_token);
    const seconds = Number(body.expires_in) > 0 ? Number(body.expires_in) : 3600;
    const until = access.exp ? Math.min(access.exp * 1000, Date.now() + seconds * 1000)
      : Date.now() + seconds * 1000;
    return {
      token: body.access_token,
      user: identity.preferred_username || identity.sub || access.sub || "you",
      expiresAt: until,
    };
  }

  return { start, finish };
})();
