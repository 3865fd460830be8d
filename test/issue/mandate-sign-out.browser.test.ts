// Sign-out ends the mandates granted to end with the session (issue 15 item 2's revocation policy),
// against a running `mandate dev` in headless Chromium: an agent asks (authorization endpoint) for a
// mandate with `revoke_on_session_end`; the dev user sees it said in plain words, approves; a second
// grant the agent asked without it, the human adds it ("End it when I sign out"); a third has none.
// The code is redeemed with oauth4webapi (DPoP). "Sign out" on "my mandates" (POST /logout with the
// CSRF token) ends the session: the first two mandates are revoked (GetMandate: REVOKED, the reason,
// by the rule) and their tokens refused by introspection; the third stays active; the session opens
// nothing any more. Negatives: the sign-out without or with a wrong CSRF token (403, nothing ends), a
// malformed revoke_on_session_end (invalid_request), a form that leaves out what the agent asked for
// (kept anyway), the pending page's sign-out button.
import * as oauth from "oauth4webapi";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClientKind } from "../../gen/mandate/v1/clients_pb.js";
import { MandateState } from "../../gen/mandate/v1/issue_pb.js";
import { discover, newAgentKey, redeemCode } from "../helpers/agents.ts";
import { browserAvailable, launchChromium } from "../helpers/browser.ts";
import { Browser, DEV_PASSWORD, type OAuthServer, startOAuthServer } from "../helpers/oauth-server.ts";

const REDIRECT = "http://127.0.0.1:9/callback";
const API = "https://api.example.com/";

let server: OAuthServer;
let as: oauth.AuthorizationServer;
let keys: CryptoKeyPair;
let agent: { clientId: string; clientSecret: string };

beforeAll(async () => {
  server = await startOAuthServer();
  ({ as } = await discover(server.issuer));
  const key = await newAgentKey();
  keys = key.keys;
  agent = await server.register({
    kind: ClientKind.AGENT,
    clientName: "Session bot",
    owner: "dev-alice",
    dpopJkt: key.jkt,
    redirectUris: [REDIRECT],
    grantTypes: ["authorization_code"],
    tokenEndpointAuthMethod: "client_secret_basic",
    scope: "orders.read",
    resources: [API],
  });
}, 30_000);
afterAll(async () => {
  if (process.env.MANDATE_TEST_DEBUG) console.error(server?.process.stderr());
  await server?.stop();
});

async function authorizationUrl(mandate: Record<string, unknown>, state: string) {
  const verifier = oauth.generateRandomCodeVerifier();
  const url = new URL(as.authorization_endpoint as string);
  for (const [k, v] of Object.entries({
    client_id: agent.clientId,
    response_type: "code",
    redirect_uri: REDIRECT,
    scope: "orders.read",
    resource: API,
    code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
    code_challenge_method: "S256",
    state,
    mandate: JSON.stringify({ expires_in: 86_400, ...mandate }),
  }))
    url.searchParams.set(k, v);
  return { url, verifier };
}

/** Redeems the callback's code with DPoP (the agent's key); the token response. */
async function redeem(callback: string, verifier: string, state: string) {
  return (await redeemCode(as, agent, keys, { callback, state, verifier, redirectUri: REDIRECT })).tokens;
}

async function introspect(token: string): Promise<boolean> {
  const response = await fetch(`${server.issuer}/oauth2/introspect`, {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      authorization: `Basic ${Buffer.from(`${agent.clientId}:${agent.clientSecret}`).toString("base64")}`,
    },
    body: new URLSearchParams({ token }),
  });
  expect(response.status).toBe(200);
  return ((await response.json()) as { active: boolean }).active;
}

async function mandateOf(mandateId: string) {
  return (await server.issue.getMandate({ tenant: "demo", mandateId })).mandate;
}

/** Walks an interactive grant in `page` (signed in already or not) and approves; the token response. */
async function grantInBrowser(
  page: Page,
  mandate: Record<string, unknown>,
  state: string,
  narrow?: () => Promise<void>,
) {
  const { url, verifier } = await authorizationUrl(mandate, state);
  let callback: string | undefined;
  await page.route(`${REDIRECT}**`, (route) => {
    callback = route.request().url();
    return route.fulfill({ status: 200, body: "done" });
  });
  await page.goto(url.href);
  if (await page.getByLabel("Username").count()) {
    await page.getByLabel("Username").fill("alice");
    await page.getByLabel("Password").fill(DEV_PASSWORD);
    await page.getByRole("button", { name: "Sign in" }).click();
  }
  await page.getByRole("heading", { name: "Give Session bot a mandate?" }).waitFor();
  const words = (await page.locator("main").textContent()) ?? "";
  await narrow?.();
  await page.getByRole("button", { name: "Approve" }).click();
  await expect.poll(() => callback, { timeout: 10_000 }).toBeTruthy();
  await page.unroute(`${REDIRECT}**`);
  return { tokens: await redeem(callback as string, verifier, state), words };
}

describe.skipIf(!browserAvailable())("sign-out revokes the mandates granted to end with the session", () => {
  it("revokes what was asked or chosen to end with the session, refuses their tokens, keeps the rest", async () => {
    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      page.setDefaultTimeout(8000);
      // 1. The agent asks for revoke_on_session_end: said in plain words, kept.
      const asked = await grantInBrowser(page, { revoke_on_session_end: true }, "s1");
      expect(asked.words).toContain("It ends when you sign out of the session in which it was approved.");
      expect(asked.words).toContain("(The agent asked for this.)");
      // 2. Not asked: the human adds it.
      const chosen = await grantInBrowser(page, {}, "s2", async () => {
        await page.getByLabel("End it when I sign out of this session").check();
      });
      // 3. Neither: stays after sign-out.
      const kept = await grantInBrowser(page, {}, "s3");
      const ids = [asked, chosen, kept].map((g) => g.tokens.mandate_id as string);
      for (const id of ids) expect((await mandateOf(id))?.state).toBe(MandateState.ACTIVE);
      expect((await mandateOf(ids[0] as string))?.revocationPolicy?.revokeOnSessionEnd).toBe(true);
      expect((await mandateOf(ids[1] as string))?.revocationPolicy?.revokeOnSessionEnd).toBe(true);
      expect((await mandateOf(ids[2] as string))?.revocationPolicy?.revokeOnSessionEnd).toBe(false);
      for (const g of [asked, chosen, kept]) expect(await introspect(g.tokens.access_token)).toBe(true);

      // "My mandates" says it, and carries the sign-out button.
      await page.goto(`${server.issuer}/mandates`);
      const list = (await page.locator("main").textContent()) ?? "";
      expect(list).toContain("It ends when you sign out of the session in which it was approved.");
      const signOut = page.getByRole("button", { name: "Sign out" });
      await signOut.waitFor();
      // So does the pending-requests page.
      await page.goto(`${server.issuer}/mandates/pending`);
      await page.getByRole("button", { name: "Sign out" }).waitFor();

      // Negatives: without or with a wrong CSRF token, nothing ends.
      for (const form of [{}, { csrf: "x".repeat(43) }] as Array<Record<string, string>>) {
        const refused = await page.request.post(`${server.issuer}/logout`, { form, maxRedirects: 0 });
        expect(refused.status()).toBe(403);
      }
      expect((await mandateOf(ids[0] as string))?.state).toBe(MandateState.ACTIVE);
      expect(await introspect(asked.tokens.access_token)).toBe(true);
      // Only POST.
      expect((await page.request.get(`${server.issuer}/logout`, { maxRedirects: 0 })).status()).toBe(405);

      // Sign out with the keyboard.
      await page.goto(`${server.issuer}/mandates`);
      const response = page.waitForResponse((r) => r.url().endsWith("/logout"));
      await page.getByRole("button", { name: "Sign out" }).focus();
      await page.keyboard.press("Enter");
      const headers = (await response).headers();
      expect(headers["content-security-policy"]).toContain("default-src 'none'");
      await page.getByRole("heading", { name: "Signed out" }).waitFor();
      expect(await page.locator("main").textContent()).toContain("2 mandates you had given to end with this session");
      expect(await page.locator("script").count()).toBe(0);

      for (const id of ids.slice(0, 2)) {
        const m = await mandateOf(id);
        expect(m?.state).toBe(MandateState.REVOKED);
        expect(m?.revokeReason).toBe("the login session it was granted in ended");
      }
      expect((await mandateOf(ids[2] as string))?.state).toBe(MandateState.ACTIVE);
      // Their tokens are refused at once; the other's still works.
      expect(await introspect(asked.tokens.access_token)).toBe(false);
      expect(await introspect(chosen.tokens.access_token)).toBe(false);
      expect(await introspect(kept.tokens.access_token)).toBe(true);

      // The session is over: my mandates asks to sign in again.
      await page.goto(`${server.issuer}/mandates`);
      await page.getByLabel("Username").waitFor();
      // Signing out again (no session) ends nothing more.
      const csrf = (await page.context().cookies()).find((c) => c.name === "mandate_page_csrf")?.value as string;
      const again = await page.request.post(`${server.issuer}/logout`, { form: { csrf } });
      expect(again.status()).toBe(200);
      expect(await again.text()).not.toContain("revoked");
    } finally {
      await browser.close();
    }
  }, 60_000);
});

describe("sign-out: the ask and the form", () => {
  it("refuses a revoke_on_session_end that is not a boolean (invalid_request, to the client)", async () => {
    for (const bad of [{ revoke_on_session_end: "yes" }, { revoke_on_account_end: 1 }]) {
      const { url } = await authorizationUrl(bad, "bad");
      const response = await fetch(url, { redirect: "manual" });
      const location = new URL(response.headers.get("location") as string);
      expect(location.searchParams.get("error")).toBe("invalid_request");
      expect(location.searchParams.get("error_description")).toMatch(/must be true or false/);
    }
  });

  it("keeps what the agent asked for even when the form leaves it out", async () => {
    const browser = new Browser();
    const { url } = await authorizationUrl({ revoke_on_session_end: true, revoke_on_account_end: true }, "k");
    // Sign in over HTTP, then approve with a form that has neither revoke_on_* field.
    let response = await browser.get(url.href);
    const follow = async () => {
      for (let hops = 0; hops < 6 && response.headers.get("location"); hops++)
        response = await browser.get(new URL(response.headers.get("location") as string, url).href);
    };
    await follow();
    let html = await response.text();
    const field = (name: string) => new RegExp(`name="${name}" value="([^"]*)"`).exec(html)?.[1] ?? "";
    response = await browser.post(`${server.issuer}/login`, {
      interaction: field("interaction"),
      csrf: field("csrf"),
      username: "alice",
      password: DEV_PASSWORD,
    });
    await follow();
    html = await response.text();
    expect(html).toContain("(The agent asked for this.)");
    expect(html).not.toContain('name="revoke_on_session_end"');
    const approved = await browser.post(`${server.issuer}/consent`, {
      interaction: field("interaction"),
      csrf: field("csrf"),
      decision: "approve",
      "scope.0": "on",
      "resource.0": "on",
    });
    const callback = new URL(approved.headers.get("location") as string);
    expect(callback.searchParams.get("code")).toBeTruthy();
    const listed = await server.issue.listMandates({ tenant: "demo", agentId: agent.clientId });
    const newest = listed.mandates.at(-1);
    expect(newest?.revocationPolicy).toMatchObject({ revokeOnSessionEnd: true, revokeOnAccountEnd: true });
  });
});
