// protectMcp with any AuthZEN 1.0 PDP over HTTP (AuthzenHttpPdp), here Mandate's own AuthZEN API (in process)
// (`/t/demo/access/v1/evaluation` and `/evaluations`, a client-credentials token with
// `mandate:authorize`) deciding with the demo's policy: a server method allowed through to the real
// MCP SDK server, an unknown tool denied (-32001 with the policy's reason), an `evaluations` mapping
// sent to /evaluations (all permit → through; one deny → -32001), the PDP unreachable (-32603).
import type { IncomingMessage, ServerResponse } from "node:http";
import type { JsonObject } from "@bufbuild/protobuf";
import type { AuthInfo } from "@modelcontextprotocol/sdk/server/auth/types.js";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { CallToolRequestSchema, ListToolsRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type InProcessMandate, startInProcess } from "../../bench/in-process.ts";
import { Authorize } from "../../gen/mandate/v1/authorize_pb.js";
import { Issue } from "../../gen/mandate/v1/issue_pb.js";
import { buildBundle } from "../../services/authorize/rego/bundle.ts";
import { AuthzenHttpPdp } from "../../services/mcp/pep/authzen-http-pdp.ts";
import { type McpGuard, protectMcp } from "../../services/mcp/pep/guard.ts";
import { McpResourceServer } from "../../services/mcp/resource/index.ts";
import { type Agent, discover, dpopProof, registerAgent } from "../helpers/agents.ts";
import { agentToken, type Listening, listen, MCP_SCOPE } from "../helpers/mcp-resource-fixtures.ts";
import { freePort } from "../helpers/oauth-server.ts";

const TOOLS = [
  { name: "orders_export", inputSchema: { type: "object", properties: {} } },
  {
    // Two questions for one call, decided through /access/v1/evaluations.
    name: "server_check",
    inputSchema: {
      type: "object",
      properties: { second: { type: "string" } },
      "x-authzen-mapping": {
        evaluations: {
          resource: { type: "mcp_server", id: "$token.aud" },
          evaluations: [{ action: { name: "tools/list" } }, { action: { name: "$params.arguments.second" } }],
          options: { evaluations_semantic: "deny_on_first_deny" },
        },
      },
    },
  },
];

let mcp: Listening;
let resource: string;
let stack: InProcessMandate;
let issuer: string;
let agent: Agent;
let token: string;
let current: McpGuard;
let guard: McpGuard;
let guardDown: McpGuard;
const executed: string[] = [];

function serve(req: IncomingMessage, res: ServerResponse, body: unknown) {
  // Stateless: no standalone SSE stream, no session to end (the SDK's stateless example answers 405).
  if (req.method !== "POST") return void res.writeHead(405, { allow: "POST" }).end();
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
  const server = new Server({ name: "pep-authzen-test", version: "1.0.0" }, { capabilities: { tools: {} } });
  server.setRequestHandler(ListToolsRequestSchema, async () => ({
    tools: TOOLS.map(({ name, inputSchema }) => ({ name, inputSchema: inputSchema as { type: "object" } })),
  }));
  server.setRequestHandler(CallToolRequestSchema, async (request) => {
    executed.push(request.params.name);
    return { content: [{ type: "text", text: request.params.name }] };
  });
  res.on("close", () => {
    void transport.close();
    void server.close();
  });
  return server
    .connect(transport)
    .then(() => transport.handleRequest(req as IncomingMessage & { auth?: AuthInfo }, res, body));
}

beforeAll(async () => {
  mcp = await listen();
  resource = `${mcp.origin}/mcp`;
  // Mandate in this process, its listeners real (bench/in-process.ts, as `mandate dev` starts it).
  stack = await startInProcess(["authorize", "introspect", "issue", "audit", "signer", "tenants"]);
  const { mandate, config } = stack;
  issuer = `${config.publicBaseUrl}/t/demo`;
  const bundle = await buildBundle("policies/examples/mcp-demo", { revision: "mcp-demo-authzen-test" });
  await mandate.clients.get(Authorize).pushPolicy({ tenant: "demo", bundle: bundle.bytes, activate: true });
  const pepToken = await stack.token("mandate:authorize", config.publicBaseUrl);
  agent = await registerAgent(mandate.clients.get(Issue), {
    scope: MCP_SCOPE,
    resources: [resource],
    grantTypes: ["client_credentials"],
  });
  token = await agentToken({ endpoint: await discover(issuer), agent }, resource);
  const server = new McpResourceServer({ issuer, resource });
  guard = protectMcp({
    server,
    tools: TOOLS,
    pdp: new AuthzenHttpPdp({ baseUrl: issuer, token: () => pepToken }),
  });
  guardDown = protectMcp({
    server,
    tools: TOOLS,
    pdp: new AuthzenHttpPdp({ baseUrl: `http://127.0.0.1:${await freePort()}/t/demo`, timeoutMs: 500 }),
  });
  current = guard;
  mcp.handle = (req, res) => void current(req, res, (body) => serve(req, res, body));
}, 25_000);

afterAll(async () => {
  await mcp?.close();
  await stack?.stop();
});

async function post(body: unknown) {
  const response = await fetch(resource, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      authorization: `DPoP ${token}`,
      dpop: await dpopProof(agent, token, "POST", resource),
    },
    body: JSON.stringify(body),
  });
  // biome-ignore lint/suspicious/noExplicitAny: a JSON-RPC answer, read by the assertions
  return { status: response.status, json: (await response.json()) as any };
}

const call = (id: number, name: string, args: JsonObject = {}) => ({
  jsonrpc: "2.0",
  id,
  method: "tools/call",
  params: { name, arguments: args },
});

describe("protectMcp with an AuthZEN PDP (Mandate's AuthZEN API)", () => {
  it("lets a method the policy allows through to the MCP server", async () => {
    const answer = await post({ jsonrpc: "2.0", id: 1, method: "tools/list" });
    expect(answer.status).toBe(200);
    expect(answer.json.result.tools).toHaveLength(TOOLS.length);
  });

  it("answers a denied tool with -32001 and the reason from the decision context", async () => {
    executed.length = 0;
    const answer = await post(call(2, "orders_export"));
    expect(answer.json).toMatchObject({
      id: 2,
      error: { code: -32001, message: "Access denied: the tool is not one this policy knows" },
    });
    expect(answer.json.error.data.reasons).toEqual(["tool_unknown"]);
    expect(executed).toEqual([]);
  });

  it("sends an evaluations mapping to /evaluations: every permit lets the call through, one deny refuses it", async () => {
    executed.length = 0;
    const allowed = await post(call(3, "server_check", { second: "initialize" }));
    expect(allowed.json.result).toBeDefined();
    const denied = await post(call(4, "server_check", { second: "tools/call" }));
    expect(denied.json).toMatchObject({ id: 4, error: { code: -32001 } });
    expect(executed).toEqual(["server_check"]);
  });

  it("answers -32603 when the PDP cannot be reached", async () => {
    current = guardDown;
    try {
      const answer = await post(call(5, "orders_export"));
      expect(answer.json).toEqual({
        jsonrpc: "2.0",
        id: 5,
        error: { code: -32603, message: "Authorization service unavailable" },
      });
    } finally {
      current = guard;
    }
  });
});
