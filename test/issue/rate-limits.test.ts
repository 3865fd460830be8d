// Abuse limits on the public OAuth surface, against a running `mandate dev` configured with tiny
// limits (the defaults are far above what tests do): per-client quotas, registrations per IP,
// failed logins per account and per IP, failed client authentications per client id and per IP,
// authorization requests per IP. Bounded bursts only; no timing assertions. The order of the tests
// matters: every request comes from 127.0.0.1, so the per-IP limits are spent last.
import { createHash, randomBytes } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OAuthClientRateLimitSchema } from "../../gen/mandate/v1/clients_pb.js";
import { Browser, DEV_PASSWORD, type OAuthServer, startOAuthServer } from "../helpers/oauth-server.ts";

let server: OAuthServer;

beforeAll(async () => {
  server = await startOAuthServer({
    // "<refill per second>:<burst>"; refills of 0.001/s never add a token during the test.
    MANDATE_RATE_LIMITS_REGISTRATION: "0.001:3",
    MANDATE_RATE_LIMITS_LOGIN_PER_ACCOUNT: "0.001:3",
    MANDATE_RATE_LIMITS_LOGIN_PER_IP: "0.001:5",
    MANDATE_RATE_LIMITS_FAILED_CLIENT_AUTH_PER_CLIENT: "0.001:3",
    MANDATE_RATE_LIMITS_FAILED_CLIENT_AUTH_PER_IP: "0.001:8",
    MANDATE_RATE_LIMITS_AUTHORIZE: "0.001:40",
  });
}, 60_000);
afterAll(async () => {
  if (process.env.MANDATE_TEST_DEBUG) console.error(server?.process.stderr());
  await server?.stop();
});

const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString("base64")}`;
const token = (id: string, secret: string) =>
  fetch(`${server.issuer}/oauth2/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", authorization: basic(id, secret) },
    body: "grant_type=client_credentials",
  });

function expectTooMany(response: Response): void {
  expect(response.status).toBe(429);
  expect(Number(response.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
}

describe("per-client quota (client metadata rate_limit)", () => {
  it("holds a client with a quota to it; a client without one is not throttled", async () => {
    const limited = await server.register({
      grantTypes: ["client_credentials"],
      rateLimit: create(OAuthClientRateLimitSchema, { requestsPerSecond: 0.001, burst: 2 }),
    });
    const created = await server.issue.getClient({ tenant: "demo", clientId: limited.clientId });
    expect(created.client?.rateLimit).toMatchObject({ requestsPerSecond: 0.001, burst: 2 });
    const free = await server.register({ grantTypes: ["client_credentials"] });
    expect((await token(limited.clientId, limited.clientSecret)).status).toBe(200);
    expect((await token(limited.clientId, limited.clientSecret)).status).toBe(200);
    const refused = await token(limited.clientId, limited.clientSecret);
    expectTooMany(refused);
    expect(await refused.json()).toMatchObject({ error: "slow_down" });
    for (let i = 0; i < 10; i++) expect((await token(free.clientId, free.clientSecret)).status).toBe(200);
  });
});

describe("registration per IP", () => {
  it("answers 429 with Retry-After once the address registered too often; X-Forwarded-For is not believed", async () => {
    const register = () =>
      fetch(`${server.issuer}/oauth2/register`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "x-forwarded-for": `203.0.113.${Math.floor(Math.random() * 250)}`,
        },
        body: JSON.stringify({ redirect_uris: ["https://app.example.com/cb"] }),
      });
    for (let i = 0; i < 3; i++) expect((await register()).status).toBe(201);
    const refused = await register();
    expectTooMany(refused);
    expect(await refused.json()).toMatchObject({ error: "slow_down" });
  });
});

describe("failed logins per account and per IP", () => {
  /** Starts an authorization and returns the login form's hidden fields, in a browser of its own. */
  async function loginForm(clientId: string) {
    const browser = new Browser();
    const verifier = randomBytes(32).toString("base64url");
    const start = await browser.get(
      `${server.issuer}/oauth2/authorize?${new URLSearchParams({
        client_id: clientId,
        redirect_uri: "https://app.example.com/cb",
        response_type: "code",
        scope: "openid",
        code_challenge: createHash("sha256").update(verifier).digest("base64url"),
        code_challenge_method: "S256",
      })}`,
    );
    const loginUrl = new URL(start.headers.get("location") as string, server.issuer).toString();
    const html = await (await browser.get(loginUrl)).text();
    const field = (name: string) => new RegExp(`name="${name}" value="([^"]*)"`).exec(html)?.[1] ?? "";
    const signIn = (username: string, password: string) =>
      browser.post(`${server.issuer}/login`, {
        interaction: field("interaction"),
        csrf: field("csrf"),
        username,
        password,
      });
    return { signIn };
  }

  it("stops guessing an account's password, even with the right one, and says when to try again", async () => {
    const { clientId } = await server.register({ redirectUris: ["https://app.example.com/cb"] });
    const { signIn } = await loginForm(clientId);
    expect((await signIn("alice", "wrong-1")).status).toBe(401);
    expect((await signIn("alice", "wrong-2")).status).toBe(401);
    const third = await signIn("alice", "wrong-3");
    expectTooMany(third);
    const right = await signIn("alice", DEV_PASSWORD);
    expectTooMany(right);
    expect(right.headers.get("location")).toBeNull();
    expect(await right.text()).toMatch(/Too many failed sign-ins\. Try again in \d+ (minutes|seconds)/);
    // Another account from the same address still may try (per-IP: 5 failures)...
    expect((await signIn("mallory", "guess")).status).toBe(401);
    // ...until the address itself has failed too often.
    expectTooMany(await signIn("trudy", "guess"));
  });
});

describe("failed client authentications per client id and per IP", () => {
  it("429 for that client id (even with the right secret), another client unaffected, then the whole address", async () => {
    const victim = await server.register({ grantTypes: ["client_credentials"] });
    const bystander = await server.register({ grantTypes: ["client_credentials"] });
    for (let i = 0; i < 3; i++) expect((await token(victim.clientId, "wrong")).status).toBe(401);
    const locked = await token(victim.clientId, victim.clientSecret);
    expectTooMany(locked);
    expect(await locked.json()).toMatchObject({ error: "slow_down" });
    // Successes are not counted; another client from the same address is unaffected.
    expect((await token(bystander.clientId, bystander.clientSecret)).status).toBe(200);
    // Failures under other client ids spend the address's budget (8): then every client id is refused.
    for (let i = 0; i < 5; i++) expect((await token(`ghost-${i}`, "x")).status).toBe(401);
    expectTooMany(await token(bystander.clientId, bystander.clientSecret));
  });
});

describe("authorization requests per IP", () => {
  it("answers a 429 page with Retry-After once the address sent too many", async () => {
    let last: Response | undefined;
    for (let i = 0; i < 45; i++) {
      last = await fetch(`${server.issuer}/oauth2/authorize?client_id=nobody`);
      if (last.status === 429) break;
    }
    expectTooMany(last as Response);
    expect(last?.headers.get("content-type")).toMatch(/^text\/html/);
    expect(await last?.text()).toMatch(/Try again in \d+ (minutes|seconds)/);
  });
});
