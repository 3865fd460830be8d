// Interactive mandate grant (issue 15 item 3) against a running `mandate dev`: an agent asks through
// the authorization endpoint (code flow + PKCE, RFC 9396 authorization_details and a `mandate`
// parameter, or the same pushed with PAR, RFC 9126); a dev user signs in in headless Chromium, reads
// the mandate in plain words, narrows it (lowers the amount, unchecks a scope) and approves; the code
// is redeemed with oauth4webapi (DPoP, the agent's key) and the token response and access token
// name the mandate, which is the narrowed one. Negatives: a tampered form widening a dimension, a
// missing CSRF token, deny, a client that is not an agent, malformed parameters.
import * as oauth from "oauth4webapi";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClientKind } from "../../gen/mandate/v1/clients_pb.js";
import { discover, newAgentKey, redeemCode } from "../helpers/agents.ts";
import { browserAvailable, launchChromium } from "../helpers/browser.ts";
import {
  Browser,
  DEV_PASSWORD,
  mandateAuditEntries,
  type OAuthServer,
  startOAuthServer,
} from "../helpers/oauth-server.ts";

const insecure = { [oauth.allowInsecureRequests]: true };
const REDIRECT = "http://127.0.0.1:9/callback";
const API = "https://api.example.com/";
const DETAILS = [{ type: "payment_initiation", max_amount: 50, currency: "EUR" }];
const MANDATE = { expires_in: 86_400, usage_limits: [{ meter: "calls", maximum: 10 }], max_delegation_depth: 1 };

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
    clientName: "Travel bot",
    owner: "dev-alice",
    description: "Books trips and pays for them",
    dpopJkt: key.jkt,
    redirectUris: [REDIRECT],
    grantTypes: ["authorization_code", "client_credentials"],
    tokenEndpointAuthMethod: "client_secret_basic",
    scope: "orders.read payments.create",
    resources: [API],
  });
}, 30_000);
afterAll(async () => {
  if (process.env.MANDATE_TEST_DEBUG) console.error(server?.process.stderr());
  await server?.stop();
});

/** An authorization request of `clientId` asking for a mandate; `extra` overrides parameters. */
async function authorizationUrl(clientId: string, extra: Record<string, string | undefined> = {}) {
  const verifier = oauth.generateRandomCodeVerifier();
  const url = new URL(as.authorization_endpoint as string);
  const params: Record<string, string | undefined> = {
    client_id: clientId,
    response_type: "code",
    redirect_uri: REDIRECT,
    scope: "orders.read payments.create",
    resource: API,
    code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
    code_challenge_method: "S256",
    state: "s1",
    authorization_details: JSON.stringify(DETAILS),
    mandate: JSON.stringify(MANDATE),
    ...extra,
  };
  for (const [k, v] of Object.entries(params)) if (v !== undefined) url.searchParams.set(k, v);
  return { url, verifier };
}

/** Signs in over HTTP and returns the consent page's HTML with its form fields. */
async function consentPage(browser: Browser, url: URL) {
  let response = await browser.get(url.href);
  for (let hops = 0; hops < 6 && response.headers.get("location"); hops++) {
    response = await browser.get(new URL(response.headers.get("location") as string, url).href);
  }
  let html = await response.text();
  const field = (name: string) => new RegExp(`name="${name}" value="([^"]*)"`).exec(html)?.[1] ?? "";
  response = await browser.post(`${server.issuer}/login`, {
    interaction: field("interaction"),
    csrf: field("csrf"),
    username: "alice",
    password: DEV_PASSWORD,
  });
  for (let hops = 0; hops < 6 && response.headers.get("location"); hops++) {
    response = await browser.get(new URL(response.headers.get("location") as string, url).href);
  }
  html = await response.text();
  return { response, html, interaction: field("interaction"), csrf: field("csrf") };
}

describe.skipIf(!browserAvailable())("interactive mandate grant in headless Chromium", () => {
  it("shows the mandate in plain words, lets the human narrow it, and the code yields its tokens", async () => {
    const { url, verifier } = await authorizationUrl(agent.clientId);
    const browser = await launchChromium();
    let callback: string | undefined;
    try {
      const page = await browser.newPage();
      page.setDefaultTimeout(8000);
      await page.route(`${REDIRECT}**`, (route) => {
        callback = route.request().url();
        return route.fulfill({ status: 200, body: "done" });
      });
      await page.goto(url.href);
      await page.getByLabel("Username").fill("alice");
      await page.getByLabel("Password").fill(DEV_PASSWORD);
      const consent = page.waitForResponse((r) => r.url().includes("/consent"));
      await page.getByRole("button", { name: "Sign in" }).click();
      const headers = (await consent).headers();
      expect(headers["content-security-policy"]).toContain("default-src 'none'");
      expect(headers["content-security-policy"]).toContain("frame-ancestors 'none'");
      await page.getByRole("heading", { name: "Give Travel bot a mandate?" }).waitFor();
      expect(await page.locator("script").count()).toBe(0);
      expect(await page.locator("[style]").count()).toBe(0);
      const words = await page.locator("main").textContent();
      expect(words).toContain("Travel bot (agent");
      expect(words).toContain("run by dev-alice");
      expect(words).toContain("Books trips and pays for them");
      expect(words).toContain("Make payments of up to 50.00 EUR each");
      expect(words).toContain("At most 10 times in total");
      expect(words).toContain("which may not pass it further");
      // Narrow: no payments.create scope, at most 20 EUR per payment, 5 uses, no delegation.
      await page.getByLabel("Use the permission “payments.create” (payments.create)").uncheck();
      await page.getByLabel(/^At most \(amount, EUR\)/).fill("20");
      await page.getByLabel("At most 10 times in total: at most").fill("5");
      await page.getByLabel(/How many hops further/).fill("0");
      // Keyboard only: Approve is reachable and activates with Enter.
      await page.getByRole("button", { name: "Approve" }).focus();
      await page.keyboard.press("Enter");
      await expect.poll(() => callback, { timeout: 10_000 }).toBeTruthy();
    } finally {
      await browser.close();
    }

    // RFC 9449 §8: the first request learns the server's nonce.
    const { tokens, send: redeem } = await redeemCode(as, agent, keys, {
      callback: callback as string,
      state: "s1",
      verifier,
      redirectUri: REDIRECT,
    });
    const mandateId = tokens.mandate_id as string;
    expect(mandateId).toMatch(/^mdt_/);
    expect(tokens.scope).toBe("orders.read");
    expect(tokens.refresh_token).toBeUndefined();
    expect(tokens.authorization_details).toEqual([{ type: "payment_initiation", max_amount: 20, currency: "EUR" }]);
    const claims = JSON.parse(Buffer.from(tokens.access_token.split(".")[1] as string, "base64url").toString());
    expect(claims).toMatchObject({ sub: "dev-alice", mandate_id: mandateId, client_id: agent.clientId });

    const { mandate } = await server.issue.getMandate({ tenant: "demo", mandateId });
    expect(mandate?.principal?.id).toBe("dev-alice");
    expect(mandate?.agent?.id).toBe(agent.clientId);
    expect(mandate?.scopes).toEqual(["orders.read"]);
    expect(mandate?.resources).toEqual([API]);
    expect(mandate?.authorizationDetails).toEqual([{ type: "payment_initiation", max_amount: 20, currency: "EUR" }]);
    expect(mandate?.usageLimits.map((l) => [l.meter, l.maximum])).toEqual([["calls", 5]]);
    expect(mandate?.maxDelegationDepth).toBe(0);
    // How it was approved: the granted event says interactive, by the human, with the words shown.
    const granted = await grantedEvent(mandateId);
    expect(granted.consent.method).toBe("interactive");
    expect(granted.by).toEqual({ sub: "dev-alice" });
    expect(granted.consent.text).toContain("Make payments of up to 20.00 EUR each");
    expect(granted.consent.text).not.toContain("payments.create");

    // The code is used once.
    const again = await redeem();
    expect(again.status).toBe(400);
  });
});

/** The details of the mandate.granted.v1 audit entry of `mandateId` (Audit.Query by mandate id). */
async function grantedEvent(mandateId: string) {
  const isGranted = (e: { event?: { type: string } | undefined }) => e.event?.type === "mandate.granted.v1";
  const granted = (await mandateAuditEntries(server, mandateId, (entries) => entries.some(isGranted))).find(isGranted);
  if (granted) return granted.event?.details as unknown as GrantedDetails;
  throw new Error(`no mandate.granted.v1 for ${mandateId}`);
}

interface GrantedDetails {
  consent: { method: string; text: string };
  by: Record<string, string>;
}

describe("interactive mandate grant: refusals", () => {
  it("refuses a tampered form that widens any dimension, keeping the request open", async () => {
    const browser = new Browser();
    const { url } = await authorizationUrl(agent.clientId);
    const page = await consentPage(browser, url);
    expect(page.response.status).toBe(200);
    const base = {
      interaction: page.interaction,
      csrf: page.csrf,
      decision: "approve",
      "scope.0": "on",
      "detail.0": "on",
    };
    for (const [tampered, why] of [
      [{ "detail.0.max_amount": "500" }, "max_amount"],
      [{ "limit.0": "11" }, "usage_limits"],
      [{ max_delegation_depth: "3" }, "max_delegation_depth"],
      [{ expires_at: "2999-01-01T00:00" }, "expires_at"],
      [{ "detail.0.max_amount": "-1" }, "not a positive number"],
    ] as Array<[Record<string, string>, string]>) {
      const refused = await browser.post(`${server.issuer}/consent`, { ...base, ...tampered });
      expect(refused.status, why).toBe(400);
      const html = await refused.text();
      expect(html).toContain('role="alert"');
      expect(html).toContain(why);
    }
    // Nothing approved at all: a mandate grants at least one scope or detail.
    const empty = await browser.post(`${server.issuer}/consent`, {
      interaction: page.interaction,
      csrf: page.csrf,
      decision: "approve",
    });
    expect(empty.status).toBe(400);
    // Still open: a valid approval goes through.
    const ok = await browser.post(`${server.issuer}/consent`, base);
    expect([302, 303]).toContain(ok.status);
    expect(new URL(ok.headers.get("location") as string).searchParams.get("code")).toBeTruthy();
  });

  it("refuses an approval without the CSRF token, and sends access_denied on deny", async () => {
    const browser = new Browser();
    const { url } = await authorizationUrl(agent.clientId);
    const page = await consentPage(browser, url);
    const noCsrf = await browser.post(`${server.issuer}/consent`, {
      interaction: page.interaction,
      decision: "approve",
      "scope.0": "on",
    });
    expect(noCsrf.status).toBe(400);
    expect(await noCsrf.text()).toContain("expired");
    const denied = await browser.post(`${server.issuer}/consent`, {
      interaction: page.interaction,
      csrf: page.csrf,
      decision: "deny",
    });
    const location = new URL(denied.headers.get("location") as string);
    expect(location.searchParams.get("error")).toBe("access_denied");
    expect(location.searchParams.get("state")).toBe("s1");
  });

  it("refuses a client that is not an agent, and malformed authorization_details or mandate", async () => {
    const app = await server.register({
      clientName: "Plain app",
      redirectUris: [REDIRECT],
      grantTypes: ["authorization_code"],
      tokenEndpointAuthMethod: "client_secret_basic",
      scope: "orders.read",
      resources: [API],
    });
    const errorOf = async (clientId: string, extra: Record<string, string | undefined>) => {
      const { url } = await authorizationUrl(clientId, extra);
      const response = await new Browser().get(url.href);
      const location = new URL(response.headers.get("location") as string);
      return [location.searchParams.get("error"), location.searchParams.get("error_description")];
    };
    expect((await errorOf(app.clientId, { scope: "orders.read" }))[0]).toBe("unauthorized_client");
    const cases: Array<[Record<string, string | undefined>, string, string]> = [
      [{ authorization_details: "not json" }, "invalid_authorization_details", "not valid JSON"],
      [{ authorization_details: "{}" }, "invalid_authorization_details", "array"],
      [{ authorization_details: '[{"max_amount":5}]' }, "invalid_authorization_details", "type"],
      [{ mandate: undefined }, "invalid_request", "mandate is required"],
      [{ mandate: '{"expires_in":60,"forever":true}' }, "invalid_request", "mandate.forever"],
      [{ mandate: '{"max_delegation_depth":1}' }, "invalid_request", "expire_time"],
      [
        { mandate: '{"expires_in":60,"usage_limits":[{"meter":"calls","maximum":0}]}' },
        "invalid_request",
        "usage_limits[0].maximum",
      ],
      [{ mandate: '{"expires_in":60,"may_act":["nobody"]}' }, "invalid_request", "may_act[0]"],
      [{ mandate: '{"expires_in":60,"resources":["https://elsewhere.example/"]}' }, "invalid_target", "elsewhere"],
    ];
    for (const [extra, error, description] of cases) {
      const [code, text] = await errorOf(agent.clientId, extra);
      expect(code, JSON.stringify(extra)).toBe(error);
      expect(text).toContain(description);
    }
  });

  it("takes the mandate from a pushed request (RFC 9126) and refuses a malformed one at PAR", async () => {
    const client = { client_id: agent.clientId };
    const auth = oauth.ClientSecretBasic(agent.clientSecret);
    const verifier = oauth.generateRandomCodeVerifier();
    const params = {
      response_type: "code",
      redirect_uri: REDIRECT,
      scope: "orders.read",
      resource: API,
      code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
      code_challenge_method: "S256",
      authorization_details: JSON.stringify(DETAILS),
      mandate: JSON.stringify(MANDATE),
    };
    const bad = await oauth.pushedAuthorizationRequest(
      as,
      client,
      auth,
      { ...params, authorization_details: "[1]" },
      insecure,
    );
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: "invalid_authorization_details" });
    const pushed = await oauth.processPushedAuthorizationResponse(
      as,
      client,
      await oauth.pushedAuthorizationRequest(as, client, auth, params, insecure),
    );
    const url = new URL(as.authorization_endpoint as string);
    url.searchParams.set("client_id", agent.clientId);
    url.searchParams.set("request_uri", pushed.request_uri);
    const page = await consentPage(new Browser(), url);
    expect(page.response.status).toBe(200);
    expect(page.html).toContain("Make payments of up to 50.00 EUR each");
  });
});
