// "My agents" (issue 17 item 2: the agent's owner creates a one-time enrollment token on a page) in
// headless Chromium against a running `mandate dev`: the dev user signs in, sees the agents they own
// with their current certificates, creates an enrollment token — shown once with the exact
// `mandate agents enroll` command, stored only as its SHA-256 with its creator and the configured
// lifetime — and revokes an agent's certificates. Negatives: no session (sign-in redirect), another
// owner's agent and an application (404, even with a valid CSRF token), a POST without or with a
// wrong CSRF token (403, nothing created); the strict CSP header and no script.
import { execFileSync } from "node:child_process";
import { createHash, randomBytes, X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Store } from "../../services/shared/store/store.ts";
import { browserAvailable, expectStrictPage, launchChromium } from "../helpers/browser.ts";
import { runMandate } from "../helpers/mandate-process.ts";
import { DEV_PASSWORD, type OAuthServer, registerKeylessAgent, startOAuthServer } from "../helpers/oauth-server.ts";

const ALICE = "dev-alice";
const TOKEN = /^mandate_enroll_[A-Za-z0-9_-]{43}$/;
const DAY = 86_400_000;

let server: OAuthServer;
let browser: Browser;
let store: Store;
let ordersAgent: string;
let bobsAgent: string;
let application: string;

const page = (path = "") => `${server.issuer}/agents${path}`;

async function signedIn(): Promise<Page> {
  const context = await browser.newContext();
  const tab = await context.newPage();
  await tab.goto(page());
  expect(new URL(tab.url()).pathname).toBe("/t/demo/agents/login");
  await tab.fill("#username", "alice");
  await tab.fill("#password", DEV_PASSWORD);
  await tab.press("#password", "Enter");
  await tab.waitForURL(page());
  return tab;
}

function tokensOf(clientId: string) {
  return store
    .forTenant("demo")
    .db.selectFrom("agent_enrollment_tokens")
    .selectAll()
    .where("tenant_id", "=", "demo")
    .where("client_id", "=", clientId)
    .execute();
}

/** The audit log's entry of `type` about `clientId`, once the outbox has delivered it. */
async function auditEntry(type: string, clientId: string) {
  for (let i = 0; i < 100; i++) {
    const entry = await store
      .forTenant("demo")
      .db.selectFrom("audit_log")
      .select(["body", "subject", "client_id"])
      .where("tenant_id", "=", "demo")
      .where("type", "=", type)
      .where("client_id", "=", clientId)
      .executeTakeFirst();
    if (entry) return entry;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`no ${type} entry about ${clientId} in the audit log`);
}

/** A certificate row as enrollment records it (this suite is about the page, not the CA). */
async function recordCertificate(clientId: string, serial: string, notAfter: number): Promise<void> {
  const now = Date.now();
  await store
    .forTenant("demo")
    .db.insertInto("agent_certificates")
    .values({
      tenant_id: "demo",
      serial,
      client_id: clientId,
      spiffe_id: `spiffe://demo.agents.mandate.local/agent/${clientId}`,
      x5t_s256: randomBytes(32).toString("base64url"),
      issuer_kid: "test",
      not_before: now - 60_000,
      not_after: notAfter,
      issued_at: now - 60_000,
      proof: "enrollment_token",
      renewed_from: null,
      revoked_at: null,
      revocation_reason: null,
    })
    .execute();
}

beforeAll(async () => {
  server = await startOAuthServer();
  store = Store.open({ url: server.database, poolSize: 1 });
  ordersAgent = await registerKeylessAgent(server, {
    clientName: "Orders agent",
    owner: ALICE,
    description: "Places purchase orders",
  });
  bobsAgent = await registerKeylessAgent(server, { clientName: "Bob's agent", owner: "dev-bob" });
  application = (await server.register({ clientName: "An application", grantTypes: ["client_credentials"] })).clientId;
  if (browserAvailable()) browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await store?.close();
  await server?.stop();
});

describe.skipIf(!browserAvailable())("my agents", () => {
  it("sends a browser without a session to sign in", async () => {
    const response = await fetch(page(), { redirect: "manual" });
    expect(response.status).toBe(303);
    expect(response.headers.get("location")).toBe(page("/login"));
    const action = await fetch(page(`/${ordersAgent}/enrollment-token`), { method: "POST", redirect: "manual" });
    expect(action.status).toBe(303);
    expect(await tokensOf(ordersAgent)).toEqual([]);
  });

  it("lists the owner's agents with their current certificates; strict CSP, no script", async () => {
    await recordCertificate(ordersAgent, "0A1B2C", Date.now() + 3600_000);
    // Expired: not current, not shown.
    await recordCertificate(ordersAgent, "0EEEEE", Date.now() - 1000);
    const tab = await signedIn();
    await expectStrictPage(tab, await tab.reload());
    const item = tab.locator(`li[data-agent="${ordersAgent}"]`);
    await expect(item.locator("h2").innerText()).resolves.toBe("Orders agent");
    const text = await item.innerText();
    expect(text).toContain("Places purchase orders");
    expect(text).toMatch(/0A1B2C — valid until \d{4}-\d{2}-\d{2}/);
    expect(text).not.toContain("0EEEEE");
    // Not someone else's agent, nor an application.
    expect(await tab.locator(`li[data-agent="${bobsAgent}"]`).count()).toBe(0);
    expect(await tab.locator(`li[data-agent="${application}"]`).count()).toBe(0);
    await tab.context().close();
  });

  it("creates a one-time enrollment token, shown once with the enroll command; only its hash is stored", async () => {
    const tab = await signedIn();
    await tab.locator(`li[data-agent="${ordersAgent}"] button`, { hasText: "Create an enrollment token" }).click();
    await tab.waitForURL(page(`/${ordersAgent}/enrollment-token`));
    expect(await tab.locator("h1").innerText()).toBe("Enrollment token");
    const token = await tab.locator("#token").inputValue();
    expect(token).toMatch(TOKEN);
    expect(await tab.locator("pre.command").innerText()).toBe(
      `mandate agents enroll --issuer ${server.issuer} --token ${token} --key agent-key.pem --out agent.pem`,
    );
    const rows = await tokensOf(ordersAgent);
    expect(rows).toHaveLength(1);
    const row = rows[0] as (typeof rows)[number];
    // Only the SHA-256 is kept (base64url), never the token; created by the owner, for the configured day.
    expect(row.token_hash).toBe(createHash("sha256").update(token).digest("base64url"));
    expect(JSON.stringify(row)).not.toContain(token.slice("mandate_enroll_".length));
    expect(row.created_by).toBe(ALICE);
    expect(Number(row.expires_at) - Number(row.created_at)).toBe(DAY);
    expect(row.used_at).toBeNull();
    // Audited with the token's row: who created it (the owner, a salted reference), never the token.
    const entry = await auditEntry("agent.enrollment_token.created.v1", ordersAgent);
    expect(entry.subject).toMatch(/^h:[A-Za-z0-9_-]{43}$/);
    const event = (JSON.parse(entry.body) as { event: { details: Record<string, unknown> } }).event;
    expect(event.details).toMatchObject({ client_id: ordersAgent, by: { role: "owner", via: "my-agents page" } });
    expect(entry.body).not.toContain(token.slice("mandate_enroll_".length));
    // Shown once: the list does not show it again.
    await tab.goto(page());
    expect(await tab.content()).not.toContain(token);
    await tab.context().close();
  });

  it("the token shown enrolls the agent with the command shown, once", { timeout: 120_000 }, async () => {
    const tab = await signedIn();
    await tab.locator(`li[data-agent="${ordersAgent}"] button`, { hasText: "Create an enrollment token" }).click();
    const token = await tab.locator("#token").inputValue();
    const shown = await tab.locator("pre.command").innerText();
    await tab.context().close();
    // The agent's machine: a key made there (by openssl), then exactly the command the page showed.
    const machine = mkdtempSync(join(tmpdir(), "mandate-agent-"));
    execFileSync(
      "openssl",
      ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "agent-key.pem"],
      {
        cwd: machine,
        stdio: "ignore",
      },
    );
    const [program, ...args] = shown.split(" ");
    expect(program).toBe("mandate");
    const enrolled = await runMandate(args, {}, machine);
    expect(enrolled.code, enrolled.stderr).toBe(0);
    const certificate = new X509Certificate(readFileSync(join(machine, "agent.pem")));
    expect(certificate.subjectAltName).toBe(`URI:spiffe://demo.agents.mandate.local/agent/${ordersAgent}`);
    const row = (await tokensOf(ordersAgent)).find(
      (t) => t.token_hash === createHash("sha256").update(token).digest("base64url"),
    );
    expect(row?.used_serial).toBe(certificate.serialNumber.toUpperCase());
    // One-time: the same command again is refused.
    const again = await runMandate(args, {}, machine);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toContain("invalid_grant");
  });

  it("refuses another owner's agent and an application (404), and forms without the CSRF token (403)", async () => {
    const tab = await signedIn();
    const csrf = await tab.locator('input[name="csrf"]').first().inputValue();
    const request = tab.context().request;
    for (const id of [bobsAgent, application, "no-such-agent"]) {
      for (const action of ["enrollment-token", "revoke-certificates"]) {
        const response = await request.post(page(`/${id}/${action}`), { form: { csrf }, maxRedirects: 0 });
        expect(response.status(), `${id} ${action}`).toBe(404);
      }
    }
    expect(await tokensOf(bobsAgent)).toEqual([]);
    const before = (await tokensOf(ordersAgent)).length;
    const noCsrf = await request.post(page(`/${ordersAgent}/enrollment-token`), { form: {}, maxRedirects: 0 });
    expect(noCsrf.status()).toBe(403);
    const wrongCsrf = await request.post(page(`/${ordersAgent}/revoke-certificates`), {
      form: { csrf: randomBytes(32).toString("base64url") },
      maxRedirects: 0,
    });
    expect(wrongCsrf.status()).toBe(403);
    expect(await tokensOf(ordersAgent)).toHaveLength(before);
    const certificate = await store
      .forTenant("demo")
      .db.selectFrom("agent_certificates")
      .select("revoked_at")
      .where("tenant_id", "=", "demo")
      .where("serial", "=", "0A1B2C")
      .executeTakeFirstOrThrow();
    expect(certificate.revoked_at).toBeNull();
    // GET is not an action.
    expect((await request.get(page(`/${ordersAgent}/enrollment-token`), { maxRedirects: 0 })).status()).toBe(405);
    await tab.context().close();
  });

  it("revokes the agent's certificates and its unused enrollment tokens", async () => {
    const tab = await signedIn();
    await tab.locator(`li[data-agent="${ordersAgent}"] button`, { hasText: "Revoke its certificates" }).click();
    // Every unrevoked row: the recorded one, the expired one and the enrolled one.
    await tab.waitForURL(`${page()}?revoked=${ordersAgent}&count=3`);
    expect(await tab.locator("[role=status]").innerText()).toContain("3 certificate(s) revoked for Orders agent");
    const item = tab.locator(`li[data-agent="${ordersAgent}"]`);
    expect(await item.locator('li[data-serial="0A1B2C"]').getAttribute("data-state")).toBe("revoked");
    expect(await item.locator("button", { hasText: "Revoke its certificates" }).count()).toBe(0);
    const tokens = await tokensOf(ordersAgent);
    // Audited with the owner as a salted subject only.
    const entry = await auditEntry("agent.certificates.revoked.v1", ordersAgent);
    expect(entry.subject).toMatch(/^h:[A-Za-z0-9_-]{43}$/);
    expect(entry.body).not.toContain(ALICE);
    const unused = tokens.filter((t) => t.used_at === null);
    expect(unused.length).toBeGreaterThan(0);
    expect(unused.every((t) => Number(t.expires_at) <= Date.now())).toBe(true);
    await tab.context().close();
  });
});
