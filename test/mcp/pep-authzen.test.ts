// protectMcp with any AuthZEN 1.0 PDP over HTTP (AuthzenHttpPdp), here Mandate's own AuthZEN API (in process)
// (`/t/demo/access/v1/evaluation` and `/evaluations`, a client-credentials token with
// `mandate:authorize`) deciding with the demo's policy: a server method allowed through to the real
// MCP SDK server, an unknown tool denied (-32001 with the policy's reason), an `evaluations` mapping
// sent to /evaluations (all permit → through; one deny → -32001), the PDP unreachable (-32603).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuthzenHttpPdp } from "../../services/mcp/pep/authzen-http-pdp.ts";
import { type McpGuard, protectMcp } from "../../services/mcp/pep/guard.ts";
import { McpResourceServer } from "../../services/mcp/resource/index.ts";
import { type Agent, discover, registerAgent } from "../helpers/agents.ts";
import { toolCall as call, dpopPost, type KitStack, kitStack, serveTools } from "../helpers/mcp-kit.ts";
import { agentToken, MCP_SCOPE } from "../helpers/mcp-resource-fixtures.ts";
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

let kit: KitStack;
let agent: Agent;
let token: string;
let current: McpGuard;
let guard: McpGuard;
let guardDown: McpGuard;
const executed: string[] = [];

beforeAll(async () => {
  kit = await kitStack("mcp-demo-authzen-test");
  const { mcp, resource, issuer, pepToken } = kit;
  agent = await registerAgent(kit.issue, {
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
  const serverOptions = { name: "pep-authzen-test", enableJsonResponse: true };
  mcp.handle = (req, res) =>
    void current(req, res, (body) => serveTools(req, res, body, TOOLS, executed, serverOptions));
}, 25_000);

afterAll(async () => {
  await kit?.stop();
});

const post = (body: unknown) => dpopPost(kit.resource, agent, token, body);

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
