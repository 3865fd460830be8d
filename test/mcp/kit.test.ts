// The MCP kit assembled, through its public entry (services/mcp/index.ts) only: an MCP SDK server
// behind protectMcp (McpResourceServer verifying, COAZ-MCP mapping, AuthorizePdp over a Connect gRPC
// client), and an agent's MCP SDK client on mandateTransport (token exchange of its mandate, DPoP),
// against a real Mandate with the demo's policy. The agent's allowed tool runs; a denied one is
// -32001; a step-up reaches the client as StepUpRequired; a missing scope as InsufficientScope; and
// once alice revokes the mandate, the next call is refused.
import type { IncomingMessage, ServerResponse } from "node:http";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import type { AuthInfo } from "@modelcontextprotocol/sdk/server/auth/types.js";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { CallToolRequestSchema, ListToolsRequestSchema, McpError } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HOST, type InProcessMandate, startInProcess } from "../../bench/in-process.ts";
import { Authorize } from "../../gen/mandate/v1/authorize_pb.js";
import { PartyKind } from "../../gen/mandate/v1/common_pb.js";
import { Issue } from "../../gen/mandate/v1/issue_pb.js";
import { buildBundle } from "../../services/authorize/rego/bundle.ts";
import {
  AuthorizePdp,
  connectAuthorize,
  InsufficientScope,
  MandateUnusable,
  McpResourceServer,
  type McpToolDeclaration,
  mandateTransport,
  protectMcp,
  StepUpRequired,
} from "../../services/mcp/index.ts";
import { type Agent, registerAgent } from "../helpers/agents.ts";
import { type Listening, listen } from "../helpers/mcp-resource-fixtures.ts";

const order = { type: "object", properties: { order_id: { type: "string" } } };

const TOOLS: Array<McpToolDeclaration & { name: string }> = [
  { name: "orders_list", inputSchema: { type: "object", properties: {} } },
  {
    name: "order_cancel",
    inputSchema: {
      ...order,
      "x-authzen-mapping": {
        evaluation: {
          action: { name: "orders.cancel" },
          resource: { type: "order", id: "$params.arguments.order_id" },
        },
      },
    },
  },
  {
    name: "payment_send",
    inputSchema: {
      type: "object",
      properties: {},
      "x-authzen-mapping": {
        evaluation: { action: { name: "payments.send" }, resource: { type: "payment", id: "p" } },
      },
    },
  },
  { name: "orders_admin", inputSchema: { type: "object", properties: {} }, scopes: ["orders.admin"] },
];

let mcp: Listening;
let resource: string;
let stack: InProcessMandate;
let issuer: string;
let agent: Agent;
const executed: string[] = [];

function serve(req: IncomingMessage, res: ServerResponse, body: unknown) {
  if (req.method !== "POST") return void res.writeHead(405, { allow: "POST" }).end();
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
  const server = new Server({ name: "kit-test", version: "1.0.0" }, { capabilities: { tools: {} } });
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
  agent = await registerAgent(mandate.clients.get(Issue), {
    scope: "orders.read orders.cancel payments.send",
    resources: [resource],
  });
  const bundle = await buildBundle("policies/examples/mcp-demo", { revision: "mcp-demo-kit-test" });
  await mandate.clients.get(Authorize).pushPolicy({ tenant: "demo", bundle: bundle.bytes, activate: true });
  const pepToken = await stack.token("mandate:authorize", config.publicBaseUrl);
  // Authorize over a Connect gRPC client (connectAuthorize), the PEP's own token as Bearer.
  const authorize = createClient(
    Authorize,
    createGrpcTransport({
      baseUrl: `http://${HOST}:${mandate.grpcPort}`,
      interceptors: [
        (next) => (request) => {
          request.header.set("authorization", `Bearer ${pepToken}`);
          return next(request);
        },
      ],
    }),
  );
  const guard = protectMcp({
    server: new McpResourceServer({ issuer, resource }),
    tools: TOOLS,
    pdp: new AuthorizePdp({ authorize: connectAuthorize(authorize), tenant: "demo", audience: resource }),
  });
  mcp.handle = (req, res) => void guard(req, res, (body) => serve(req, res, body));
}, 25_000);

afterAll(async () => {
  await mcp?.close();
  await stack?.stop();
});

async function grant(scopes: string[]): Promise<string> {
  const { mandate } = await stack.mandate.clients.get(Issue).createMandate({
    tenant: "demo",
    mandate: {
      principal: { id: "alice", kind: PartyKind.HUMAN },
      agent: { id: agent.clientId, kind: PartyKind.AGENT },
      scopes,
      resources: [resource],
      notBefore: timestampFromMs(Date.now() - 1000),
      expireTime: timestampFromMs(Date.now() + 3_600_000),
      usageLimits: [{ meter: "calls", maximum: 100 }],
      maxDelegationDepth: 0,
    },
  });
  return mandate?.id as string;
}

async function connect(mandateId: string): Promise<Client> {
  const transport = mandateTransport(resource, {
    issuer,
    clientId: agent.clientId,
    clientAuthentication: { method: "client_secret_basic", clientSecret: agent.secret },
    dpopKeys: agent.keys,
    mandateId,
    allowInsecureRequests: true,
  });
  const client = new Client({ name: "kit-agent", version: "1.0.0" });
  await client.connect(transport);
  return client;
}

describe("the MCP kit end to end (services/mcp/index.ts)", () => {
  it("runs an allowed tool, refuses a denied one, asks for step-up and scope, and stops at revocation", async () => {
    const mandateId = await grant(["orders.read", "orders.cancel", "payments.send"]);
    const client = await connect(mandateId);
    try {
      executed.length = 0;
      const listed = await client.callTool({ name: "orders_list", arguments: {} });
      expect((listed.content as Array<{ text: string }>)[0]?.text).toBe("orders_list");

      const denied = await client.callTool({ name: "order_cancel", arguments: { order_id: "o1" } }).catch((e) => e);
      expect(denied).toBeInstanceOf(McpError);
      expect((denied as McpError).code).toBe(-32001);

      const stepUp = await client.callTool({ name: "payment_send", arguments: {} }).catch((e) => e);
      expect(stepUp).toBeInstanceOf(StepUpRequired);
      expect(stepUp).toMatchObject({ acrValues: "urn:mandate:acr:mfa" });

      const scope = await client.callTool({ name: "orders_admin", arguments: {} }).catch((e) => e);
      expect(scope).toBeInstanceOf(InsufficientScope);
      expect((scope as InsufficientScope).scope).toContain("orders.admin");
      expect(executed).toEqual(["orders_list"]);

      await stack.mandate.clients.get(Issue).revokeMandate({ tenant: "demo", mandateId });
      const revoked = await client.callTool({ name: "orders_list", arguments: {} }).catch((e) => e);
      // Authorize refuses the revoked mandate's token (401 invalid_token); the client's re-exchange is refused too.
      expect(revoked).toBeInstanceOf(MandateUnusable);
      expect(revoked).toMatchObject({ condition: "revoked" });
      expect(executed).toEqual(["orders_list"]);
    } finally {
      await client.close();
    }
  });
});
