// "My mandates" (issue 15 item 8) in headless Chromium against a running `mandate dev`: the dev user
// signs in and sees the mandates they granted — the agent by name, what it may do in plain words,
// usage so far against its limits, the delegation tree — downloads a receipt that verifies offline,
// and revokes a mandate with the keyboard alone through the confirmation step, after which it and
// its sub-mandate show revoked. Negatives: no session (sign-in redirect), another principal's
// mandate (404 to see, revoke or download), a POST without the CSRF token (403, nothing revoked);
// the strict CSP header and no script anywhere.
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PartyKind } from "../../gen/mandate/v1/common_pb.js";
import { MandateState } from "../../gen/mandate/v1/issue_pb.js";
import { verifyReceipt } from "../../services/issue/mandates/receipt-verify.ts";
import { browserAvailable, expectStrictPage, launchChromium } from "../helpers/browser.ts";
import { DEV_PASSWORD, type OAuthServer, registerKeylessAgent, startOAuthServer } from "../helpers/oauth-server.ts";
import { consumeCalls } from "../helpers/store.ts";

const API = "https://api.example.com/";
const DAY = 86_400_000;
const ALICE = "dev-alice";

let server: OAuthServer;
let browser: Browser;
let travelBot: string;
let helper: string;
let rootId: string;
let subId: string;
let bobsId: string;

function agentClient(name: string) {
  return registerKeylessAgent(server, {
    clientName: name,
    owner: ALICE,
    grantTypes: ["client_credentials"],
    scope: "orders.read",
    resources: [API],
  });
}

async function grant(principal: string, agent: string, fields: Record<string, unknown> = {}) {
  const { mandate } = await server.issue.createMandate({
    tenant: "demo",
    mandate: {
      principal: { id: principal, kind: PartyKind.HUMAN },
      agent: { id: agent, kind: PartyKind.AGENT },
      scopes: ["orders.read"],
      resources: [API],
      expireTime: timestampFromMs(Date.now() + 7 * DAY),
      usageLimits: [{ meter: "calls", maximum: 10 }],
      maxDelegationDepth: 1,
      mayAct: [helper],
      ...fields,
    },
  });
  return mandate?.id as string;
}

/** Waits until the grant is in the audit log, so its receipt can be downloaded. */
async function receiptReady(mandateId: string) {
  for (let i = 0; i < 100; i++) {
    try {
      await server.issue.getMandateReceipt({ tenant: "demo", mandateId });
      return;
    } catch (error) {
      if (!(error instanceof ConnectError && error.code === Code.Unavailable)) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

const page = (path = "") => `${server.issuer}/mandates${path}`;

beforeAll(async () => {
  server = await startOAuthServer();
  travelBot = await agentClient("Travel bot");
  helper = await agentClient("Booking helper");
  rootId = await grant(ALICE, travelBot);
  subId = await grant(ALICE, helper, {
    parentMandateId: rootId,
    expireTime: undefined,
    maxDelegationDepth: 0,
    mayAct: [],
  });
  bobsId = await grant("bob", travelBot);
  await consumeCalls(server.database, rootId, ["k1", "k2"]);
  if (browserAvailable()) browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

async function signedIn(): Promise<Page> {
  const context = await browser.newContext({ acceptDownloads: true });
  const tab = await context.newPage();
  await tab.goto(page());
  expect(new URL(tab.url()).pathname).toBe("/t/demo/mandates/login");
  await tab.fill("#username", "alice");
  await tab.fill("#password", DEV_PASSWORD);
  await tab.press("#password", "Enter");
  await tab.waitForURL(page());
  return tab;
}

describe.skipIf(!browserAvailable())("my mandates", () => {
  it("sends a browser without a session to sign in", async () => {
    const response = await fetch(page(), { redirect: "manual" });
    expect(response.status).toBe(303);
    expect(response.headers.get("location")).toBe(page("/login"));
    const receipt = await fetch(page(`/${rootId}/receipt`), { redirect: "manual" });
    expect(receipt.status).toBe(303);
  });

  it("lists the principal's mandates in plain words, with usage and the delegation tree; strict CSP, no script", async () => {
    const tab = await signedIn();
    await expectStrictPage(tab, await tab.reload());

    const root = tab.locator(`li[data-mandate="${rootId}"]`);
    await expect(root.locator("h2").innerText()).resolves.toContain("Travel bot");
    const text = await root.innerText();
    expect(text).toContain("Active");
    expect(text).toContain("At most 10 times in total: 2 used, 8 left");
    expect(text).toMatch(/until \d{4}-\d{2}-\d{2}/);
    // The sub-mandate under its parent, with its agent.
    const sub = root.locator(`ul.tree li[data-mandate="${subId}"]`);
    await expect(sub.locator("h3").innerText()).resolves.toContain("Booking helper");
    // Not someone else's.
    expect(await tab.locator(`li[data-mandate="${bobsId}"]`).count()).toBe(0);
    await tab.context().close();
  });

  it("downloads the receipt, which verifies offline", async () => {
    await receiptReady(rootId);
    const tab = await signedIn();
    const [download] = await Promise.all([
      tab.waitForEvent("download"),
      tab.locator(`li[data-mandate="${rootId}"] > p.actions a[href$="/receipt"]`).click(),
    ]);
    expect(download.suggestedFilename()).toBe(`mandate-receipt-${rootId}.json`);
    const bundle = JSON.parse(readFileSync((await download.path()) as string, "utf8"));
    const report = await verifyReceipt(bundle);
    expect(report).toMatchObject({ ok: true, mandateId: rootId });
    expect(bundle.mandate.principal).toBe(ALICE);
    await tab.context().close();
  });

  it("refuses another principal's mandate (404) and a POST without the CSRF token (403)", async () => {
    const tab = await signedIn();
    for (const path of [`/${bobsId}/revoke`, `/${bobsId}/receipt`, "/mdt_nope/revoke"]) {
      const response = await tab.goto(page(path));
      expect(response?.status(), path).toBe(404);
    }
    // The page's CSRF token, and a POST for bob's mandate with it: still 404.
    await tab.goto(page(`/${rootId}/revoke`));
    const csrf = await tab.locator('input[name="csrf"]').inputValue();
    const request = tab.context().request;
    const foreign = await request.post(page(`/${bobsId}/revoke`), { form: { csrf, reason: "x" }, maxRedirects: 0 });
    expect(foreign.status()).toBe(404);
    const noCsrf = await request.post(page(`/${rootId}/revoke`), { form: { reason: "x" }, maxRedirects: 0 });
    expect(noCsrf.status()).toBe(403);
    const wrongCsrf = await request.post(page(`/${rootId}/revoke`), {
      form: { csrf: randomBytes(32).toString("base64url"), reason: "x" },
      maxRedirects: 0,
    });
    expect(wrongCsrf.status()).toBe(403);
    for (const id of [rootId, bobsId]) {
      expect((await server.issue.getMandate({ tenant: "demo", mandateId: id })).mandate?.state).toBe(
        MandateState.ACTIVE,
      );
    }
    await tab.context().close();
  });

  it("revokes with the keyboard alone, through the confirmation; the mandate and its sub-mandate show revoked", async () => {
    const tab = await signedIn();
    const target = `${rootId}/revoke`;
    let focused = "";
    for (let i = 0; i < 60 && !focused.endsWith(target); i++) {
      await tab.keyboard.press("Tab");
      focused = await tab.evaluate(() => (document.activeElement as HTMLAnchorElement | null)?.href ?? "");
    }
    expect(focused).toBe(page(`/${target}`));
    await tab.keyboard.press("Enter");
    await tab.waitForURL(page(`/${target}`));
    expect(await tab.locator("h1").innerText()).toBe("Revoke this mandate?");
    expect(await tab.locator("main").innerText()).toContain("the 1 mandate(s) it passed on");
    // The reason field has the focus (autofocus, once the page is ready); then Tab to the Revoke button and Enter.
    await tab.waitForFunction(() => document.activeElement?.id === "reason");
    await tab.keyboard.type("I no longer travel");
    await tab.keyboard.press("Tab");
    expect(await tab.evaluate(() => document.activeElement?.textContent)).toBe("Revoke");
    await tab.keyboard.press("Enter");
    await tab.waitForURL(`${page()}?revoked=${rootId}`);
    expect(await tab.locator("[role=status]").innerText()).toContain(rootId);
    for (const id of [rootId, subId]) {
      expect(await tab.locator(`li[data-mandate="${id}"]`).getAttribute("data-state")).toBe("revoked");
    }
    expect(await tab.locator(`li[data-mandate="${rootId}"] a[href$="/revoke"]`).count()).toBe(0);
    const { mandate } = await server.issue.getMandate({ tenant: "demo", mandateId: rootId });
    expect(mandate).toMatchObject({
      state: MandateState.REVOKED,
      revokeReason: "revoked by the principal: I no longer travel",
      revokedBy: { role: "principal" },
    });
    const { mandate: sub } = await server.issue.getMandate({ tenant: "demo", mandateId: subId });
    expect(sub?.state).toBe(MandateState.REVOKED);
    await tab.context().close();
  });
});
