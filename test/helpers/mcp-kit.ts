// What the MCP kit's enforcement tests share (pep, pep-authzen, kit): a real Mandate in this process
// with the demo's policy (policies/examples/mcp-demo) active and the PEP's own `mandate:authorize`
// token, an MCP server URL listening before any client registers for it, a low-level MCP SDK server
// of declared tools recording what ran, alice's mandate to an agent, and raw JSON-RPC POSTs with DPoP.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { JsonObject } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { Client as RpcClient } from "@connectrpc/connect";
import type { AuthInfo } from "@modelcontextprotocol/sdk/server/auth/types.js";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { CallToolRequestSchema, ListToolsRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import { type InProcessMandate, startInProcess } from "../../bench/in-process.ts";
import { Authorize } from "../../gen/mandate/v1/authorize_pb.js";
import { PartyKind } from "../../gen/mandate/v1/common_pb.js";
import { Issue } from "../../gen/mandate/v1/issue_pb.js";
import { buildBundle } from "../../services/authorize/rego/bundle.ts";
import { type AgentKey, dpopProof } from "./agents.ts";
import { type Listening, listen, serveStateless } from "./mcp-resource-fixtures.ts";

export interface KitStack {
  /** The MCP server's listener; its URL `resource` is `{origin}/mcp`. */
  mcp: Listening;
  resource: string;
  stack: InProcessMandate;
  /** The demo tenant's issuer. */
  issuer: string;
  issue: RpcClient<typeof Issue>;
  /** The PEP's own token for Authorize (`mandate:authorize`), as Bearer. */
  pepToken: string;
  stop(): Promise<void>;
}

/**
 * Mandate in this process, its gRPC and HTTP listeners real (bench/in-process.ts, as `mandate dev`
 * starts it: a child process does not start within its 20 s limit on the shared CI cores), the demo
 * policy pushed and activated as `revision`, and the MCP server's listener.
 */
export async function kitStack(revision: string): Promise<KitStack> {
  const mcp = await listen();
  try {
    const stack = await startInProcess(["authorize", "introspect", "issue", "audit", "signer", "tenants"]);
    const { mandate, config } = stack;
    const bundle = await buildBundle("policies/examples/mcp-demo", { revision });
    await mandate.clients.get(Authorize).pushPolicy({ tenant: "demo", bundle: bundle.bytes, activate: true });
    return {
      mcp,
      resource: `${mcp.origin}/mcp`,
      stack,
      issuer: `${config.publicBaseUrl}/t/demo`,
      issue: mandate.clients.get(Issue),
      pepToken: await stack.token("mandate:authorize", config.publicBaseUrl),
      stop: async () => {
        await mcp.close();
        await stack.stop();
      },
    };
  } catch (error) {
    await mcp.close();
    throw error;
  }
}

/** A declared tool: its name and the input schema tools/list shows (with its COAZ-MCP mapping). */
export interface DeclaredTool {
  name: string;
  inputSchema?: object | undefined;
}

/**
 * Serves one MCP POST (stateless) with a low-level MCP SDK server listing `tools`; a call pushes the
 * tool's name to `executed` and answers `answer(name, authInfo)` as text.
 */
export function serveTools(
  req: IncomingMessage,
  res: ServerResponse,
  body: unknown,
  tools: readonly DeclaredTool[],
  executed: string[],
  options: { name: string; enableJsonResponse?: boolean; answer?: (tool: string, auth?: AuthInfo) => string },
): Promise<void> {
  const { name, answer = (tool: string) => tool, ...transport } = options;
  const toolsServer = () => {
    const server = new Server({ name, version: "1.0.0" }, { capabilities: { tools: {} } });
    server.setRequestHandler(ListToolsRequestSchema, async () => ({
      tools: tools.map(({ name, inputSchema }) => ({ name, inputSchema: inputSchema as { type: "object" } })),
    }));
    server.setRequestHandler(CallToolRequestSchema, async (request, extra) => {
      executed.push(request.params.name);
      return { content: [{ type: "text", text: answer(request.params.name, extra.authInfo) }] };
    });
    return server;
  };
  return serveStateless(req, res, body, toolsServer, transport);
}

/** alice's mandate to `agentId` for `resource` (`calls`: its limit on the meter "calls", none if undefined). */
export async function aliceMandate(
  issue: KitStack["issue"],
  grant: { agentId: string; resource: string; scopes: string[]; calls: number | undefined; expiresInMs: number },
): Promise<string> {
  const { mandate } = await issue.createMandate({
    tenant: "demo",
    mandate: {
      principal: { id: "alice", kind: PartyKind.HUMAN },
      agent: { id: grant.agentId, kind: PartyKind.AGENT },
      scopes: grant.scopes,
      resources: [grant.resource],
      notBefore: timestampFromMs(Date.now() - 1000),
      expireTime: timestampFromMs(Date.now() + grant.expiresInMs),
      usageLimits: grant.calls === undefined ? [] : [{ meter: "calls", maximum: grant.calls }],
      maxDelegationDepth: 0,
    },
  });
  if (!mandate) throw new Error("no mandate");
  return mandate.id;
}

/** One raw POST of `body` (a string as is, else JSON) to `url` with `token` and a fresh DPoP proof by `key`. */
export async function dpopPost(url: string, key: AgentKey, token: string, body: unknown) {
  const response = await fetch(url, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      authorization: `DPoP ${token}`,
      dpop: await dpopProof(key, token, "POST", url),
    },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await response.text();
  // biome-ignore lint/suspicious/noExplicitAny: a JSON-RPC answer, read by the assertions
  const json: any = text ? JSON.parse(text) : undefined;
  return { status: response.status, headers: response.headers, json };
}

/** A JSON-RPC tools/call request. */
export const toolCall = (id: number | string, name: string, args: JsonObject = {}) => ({
  jsonrpc: "2.0",
  id,
  method: "tools/call",
  params: { name, arguments: args },
});
