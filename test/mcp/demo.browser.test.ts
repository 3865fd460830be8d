// Issue 19's Show, end to end: a real Mandate (`mandate dev`, as `npm start` runs it), the demo MCP
// server as `mandate demo mcp --json` starts it (its client registered, the demo policy activated),
// and the example agent (services/mcp/demo/agent.ts) with the MCP SDK client. Alice signs in and
// approves the mandate in headless Chromium; then: a tool allowed, one denied by the policy
// (JSON-RPC -32001), a payment needing MFA (RFC 9470 insufficient_user_authentication), a tool
// needing a scope the mandate lacks (403 insufficient_scope), a token for another audience refused, a
// DPoP-bound token with a proof from another key refused (the same token with its own key accepted),
// and alice revoking the mandate on "my mandates": the next call is refused and the working agent
// stops, saying the mandate was revoked. Then the same story through `mandate demo mcp agent --json`,
// as the README tells users to run it.
import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bearerToken } from "../../services/cli/credentials.ts";
import {
  askForMandate,
  callTool,
  connect,
  type DemoAgentEvent,
  type DemoAgentOptions,
  type RegisteredAgent,
  registerAgent,
  workUntilStopped,
} from "../../services/mcp/demo/agent.ts";
import { agentOf, discover, dpopProof, exchangeMandate, newAgentKey } from "../helpers/agents.ts";
import { browserAvailable, launchChromium } from "../helpers/browser.ts";
import { DEV_PASSWORD, type OAuthServer, startOAuthServer } from "../helpers/oauth-server.ts";

const BIN = new URL("../../bin/mandate.js", import.meta.url).pathname;

let server: OAuthServer;
let demo: ChildProcess;
let mcpUrl: string;
let browser: Browser;
const events: DemoAgentEvent[] = [];

let demoClientId: string;

/** `mandate demo mcp --json` against `server`, resolved with its "listening" line. */
async function startDemo(): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(
    process.execPath,
    [
      BIN,
      "demo",
      "mcp",
      "--json",
      "--port",
      "0",
      "--issuer",
      server.issuer,
      "--address",
      server.process.summary.grpc as string,
    ],
    { env: { ...process.env, MANDATE_ADMIN_FILE: server.process.adminFile }, stdio: ["ignore", "pipe", "pipe"] },
  );
  let stderr = "";
  child.stderr?.on("data", (d) => (stderr += d));
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
      const step = JSON.parse(line) as { step: string; url?: string; client_id?: string };
      if (step.step === "client") demoClientId = step.client_id as string;
      if (step.step === "listening") resolve(step.url as string);
    });
    child.once("exit", (code) => reject(new Error(`mandate demo mcp exited with ${code}: ${stderr}`)));
  });
  return { child, url };
}

beforeAll(async () => {
  server = await startOAuthServer();
  ({ child: demo, url: mcpUrl } = await startDemo());
  if (browserAvailable()) browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  demo?.kill("SIGTERM");
  await server?.stop();
});

function agentOptions(initialAccessToken: string): DemoAgentOptions {
  return { issuer: server.issuer, mcpUrl, initialAccessToken, intervalMs: 100, report: (e) => events.push(e) };
}

/** Alice, in the browser, signs in on the consent page the agent sent her to and approves. */
async function approve(tab: Page, from = events): Promise<void> {
  const consent = from.find((e) => e.step === "consent") as Extract<DemoAgentEvent, { step: "consent" }>;
  await tab.goto(consent.url);
  await tab.getByLabel("Username").fill("alice");
  await tab.getByLabel("Password").fill(DEV_PASSWORD);
  await tab.getByRole("button", { name: "Sign in" }).click();
  await tab.getByRole("heading", { name: "Give Demo MCP agent a mandate?" }).waitFor();
  await tab.getByRole("button", { name: "Approve" }).click();
}

/** Alice revokes the mandate on "my mandates", through its confirmation page. */
async function revoke(tab: Page, mandateId: string): Promise<void> {
  const mandates = `${server.issuer}/mandates`;
  await tab.goto(mandates);
  if (new URL(tab.url()).pathname.endsWith("/mandates/login")) {
    await tab.fill("#username", "alice");
    await tab.fill("#password", DEV_PASSWORD);
    await tab.press("#password", "Enter");
    await tab.waitForURL(mandates);
  }
  await tab.locator(`li[data-mandate="${mandateId}"] a[href$="/revoke"]`).click();
  await tab.getByRole("button", { name: "Revoke" }).click();
  await tab.waitForURL(`${mandates}?revoked=${mandateId}`);
}

/** A raw MCP request (tools/list) with the given headers: its status and WWW-Authenticate. */
async function rawToolsList(headers: Record<string, string>) {
  const response = await fetch(mcpUrl, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...headers },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }),
  });
  return {
    status: response.status,
    challenge: response.headers.get("www-authenticate") ?? "",
    body: await response.text(),
  };
}

describe.skipIf(!browserAvailable())("mandate demo mcp, end to end", () => {
  let agent: RegisteredAgent;
  let client: Client;
  let mandateId: string;

  afterAll(async () => {
    await client?.close();
    await agent?.close();
  });

  it("alice approves the agent's mandate in the browser; the agent connects with it", async () => {
    const options = agentOptions((await bearerToken(server.process.adminFile)).access_token);
    agent = await registerAgent(options);
    const granted = askForMandate(agent, options);
    await expect.poll(() => events.some((e) => e.step === "consent")).toBe(true);
    const tab = await (await browser.newContext()).newPage();
    tab.setDefaultTimeout(10_000);
    await approve(tab);
    mandateId = await granted;
    expect(mandateId).toMatch(/^mdt_/);
    client = await connect(agent, mandateId, options);
    await tab.context().close();
  });

  it("calls an allowed tool; the policy denies another (-32001); payment needs step-up; a missing scope is asked for", async () => {
    expect(await callTool(client, "orders_list")).toMatchObject({ outcome: "allowed" });
    const order = await callTool(client, "order_get", { order_id: "ord_1002" });
    expect(order).toMatchObject({ outcome: "allowed" });
    expect(order.detail).toContain("Coffee beans");
    const cancel = await callTool(client, "order_cancel", { order_id: "ord_1002" });
    expect(cancel).toMatchObject({ outcome: "denied" });
    expect(cancel.detail).toContain("-32001");
    expect(cancel.detail).toContain("orders.cancel is for humans");
    const payment = await callTool(client, "payment_send", { order_id: "ord_1002", amount: 24 });
    expect(payment).toMatchObject({ outcome: "step_up" });
    expect(payment.detail).toContain("urn:mandate:acr:mfa");
    const refund = await callTool(client, "order_refund", { order_id: "ord_1001" });
    expect(refund).toMatchObject({ outcome: "insufficient_scope" });
    expect(refund.detail).toContain("orders.refund");
    // Counted on the mandate: orders_list 1 + order_get 5 (its x-mandate-usage); refusals count nothing.
    const { mandate } = await server.issue.getMandate({ tenant: "demo", mandateId });
    expect(mandate?.usage.map((u) => [u.meter, Number(u.used)])).toEqual([["calls", 6]]);
  });

  it("refuses a token for another audience and a DPoP-bound token with another key's proof", async () => {
    // The admin's own token: valid, of the same Mandate, for Mandate's API — not for this server.
    const foreign = (await bearerToken(server.process.adminFile)).access_token;
    const wrongAudience = await rawToolsList({ authorization: `Bearer ${foreign}` });
    expect(wrongAudience.status).toBe(401);
    expect(wrongAudience.challenge).toContain('error="invalid_token"');

    // The agent's token for this server, bound to its key (RFC 9449 cnf.jkt)...
    const key = { keys: agent.keys, jkt: "" };
    const theAgent = agentOf(key, agent.clientId, agent.clientSecret);
    const { accessToken } = await exchangeMandate(await discover(server.issuer), theAgent, mandateId, {
      resource: mcpUrl,
    });
    // ...with a proof signed by another key: refused.
    const stolen = await rawToolsList({
      authorization: `DPoP ${accessToken}`,
      dpop: await dpopProof(await newAgentKey(), accessToken, "POST", mcpUrl),
    });
    expect(stolen.status).toBe(401);
    expect(stolen.challenge).toMatch(/error="(invalid_token|invalid_dpop_proof)"/);
    // ...with its own key's proof: accepted (the refusal above was the key's).
    const own = await rawToolsList({
      authorization: `DPoP ${accessToken}`,
      dpop: await dpopProof(key, accessToken, "POST", mcpUrl),
    });
    expect(own.status).toBe(200);
    expect(own.body).toContain("order_cancel");
  });

  it("stops the agent when alice revokes the mandate on my mandates: the next call is refused", async () => {
    const working = workUntilStopped(client, agentOptions(""));
    await expect.poll(() => events.some((e) => e.step === "working")).toBe(true);
    const tab = await (await browser.newContext()).newPage();
    tab.setDefaultTimeout(10_000);
    await revoke(tab, mandateId);
    await tab.context().close();
    // The next call after the revocation, whatever the loop is doing: refused — by the token's
    // verification (the revocation feed; then the exchange is refused) or by Authorize (-32001).
    const next = await callTool(client, "orders_list");
    expect(["refused", "denied"], JSON.stringify(next)).toContain(next.outcome);
    expect(next.detail).toMatch(/revoked/);
    // And the agent's loop stops, saying why (bounded wait).
    await Promise.race([
      working,
      new Promise((_, reject) => setTimeout(() => reject(new Error("still working")), 5_000)),
    ]);
    expect(events.at(-1), JSON.stringify(events.at(-1))).toMatchObject({ step: "stopped", condition: "revoked" });
  });
});

describe.skipIf(!browserAvailable())("mandate demo mcp agent (the CLI)", () => {
  it("prints each step as a JSON line, from registration to the stop when alice revokes", async () => {
    const child = spawn(
      process.execPath,
      [BIN, "demo", "mcp", "agent", "--json", "--issuer", server.issuer, "--mcp-url", mcpUrl],
      {
        env: { ...process.env, MANDATE_ADMIN_FILE: server.process.adminFile },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    const lines: DemoAgentEvent[] = [];
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) =>
      lines.push(JSON.parse(line)),
    );
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    try {
      await expect.poll(() => lines.some((e) => e.step === "consent"), { timeout: 10_000 }).toBe(true);
      const tab = await (await browser.newContext()).newPage();
      tab.setDefaultTimeout(10_000);
      await approve(tab, lines);
      await expect.poll(() => lines.some((e) => e.step === "working"), { timeout: 10_000 }).toBe(true);
      const outcomes = Object.fromEntries(lines.flatMap((e) => (e.step === "tool" ? [[e.tool, e.outcome]] : [])));
      expect(outcomes).toEqual({
        orders_list: "allowed",
        order_get: "allowed",
        order_cancel: "denied",
        payment_send: "step_up",
        order_refund: "insufficient_scope",
      });
      const granted = lines.find((e) => e.step === "mandate") as Extract<DemoAgentEvent, { step: "mandate" }>;
      await revoke(tab, granted.mandate_id);
      await tab.context().close();
      expect(await exited).toBe(0);
      expect(lines.at(-1)).toMatchObject({ step: "stopped", condition: "revoked" });
    } finally {
      child.kill("SIGTERM");
    }
  });
});

describe("mandate demo mcp, stopped", () => {
  it("removes the server's own client from the tenant when it stops", async () => {
    expect((await server.issue.getClient({ tenant: "demo", clientId: demoClientId })).client?.clientName).toBe(
      "MCP demo server",
    );
    const exited = new Promise((resolve) => demo.once("exit", resolve));
    demo.kill("SIGTERM");
    expect(await exited).toBe(0);
    await expect(server.issue.getClient({ tenant: "demo", clientId: demoClientId })).rejects.toThrow(/not_found/);
  });
});
