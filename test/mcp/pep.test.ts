// The MCP kit's enforcement stage (issue 19, item 1): protectMcp() in front of a real MCP SDK server
// (Streamable HTTP), a real Mandate (in process, bench/in-process.ts) with the demo's policy (policies/examples/
// mcp-demo) pushed to the tenant, Authorize asked over native gRPC (AuthorizeClient) in access-token
// mode, an agent holding a mandate and presenting its DPoP-bound exchanged token. Covered: an allowed
// tool, a denied one (-32001), a mapping that smuggles another subject (-32602, Authorize never
// asked), Authorize down (-32603), step-up (401 insufficient_user_authentication), a missing scope
// (403 insufficient_scope, locally and from the policy's scope_missing), the mandate's usage
// counted per call up to its limit, a retried JSON-RPC id counted once, a batch with one denied
// message refused whole in one Authorize call, and bodies that are no JSON-RPC.
import type { JsonObject } from "@bufbuild/protobuf";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { McpError } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HOST } from "../../bench/in-process.ts";
import { AuthorizeClient } from "../../services/authorize/client.ts";
import { type AuthorizeDecider, AuthorizePdp } from "../../services/mcp/pep/authorize-pdp.ts";
import { type McpGuard, protectMcp } from "../../services/mcp/pep/guard.ts";
import { McpResourceServer } from "../../services/mcp/resource/index.ts";
import { type Agent, discover, exchangeMandate, registerAgent, type TokenEndpoint } from "../helpers/agents.ts";
import { aliceMandate, toolCall as call, dpopPost, type KitStack, kitStack, serveTools } from "../helpers/mcp-kit.ts";
import { dpopFetch } from "../helpers/mcp-resource-fixtures.ts";
import { freePort } from "../helpers/oauth-server.ts";

const DAY = 86_400_000;

const mapping = (evaluation: JsonObject) => ({ "x-authzen-mapping": { evaluation } });
const orderArgs = { type: "object", properties: { order_id: { type: "string" } } };

/** The tools as tools/list shows them, and as the guard is told about them. */
const TOOLS = [
  // The binding's default mapping: tools/call on {"type": "tool", "id": "orders_list"} (policy: orders.read).
  { name: "orders_list", inputSchema: { type: "object", properties: {} } },
  {
    name: "order_get",
    inputSchema: {
      ...orderArgs,
      ...mapping({ action: { name: "orders.read" }, resource: { type: "order", id: "$params.arguments.order_id" } }),
    },
  },
  {
    name: "order_cancel",
    inputSchema: {
      ...orderArgs,
      ...mapping({ action: { name: "orders.cancel" }, resource: { type: "order", id: "$params.arguments.order_id" } }),
    },
  },
  {
    name: "payment_send",
    inputSchema: {
      type: "object",
      properties: { to: { type: "string" } },
      ...mapping({ action: { name: "payments.send" }, resource: { type: "payment", id: "$params.arguments.to" } }),
    },
  },
  {
    // A mapping that takes the subject from an argument: the caller could name anyone.
    name: "orders_of",
    inputSchema: {
      type: "object",
      properties: { customer: { type: "string" } },
      ...mapping({
        subject: { type: "identity", id: "$params.arguments.customer" },
        action: { name: "orders.read" },
        resource: { type: "order", id: "all" },
      }),
    },
  },
  {
    // Counted by its pages: `x-mandate-usage` with a COAZ expression.
    name: "orders_report",
    inputSchema: {
      type: "object",
      properties: { pages: { type: "integer" } },
      ...mapping({ action: { name: "orders.read" }, resource: { type: "report", id: "orders" } }),
      "x-mandate-usage": { meter: "calls", amount: "$params.arguments.pages" },
    },
  },
  {
    // The action taken from an argument: one Authorize cannot represent is a mapping error.
    name: "do_action",
    inputSchema: {
      type: "object",
      properties: { action: { type: "string" } },
      ...mapping({ action: { name: "$params.arguments.action" }, resource: { type: "order", id: "any" } }),
    },
  },
  { name: "admin_reset", inputSchema: { type: "object", properties: {} }, scopes: ["mcp:admin"] },
];

let kit: KitStack;
let resource: string;
let endpoint: TokenEndpoint;
let agent: Agent;
let authorizeClient: AuthorizeClient;
let downClient: AuthorizeClient;
let guard: McpGuard;
let guardDown: McpGuard;
let current: () => McpGuard;
/** Authorize calls made (each Check or BatchCheck), through the real client. */
let authorizeCalls = 0;
/** Tools the MCP server ran, in order. */
const executed: string[] = [];

beforeAll(async () => {
  kit = await kitStack("mcp-demo-pep-test");
  const { mcp, issuer, pepToken } = kit;
  resource = kit.resource;
  endpoint = await discover(issuer);
  agent = await registerAgent(kit.issue, {
    scope: "orders.read orders.cancel payments.send",
    resources: [resource],
  });
  authorizeClient = new AuthorizeClient({
    address: `${HOST}:${kit.stack.mandate.grpcPort}`,
    token: pepToken,
    deadlineMs: 5000,
  });
  const counting: AuthorizeDecider = {
    check: (input) => {
      authorizeCalls++;
      return authorizeClient.check(input);
    },
    batchCheck: (tenant, checks) => {
      authorizeCalls++;
      return authorizeClient.batchCheck(tenant, checks);
    },
  };
  // Nothing listens there: every call fails as UNAVAILABLE.
  downClient = new AuthorizeClient({
    address: `127.0.0.1:${await freePort()}`,
    token: pepToken,
    deadlineMs: 300,
    retries: 0,
  });
  const server = new McpResourceServer({ issuer, resource });
  const options = { server, tools: TOOLS };
  guard = protectMcp({
    ...options,
    pdp: new AuthorizePdp({ authorize: counting, tenant: "demo", audience: resource }),
  });
  guardDown = protectMcp({
    ...options,
    pdp: new AuthorizePdp({ authorize: downClient, tenant: "demo", audience: resource }),
  });
  current = () => guard;
  const serverOptions = {
    name: "pep-test",
    enableJsonResponse: true,
    // What ran, and for which client (the SDK's authInfo).
    answer: (tool: string, auth?: { clientId: string }) => JSON.stringify({ tool, client: auth?.clientId }),
  };
  mcp.handle = (req, res) =>
    void current()(req, res, (body) => serveTools(req, res, body, TOOLS, executed, serverOptions));
}, 25_000);

afterAll(async () => {
  authorizeClient?.close();
  downClient?.close();
  await kit?.stop();
});

/** A mandate from alice to the agent for this MCP server, and the agent's token exchanged from it. */
async function mandateToken(scopes: string[], calls: number | undefined = 1000): Promise<string> {
  const mandateId = await aliceMandate(kit.issue, {
    agentId: agent.clientId,
    resource,
    scopes,
    calls,
    expiresInMs: DAY,
  });
  const exchanged = await exchangeMandate(endpoint, agent, mandateId, { scope: scopes.join(" "), resource });
  expect(exchanged.claims.mandate_id).toBe(mandateId);
  return exchanged.accessToken;
}

/** One raw POST of `body` with the token and a fresh DPoP proof. */
const post = (token: string, body: unknown) => dpopPost(resource, agent, token, body);

async function withClient<T>(token: string, use: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ name: "pep-test-client", version: "1.0.0" });
  await client.connect(new StreamableHTTPClientTransport(new URL(resource), { fetch: dpopFetch(token, agent) }));
  try {
    return await use(client);
  } finally {
    await client.close();
  }
}

describe("protectMcp with Authorize (access-token mode)", () => {
  it("lets an allowed tool through to the MCP server, after initialize and tools/list", async () => {
    const token = await mandateToken(["orders.read"]);
    const result = await withClient(token, async (client) => {
      const { tools } = await client.listTools();
      expect(tools.map((t) => t.name)).toContain("order_get");
      return client.callTool({ name: "orders_list", arguments: {} });
    });
    const [content] = result.content as Array<{ text: string }>;
    expect(JSON.parse(content?.text ?? "")).toEqual({ tool: "orders_list", client: agent.clientId });
    const declared = await post(token, call(2, "order_get", { order_id: "ord_1" }));
    expect(declared.json.result.content[0].text).toContain("order_get");
  });

  it("answers a tool the policy denies with -32001 and the policy's reason, the tool not run", async () => {
    const token = await mandateToken(["orders.read", "orders.cancel"]);
    executed.length = 0;
    const refusal = await withClient(token, (client) =>
      client.callTool({ name: "order_cancel", arguments: { order_id: "ord_1" } }).then(
        () => undefined,
        (error: unknown) => error,
      ),
    );
    expect(refusal).toBeInstanceOf(McpError);
    expect((refusal as McpError).code).toBe(-32001);
    expect((refusal as McpError).message).toContain("orders.cancel is for humans");
    expect(executed).toEqual([]);
    const raw = await post(token, call(9, "order_cancel", { order_id: "ord_1" }));
    expect(raw.status).toBe(200);
    expect(raw.json).toMatchObject({
      jsonrpc: "2.0",
      id: 9,
      error: { code: -32001, data: { reasons: ["agent_not_allowed"] } },
    });
    expect(raw.json.error.data.decision_id).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("refuses a mapping that names another subject with -32602, without asking Authorize", async () => {
    const token = await mandateToken(["orders.read"]);
    const before = authorizeCalls;
    executed.length = 0;
    const answer = await post(token, call("s-1", "orders_of", { customer: "bob" }));
    expect(answer.status).toBe(200);
    expect(answer.json).toMatchObject({ jsonrpc: "2.0", id: "s-1", error: { code: -32602 } });
    expect(authorizeCalls).toBe(before);
    expect(executed).toEqual([]);
  });

  it("refuses an action name Authorize cannot represent with -32602, without asking Authorize", async () => {
    const token = await mandateToken(["orders.read"]);
    const before = authorizeCalls;
    const answer = await post(token, call("a-1", "do_action", { action: "orders read; drop" }));
    expect(answer.json).toMatchObject({ id: "a-1", error: { code: -32602 } });
    expect(answer.json.error.message).toContain("not a valid Authorize action");
    expect(authorizeCalls).toBe(before);
    const valid = await post(token, call("a-2", "do_action", { action: "orders.read" }));
    expect(valid.json.result).toBeDefined();
    expect(authorizeCalls).toBe(before + 1);
  });

  it("answers -32603 when Authorize cannot be reached, and runs nothing", async () => {
    const token = await mandateToken(["orders.read"]);
    executed.length = 0;
    current = () => guardDown;
    try {
      const answer = await post(token, call(3, "orders_list"));
      expect(answer.status).toBe(200);
      expect(answer.json).toEqual({
        jsonrpc: "2.0",
        id: 3,
        error: { code: -32603, message: "Authorization service unavailable" },
      });
    } finally {
      current = () => guard;
    }
    expect(executed).toEqual([]);
  });

  it("turns a step_up obligation into a 401 insufficient_user_authentication challenge (RFC 9470)", async () => {
    const token = await mandateToken(["payments.send"]);
    executed.length = 0;
    const answer = await post(token, call(4, "payment_send", { to: "bob" }));
    expect(answer.status).toBe(401);
    const challenge = answer.headers.get("www-authenticate") ?? "";
    expect(challenge).toMatch(/^Bearer error="insufficient_user_authentication"/);
    expect(challenge).toContain('acr_values="urn:mandate:acr:mfa"');
    expect(challenge).toContain(`resource_metadata="${kit.mcp.origin}/.well-known/oauth-protected-resource/mcp"`);
    expect(answer.json.error).toBe("insufficient_user_authentication");
    expect(executed).toEqual([]);
  });

  it("answers a missing scope with 403 insufficient_scope: a tool's declared scope (Authorize not asked) or the policy's scope_missing", async () => {
    const token = await mandateToken(["orders.read"]);
    const before = authorizeCalls;
    const local = await post(token, call(5, "admin_reset"));
    expect(local.status).toBe(403);
    const challenge = local.headers.get("www-authenticate") ?? "";
    expect(challenge).toMatch(/^Bearer error="insufficient_scope"/);
    expect(challenge).toContain('scope="orders.read mcp:admin"');
    expect(authorizeCalls).toBe(before);

    const paymentsOnly = await mandateToken(["payments.send"]);
    const fromPolicy = await post(paymentsOnly, call(6, "orders_list"));
    expect(fromPolicy.status).toBe(403);
    expect(fromPolicy.headers.get("www-authenticate")).toMatch(/^Bearer error="insufficient_scope"/);
    expect(authorizeCalls).toBe(before + 1);
  });

  it("counts each allowed tools/call against the mandate: a retried JSON-RPC id once, a call over the limit denied", async () => {
    const token = await mandateToken(["orders.read"], 3);
    executed.length = 0;
    const first = await post(token, call(7, "orders_list"));
    expect(first.json.result).toBeDefined();
    const retried = await post(token, call(7, "orders_list"));
    expect(retried.json.result).toBeDefined();
    // initialize and tools/list are not tool calls: never counted.
    const listed = await post(token, { jsonrpc: "2.0", id: 70, method: "tools/list" });
    expect(listed.json.result.tools).toHaveLength(TOOLS.length);
    const second = await post(token, call(8, "orders_list"));
    expect(second.json.result).toBeDefined();
    // 2 used of 3: a report of 2 pages would pass the limit, so it is denied and charges nothing.
    const tooMuch = await post(token, call(9, "orders_report", { pages: 2 }));
    expect(tooMuch.json).toMatchObject({
      id: 9,
      error: { code: -32001, data: { reasons: ["mandate_usage_exhausted"] } },
    });
    const badAmount = await post(token, call(10, "orders_report", { pages: -1 }));
    expect(badAmount.json).toMatchObject({ id: 10, error: { code: -32602 } });
    const onePage = await post(token, call(11, "orders_report", { pages: 1 }));
    expect(onePage.json.result).toBeDefined();
    // All 3 used: the mandate itself is exhausted now, refused before the policy.
    const over = await post(token, call(12, "orders_list"));
    expect(over.json).toMatchObject({ id: 12, error: { code: -32001, data: { reasons: ["mandate_exhausted"] } } });
    expect(executed).toEqual(["orders_list", "orders_list", "orders_list", "orders_report"]);
  });

  it("counts only where the mandate says so: a mandate limiting no meter lets tool calls through uncounted", async () => {
    const token = await mandateToken(["orders.read"], undefined);
    executed.length = 0;
    for (const id of [20, 21]) expect((await post(token, call(id, "orders_list"))).json.result).toBeDefined();
    expect(executed).toEqual(["orders_list", "orders_list"]);
  });

  it("refuses a batch with one denied message whole, deciding it in one Authorize call", async () => {
    const token = await mandateToken(["orders.read", "orders.cancel"]);
    executed.length = 0;
    const before = authorizeCalls;
    const answer = await post(token, [
      call(1, "orders_list"),
      call(2, "order_cancel", { order_id: "ord_1" }),
      { jsonrpc: "2.0", method: "notifications/initialized" },
    ]);
    expect(authorizeCalls).toBe(before + 1);
    expect(answer.status).toBe(200);
    expect(answer.json).toHaveLength(2);
    expect(answer.json[0]).toMatchObject({
      id: 1,
      error: { code: -32001, message: expect.stringContaining("not executed") },
    });
    expect(answer.json[1]).toMatchObject({ id: 2, error: { code: -32001, data: { reasons: ["agent_not_allowed"] } } });
    expect(executed).toEqual([]);

    const allowed = await post(token, [call(3, "orders_list"), call(4, "order_get", { order_id: "ord_2" })]);
    expect(allowed.json.map((m: { id: number; result?: unknown }) => [m.id, m.result !== undefined])).toEqual([
      [3, true],
      [4, true],
    ]);
  });

  it("answers bodies that are no JSON-RPC as the SDK would, and a request without a token with 401", async () => {
    const token = await mandateToken(["orders.read"]);
    const parse = await post(token, "{not json");
    expect(parse.status).toBe(400);
    expect(parse.json).toEqual({
      jsonrpc: "2.0",
      id: null,
      error: { code: -32700, message: "Parse error: Invalid JSON" },
    });
    const invalid = await post(token, { jsonrpc: "1.0", id: 1, method: "tools/list" });
    expect(invalid.status).toBe(400);
    expect(invalid.json.error.code).toBe(-32700);
    const anonymous = await fetch(resource, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream" },
      body: JSON.stringify(call(1, "orders_list")),
    });
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get("www-authenticate")).toContain("resource_metadata=");
  });
});
