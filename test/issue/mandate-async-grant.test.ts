// Asynchronous mandate grant (issue 15 item 3; OpenID CIBA Core 1.0, poll mode) against a running
// `mandate dev` with two dev users: an agent with no browser asks for a mandate over the backchannel
// with oauth4webapi's CIBA functions (client_secret_basic; its tokens DPoP-bound to its key), polls
// and gets authorization_pending, then slow_down when polling too fast; the human signs in to the
// pending page in headless Chromium, reads the request in plain words with its binding message,
// narrows it and approves with the keyboard; the poller receives tokens naming the narrowed mandate,
// once. Negatives: expired_token after requested_expiry, access_denied after a denial, another human
// (not listed, 404 to see or decide), a decision without or with a wrong CSRF token (403), another
// client's poll and an unknown auth_req_id (invalid_grant), a client that is not an agent or not
// registered for CIBA (unauthorized_client), an unknown login_hint (unknown_user_id), malformed
// requests (each with its error); the strict CSP and no script on every page.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { calculateJwkThumbprint, exportJWK } from "jose";
import * as oauth from "oauth4webapi";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClientKind } from "../../gen/mandate/v1/clients_pb.js";
import { hashPassword } from "../../services/issue/clients/secrets.ts";
import { discover, newAgentKey } from "../helpers/agents.ts";
import { browserAvailable, expectStrictPage, launchChromium } from "../helpers/browser.ts";
import { DEV_PASSWORD, mandateAuditEntries, type OAuthServer, startOAuthServer } from "../helpers/oauth-server.ts";

const CIBA = "urn:openid:params:grant-type:ciba";
const insecure = { [oauth.allowInsecureRequests]: true };
const API = "https://api.example.com/";
const DETAILS = [{ type: "payment_initiation", max_amount: 50, currency: "EUR" }];
const MANDATE = { expires_in: 86_400, usage_limits: [{ meter: "calls", maximum: 10 }], max_delegation_depth: 1 };

interface Agent {
  clientId: string;
  clientSecret: string;
  keys: CryptoKeyPair;
}

let server: OAuthServer;
let as: oauth.AuthorizationServer;
let browser: Browser;
let agent: Agent;
let otherAgent: Agent;

async function registerAgent(name: string, grantTypes = [CIBA], kind = ClientKind.AGENT): Promise<Agent> {
  const { keys, jkt } = await newAgentKey();
  const registered = await server.register({
    kind,
    clientName: name,
    ...(kind === ClientKind.AGENT
      ? { owner: "dev-alice", description: "Books trips and pays for them", dpopJkt: jkt }
      : {}),
    grantTypes,
    tokenEndpointAuthMethod: "client_secret_basic",
    scope: "orders.read payments.create",
    resources: [API],
  });
  return { ...registered, keys };
}

beforeAll(async () => {
  // Two humans: alice is asked; bob must not see alice's requests.
  const dir = mkdtempSync(join(tmpdir(), "mandate-ciba-"));
  const passwordHash = await hashPassword(DEV_PASSWORD);
  const config = join(dir, "mandate.json");
  writeFileSync(
    config,
    JSON.stringify({
      identity: {
        devUsers: [
          { id: "dev-alice", username: "alice", passwordHash, name: "Alice Example", email: "alice@example.com" },
          { id: "dev-bob", username: "bob", passwordHash, name: "Bob Example" },
        ],
      },
    }),
  );
  server = await startOAuthServer({ MANDATE_CONFIG: config });
  ({ as } = await discover(server.issuer));
  agent = await registerAgent("Travel bot");
  otherAgent = await registerAgent("Other bot");
  if (browserAvailable()) browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  if (process.env.MANDATE_TEST_DEBUG) console.error(server?.process.stderr());
  await browser?.close();
  await server?.stop();
});

const pending = (path = "") => `${server.issuer}/mandates/pending${path}`;

/** A backchannel request (CIBA Core §7.1) of `who`; `extra` overrides parameters (undefined: left out). */
function ask(who: Agent, extra: Record<string, string | undefined> = {}) {
  const params: Record<string, string | undefined> = {
    login_hint: "alice",
    scope: "orders.read payments.create",
    resource: API,
    authorization_details: JSON.stringify(DETAILS),
    mandate: JSON.stringify(MANDATE),
    binding_message: "TRIP-4711",
    ...extra,
  };
  const form = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined) form.set(k, v);
  return oauth.backchannelAuthenticationRequest(
    as,
    { client_id: who.clientId },
    oauth.ClientSecretBasic(who.clientSecret),
    form,
    insecure,
  );
}

async function requested(who: Agent = agent, extra: Record<string, string | undefined> = {}) {
  return oauth.processBackchannelAuthenticationResponse(as, { client_id: who.clientId }, await ask(who, extra));
}

/** The OAuth error `promise` is refused with (oauth4webapi's ResponseBodyError). */
async function refusal(promise: Promise<unknown>): Promise<{ error: string; description?: string; status: number }> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof oauth.ResponseBodyError) {
      return { error: error.error, description: error.error_description, status: error.status };
    }
    // A 401 with WWW-Authenticate (RFC 6749 §5.2 invalid_client with HTTP Basic).
    if (error instanceof oauth.WWWAuthenticateChallengeError) {
      const challenge = error.cause[0];
      return { error: String(challenge?.parameters.error), status: error.status };
    }
    throw error;
  }
  throw new Error("expected an OAuth error response");
}

/** One poll of the token endpoint (CIBA Core §10.1) with a DPoP proof of `who`'s key, nonce learnt once. */
function poller(who: Agent) {
  const client = { client_id: who.clientId };
  const dpop = oauth.DPoP({}, who.keys);
  const send = (authReqId: string) =>
    oauth.backchannelAuthenticationGrantRequest(as, client, oauth.ClientSecretBasic(who.clientSecret), authReqId, {
      DPoP: dpop,
      ...insecure,
    });
  return async (authReqId: string) => {
    try {
      return await oauth.processBackchannelAuthenticationGrantResponse(as, client, await send(authReqId));
    } catch (error) {
      // RFC 9449 §8: the first request learns the server's nonce (before the grant is looked at).
      if (!oauth.isDPoPNonceError(error)) throw error;
      return oauth.processBackchannelAuthenticationGrantResponse(as, client, await send(authReqId));
    }
  };
}

async function signIn(username: string, start = pending()): Promise<Page> {
  const context = await browser.newContext();
  const tab = await context.newPage();
  tab.setDefaultTimeout(8000);
  await tab.goto(start);
  expect(new URL(tab.url()).pathname).toBe("/t/demo/mandates/login");
  await tab.getByLabel("Username").fill(username);
  await tab.getByLabel("Password").fill(DEV_PASSWORD);
  await tab.getByLabel("Password").press("Enter");
  await tab.waitForURL(start);
  return tab;
}

/** The ids of the requests listed on `tab`'s pending page. */
async function listedIds(tab: Page): Promise<string[]> {
  await tab.goto(pending());
  return tab.locator("li.request").evaluateAll((items) => items.map((li) => li.getAttribute("data-request") ?? ""));
}

describe("backchannel mandate requests", () => {
  it("is advertised in the metadata (CIBA Core §4)", () => {
    expect(as.backchannel_authentication_endpoint).toBe(`${server.issuer}/oauth2/bc-authorize`);
    expect(as.backchannel_token_delivery_modes_supported).toEqual(["poll"]);
    expect(as.backchannel_user_code_parameter_supported).toBe(false);
    expect(as.grant_types_supported).toContain(CIBA);
  });

  it("refuses malformed requests, each with its error", async () => {
    const cases: Array<[Record<string, string | undefined>, string, string]> = [
      [{ authorization_details: "not json" }, "invalid_authorization_details", "not valid JSON"],
      // Nested thousands deep: refused for its depth before it is parsed (JSON.parse may run out of stack).
      [
        { mandate: `${'{"a":'.repeat(2000)}1${"}".repeat(2000)}` },
        "invalid_request",
        "nested more than 32 levels deep",
      ],
      [{ authorization_details: '[{"max_amount":5}]' }, "invalid_authorization_details", "type is required"],
      [{ mandate: '{"expires_in":60,"spend_all":true}' }, "invalid_request", "mandate.spend_all"],
      [{ mandate: undefined }, "invalid_request", "mandate is required"],
      [{ scope: "orders.read admin" }, "invalid_scope", "admin"],
      [{ resource: "https://elsewhere.example/" }, "invalid_target", ""],
      [{ login_hint: undefined }, "invalid_request", "login_hint is required"],
      [{ login_hint: undefined, id_token_hint: "x.y.z" }, "invalid_request", "id_token_hint"],
      [{ user_code: "1234" }, "invalid_request", "user_code"],
      [{ client_notification_token: "t" }, "invalid_request", "poll"],
      [{ binding_message: "x".repeat(65) }, "invalid_binding_message", "64"],
      [{ binding_message: "line\nbreak" }, "invalid_binding_message", ""],
      [{ requested_expiry: "0" }, "invalid_request", "requested_expiry"],
      [{ requested_expiry: "86401" }, "invalid_request", "requested_expiry"],
      [{ login_hint: "nobody@example.com" }, "unknown_user_id", ""],
    ];
    for (const [extra, error, words] of cases) {
      const refused = await refusal(requested(agent, extra));
      expect(refused.error, JSON.stringify(extra)).toBe(error);
      expect(refused.status).toBe(400);
      expect(refused.description).toContain(words);
    }
  });

  it("refuses a client that is not an agent, or not registered for the grant (unauthorized_client)", async () => {
    const application = await registerAgent("Plain app", [CIBA], ClientKind.APPLICATION);
    const notRegistered = await registerAgent("Agent without CIBA", ["client_credentials"]);
    for (const who of [application, notRegistered]) {
      const refused = await refusal(requested(who));
      expect(refused.error).toBe("unauthorized_client");
    }
    // A wrong secret is invalid_client (401), as at the token endpoint.
    const wrong = await refusal(requested({ ...agent, clientSecret: "wrong" }));
    expect(wrong).toMatchObject({ error: "invalid_client", status: 401 });
  });

  it("answers invalid_grant for another client's or an unknown auth_req_id, expired_token after requested_expiry", async () => {
    const { auth_req_id, expires_in, interval } = await requested(agent, { requested_expiry: "1" });
    expect(auth_req_id).toMatch(/^mbr_[A-Za-z0-9_-]{43}$/);
    expect(expires_in).toBe(1);
    expect(interval).toBe(5);
    expect(await refusal(poller(otherAgent)(auth_req_id))).toMatchObject({ error: "invalid_grant" });
    expect(await refusal(poller(agent)("mbr_unknown"))).toMatchObject({ error: "invalid_grant" });
    await new Promise((resolve) => setTimeout(resolve, 1200));
    expect(await refusal(poller(agent)(auth_req_id))).toMatchObject({ error: "expired_token" });
  });
});

describe.skipIf(!browserAvailable())("asynchronous mandate grant in headless Chromium", () => {
  it("pending, slow_down, the human narrows and approves, then tokens for the narrowed mandate — once", async () => {
    const { auth_req_id, interval } = await requested();
    const poll = poller(agent);
    expect(await refusal(poll(auth_req_id))).toMatchObject({ error: "authorization_pending", status: 400 });
    // CIBA Core §11: too fast — the interval grows by 5 seconds.
    const slow = await refusal(poll(auth_req_id));
    expect(slow).toMatchObject({ error: "slow_down", status: 400 });
    const slowedAt = Date.now();

    // The human: sign-in returns to the pending page; the request in plain words with its binding message.
    const tab = await signIn("alice");
    const list = await tab.reload();
    await expectStrictPage(tab, list);
    const item = tab.locator("li.request").filter({ hasText: "TRIP-4711" });
    await expect(item.locator("h2").textContent()).resolves.toBe("Travel bot");
    const words = await item.textContent();
    expect(words).toContain("Make payments of up to 50.00 EUR each");
    expect(words).toContain("At most 10 times in total");
    const requestId = (await item.getAttribute("data-request")) as string;
    expect(requestId).toMatch(/^mrq_/);
    const review = tab.waitForResponse((r) => r.url() === pending(`/${requestId}`));
    await item.getByRole("link", { name: "Review and decide…" }).click();
    await expectStrictPage(tab, await review);
    await tab.getByRole("heading", { name: "Give Travel bot a mandate?" }).waitFor();
    expect(await tab.locator("main").textContent()).toContain("The agent shows this code: TRIP-4711");
    // Narrow: no payments.create, at most 20 EUR, 5 uses, no delegation; approve with the keyboard.
    await tab.getByLabel("Use the permission “payments.create” (payments.create)").uncheck();
    await tab.getByLabel(/^At most \(amount, EUR\)/).fill("20");
    await tab.getByLabel("At most 10 times in total: at most").fill("5");
    await tab.getByLabel(/How many hops further/).fill("0");
    await tab.getByRole("button", { name: "Approve" }).focus();
    await tab.keyboard.press("Enter");
    await tab.waitForURL(/\/mandates\/pending\?approved=mdt_/);
    const mandateId = new URL(tab.url()).searchParams.get("approved") as string;
    expect(await tab.locator("[role=status]").textContent()).toContain(mandateId);
    expect(await tab.locator(`li[data-request="${requestId}"]`).count()).toBe(0);
    // The list of my mandates links the pending page.
    await tab.goto(`${server.issuer}/mandates`);
    expect(await tab.getByRole("link", { name: "Requests waiting for your approval" }).getAttribute("href")).toBe(
      pending(),
    );
    await tab.context().close();

    // Polling at the grown interval: the tokens of the narrowed mandate.
    await new Promise((resolve) =>
      setTimeout(resolve, Math.max(0, ((interval ?? 5) + 5) * 1000 + 300 - (Date.now() - slowedAt))),
    );
    const tokens = await poll(auth_req_id);
    expect(tokens.token_type.toLowerCase()).toBe("dpop");
    expect(tokens.mandate_id).toBe(mandateId);
    expect(tokens.scope).toBe("orders.read");
    expect(tokens.refresh_token).toBeUndefined();
    expect(tokens.authorization_details).toEqual([{ type: "payment_initiation", max_amount: 20, currency: "EUR" }]);
    const claims = JSON.parse(Buffer.from(tokens.access_token.split(".")[1] as string, "base64url").toString());
    expect(claims).toMatchObject({ sub: "dev-alice", mandate_id: mandateId, client_id: agent.clientId });
    expect([claims.aud].flat()).toEqual([API]);
    expect(claims.cnf.jkt).toBe(await calculateJwkThumbprint(await exportJWK(agent.keys.publicKey), "sha256"));

    const { mandate } = await server.issue.getMandate({ tenant: "demo", mandateId });
    expect(mandate?.principal?.id).toBe("dev-alice");
    expect(mandate?.agent?.id).toBe(agent.clientId);
    expect(mandate?.scopes).toEqual(["orders.read"]);
    expect(mandate?.authorizationDetails).toEqual([{ type: "payment_initiation", max_amount: 20, currency: "EUR" }]);
    expect(mandate?.usageLimits.map((l) => [l.meter, l.maximum])).toEqual([["calls", 5]]);
    expect(mandate?.maxDelegationDepth).toBe(0);
    expect(mandate?.consent?.method).toBe("asynchronous");
    expect(mandate?.consent?.approvedBy).toEqual({ sub: "dev-alice" });
    expect(mandate?.consent?.text).toContain("Make payments of up to 20.00 EUR each");

    // Once only: a second poll after success.
    expect(await refusal(poll(auth_req_id))).toMatchObject({ error: "invalid_grant" });
    const types = await auditTypes(mandateId);
    expect(types).toContain("mandate.granted.v1");
  }, 60_000);

  it("another human neither sees nor decides the request; a decision without CSRF is refused; deny is access_denied", async () => {
    const { auth_req_id } = await requested(agent, { binding_message: "DENY-ME" });
    const alice = await signIn("alice");
    const mine = alice.locator("li.request").filter({ hasText: "DENY-ME" });
    const requestId = (await mine.getAttribute("data-request")) as string;

    const bob = await signIn("bob");
    expect(await listedIds(bob)).not.toContain(requestId);
    expect((await bob.goto(pending(`/${requestId}`)))?.status()).toBe(404);
    // Bob's own valid CSRF token (the cookie his sign-in set): still 404, nothing decided.
    const csrf = (await bob.context().cookies()).find((c) => c.name === "mandate_page_csrf")?.value as string;
    expect(csrf).toBeTruthy();
    for (const decision of ["approve", "deny"]) {
      const foreign = await bob.context().request.post(pending(`/${requestId}`), {
        form: { csrf, decision, "scope.0": "on" },
        maxRedirects: 0,
      });
      expect(foreign.status()).toBe(404);
    }
    await bob.context().close();

    // Alice without the CSRF token, or with a wrong one: 403.
    const request = alice.context().request;
    const noCsrf = await request.post(pending(`/${requestId}`), { form: { decision: "approve" }, maxRedirects: 0 });
    expect(noCsrf.status()).toBe(403);
    const wrongCsrf = await request.post(pending(`/${requestId}`), {
      form: { csrf: "A".repeat(43), decision: "deny" },
      maxRedirects: 0,
    });
    expect(wrongCsrf.status()).toBe(403);
    expect(await refusal(poller(agent)(auth_req_id))).toMatchObject({ error: "authorization_pending" });

    // Alice denies, with the keyboard.
    const review = await alice.goto(pending(`/${requestId}`));
    await expectStrictPage(alice, review);
    await alice.getByRole("button", { name: "Deny" }).focus();
    await alice.keyboard.press("Enter");
    await alice.waitForURL(/\/mandates\/pending\?denied=1/);
    expect(await alice.locator("[role=status]").textContent()).toContain("You denied the request");
    expect(await listedIds(alice)).not.toContain(requestId);
    // A decided request cannot be decided again.
    expect((await alice.goto(pending(`/${requestId}`)))?.status()).toBe(404);
    await alice.context().close();
    expect(await refusal(poller(agent)(auth_req_id))).toMatchObject({ error: "access_denied", status: 403 });
  }, 60_000);

  it("refuses a tampered approval that widens the ask, keeping the request open", async () => {
    const { auth_req_id } = await requested(agent, { binding_message: "WIDEN" });
    const alice = await signIn("alice");
    const requestId = (await alice
      .locator("li.request")
      .filter({ hasText: "WIDEN" })
      .getAttribute("data-request")) as string;
    await alice.goto(pending(`/${requestId}`));
    const csrf = await alice.locator('input[name="csrf"]').first().inputValue();
    const refused = await alice.context().request.post(pending(`/${requestId}`), {
      form: { csrf, decision: "approve", "scope.0": "on", "detail.0": "on", "detail.0.max_amount": "500" },
      maxRedirects: 0,
    });
    expect(refused.status()).toBe(400);
    expect(await refused.text()).toContain('role="alert"');
    expect(await listedIds(alice)).toContain(requestId);
    await alice.context().close();
    expect(await refusal(poller(agent)(auth_req_id))).toMatchObject({ error: "authorization_pending" });
  }, 30_000);
});

/** The audit event types of `mandateId` (Audit.Query by mandate id), once the grant reached the log. */
async function auditTypes(mandateId: string): Promise<string[]> {
  const entries = await mandateAuditEntries(server, mandateId, (found) => found.length > 0);
  return entries.map((e) => e.event?.type ?? "");
}
