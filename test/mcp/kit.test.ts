// The MCP kit assembled, through its public entry (services/mcp/index.ts) only: an MCP SDK server
// behind protectMcp (McpResourceServer verifying, COAZ-MCP mapping, AuthorizePdp over a Connect gRPC
// client), and an agent's MCP SDK client on mandateTransport (token exchange of its mandate, DPoP),
// against a real Mandate with the demo's policy. The agent's allowed tool runs; a denied one is
// -32001; a step-up reaches the client as StepUpRequired; a missing scope as InsufficientScope; and
// once alice revokes the mandate, the next call is refused.
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { McpError } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HOST } from "../../bench/in-process.ts";
import { Authorize } from "../../gen/mandate/v1/authorize_pb.js";
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
import { aliceMandate, type KitStack, kitStack, serveTools } from "../helpers/mcp-kit.ts";

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

let kit: KitStack;
let agent: Agent;
const executed: string[] = [];

beforeAll(async () => {
  kit = await kitStack("mcp-demo-kit-test");
  const { mcp, resource, issuer, pepToken } = kit;
  agent = await registerAgent(kit.issue, {
    scope: "orders.read orders.cancel payments.send",
    resources: [resource],
  });
  // Authorize over a Connect gRPC client (connectAuthorize), the PEP's own token as Bearer.
  const authorize = createClient(
    Authorize,
    createGrpcTransport({
      baseUrl: `http://${HOST}:${kit.stack.mandate.grpcPort}`,
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
  mcp.handle = (req, res) =>
    void guard(req, res, (body) => serveTools(req, res, body, TOOLS, executed, { name: "kit-test" }));
}, 25_000);

afterAll(async () => {
  await kit?.stop();
});

const grant = (scopes: string[]) =>
  aliceMandate(kit.issue, {
    agentId: agent.clientId,
    resource: kit.resource,
    scopes,
    calls: 100,
    expiresInMs: 3_600_000,
  });

async function connect(mandateId: string): Promise<Client> {
  const transport = mandateTransport(kit.resource, {
    issuer: kit.issuer,
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

      await kit.issue.revokeMandate({ tenant: "demo", mandateId });
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
