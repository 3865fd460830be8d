// What the MCP resource-server tests share: a real Mandate (in-process) with the clients an MCP
// deployment has — an agent whose tokens are DPoP-bound to its key, a plain confidential client with
// bearer tokens, and the MCP server's own client holding `mandate:introspect` (for the revocation
// feed and introspection) — a real MCP SDK server (McpServer + StreamableHTTPServerTransport,
// stateless) with a tool that reports who called it, and fetches for the SDK client that present a
// token as Bearer or as DPoP with a fresh proof per request.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { AuthInfo } from "@modelcontextprotocol/sdk/server/auth/types.js";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { startInProcess, TENANT } from "../../bench/in-process.ts";
import { Issue } from "../../gen/mandate/v1/issue_pb.js";
import type { VerifiedCaller } from "../../services/mcp/types.ts";
import {
  type Agent,
  type AgentKey,
  discover,
  dpopProof,
  registerAgent,
  type TokenEndpoint,
  tokenRequest,
} from "./agents.ts";

export const MCP_SCOPE = "mcp:tools";

/** A listening http server whose handler is set later (its URL must exist before clients register). */
export interface Listening {
  server: Server;
  origin: string;
  handle: (req: IncomingMessage, res: ServerResponse) => void;
  close(): Promise<void>;
}

export async function listen(): Promise<Listening> {
  const listening = {
    handle: (_req: IncomingMessage, res: ServerResponse) => {
      res.writeHead(503).end();
    },
  } as Listening;
  listening.server = createServer((req, res) => listening.handle(req, res));
  await new Promise<void>((resolve) => listening.server.listen(0, "127.0.0.1", resolve));
  listening.origin = `http://127.0.0.1:${(listening.server.address() as AddressInfo).port}`;
  listening.close = () =>
    new Promise((resolve) => {
      listening.server.closeAllConnections();
      listening.server.close(() => resolve());
    });
  return listening;
}

export interface Deployment {
  /** The tenant's issuer (`{base}/t/demo`) and Mandate's public base URL. */
  issuer: string;
  base: string;
  endpoint: TokenEndpoint;
  /** The agent: its tokens are DPoP-bound to its key. */
  agent: Agent;
  /** A confidential client with bearer tokens, allowed this MCP server and another resource. */
  bearer: { clientId: string; clientSecret: string };
  /** The MCP server's own client (`mandate:introspect`): revocation feed and introspection. */
  mcpClient: { clientId: string; clientSecret: string };
  stop(): Promise<void>;
}

/**
 * Mandate and its clients for an MCP server at `resource` (and `otherResource`, for wrong-audience
 * tokens). Mandate runs in this process (bench/in-process.ts: the same startMandate as `mandate
 * dev`, HTTP edge and all services): a child process (startOAuthServer) does not start within its
 * 20 s limit on the shared, loaded CI cores.
 */
export async function deployment(resource: string, otherResource: string): Promise<Deployment> {
  const mandate = await startInProcess();
  const base = mandate.config.publicBaseUrl;
  const issuer = `${base}/t/${TENANT}`;
  const issue = mandate.mandate.clients.get(Issue);
  const register = async (metadata: { grantTypes: string[]; scope: string; resources: string[] }) => {
    const { client, clientSecret } = await issue.createClient({ tenant: TENANT, metadata });
    return { clientId: client?.clientId as string, clientSecret };
  };
  const endpoint = await discover(issuer);
  const agent = await registerAgent(issue, {
    scope: MCP_SCOPE,
    resources: [resource],
    grantTypes: ["client_credentials"],
  });
  const bearer = await register({
    grantTypes: ["client_credentials"],
    scope: `${MCP_SCOPE} mcp:admin`,
    resources: [resource, otherResource],
  });
  const mcpClient = await register({
    grantTypes: ["client_credentials"],
    scope: "mandate:introspect",
    resources: [base],
  });
  return { issuer, base, endpoint, agent, bearer, mcpClient, stop: () => mandate.stop() };
}

/** A client-credentials token of a confidential client (client_secret_basic), no DPoP: a bearer token. */
export async function clientToken(
  issuer: string,
  client: { clientId: string; clientSecret: string },
  scope: string,
  resource: string,
): Promise<string> {
  const response = await fetch(`${issuer}/oauth2/token`, {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      authorization: `Basic ${Buffer.from(`${client.clientId}:${client.clientSecret}`).toString("base64")}`,
    },
    body: new URLSearchParams({ grant_type: "client_credentials", scope, resource }),
  });
  if (response.status !== 200) throw new Error(`token: ${response.status} ${await response.text()}`);
  return ((await response.json()) as { access_token: string }).access_token;
}

/** The agent's DPoP-bound client-credentials token for `resource`. */
export async function agentToken(deployed: Pick<Deployment, "endpoint" | "agent">, resource: string): Promise<string> {
  const response = await tokenRequest(deployed.endpoint, deployed.agent, "client_credentials", {
    scope: MCP_SCOPE,
    resource,
  });
  if (response.status !== 200) throw new Error(`token: ${response.status} ${await response.text()}`);
  return ((await response.json()) as { access_token: string }).access_token;
}

/** RFC 7009 revocation of a token by its client. */
export async function revoke(issuer: string, client: { clientId: string; clientSecret: string }, token: string) {
  const response = await fetch(`${issuer}/oauth2/revoke`, {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      authorization: `Basic ${Buffer.from(`${client.clientId}:${client.clientSecret}`).toString("base64")}`,
    },
    body: new URLSearchParams({ token, token_type_hint: "access_token" }),
  });
  if (response.status !== 200) throw new Error(`revoke: ${response.status} ${await response.text()}`);
}

/** What the `whoami` tool saw of its caller: the SDK's authInfo and the kit's VerifiedCaller. */
export interface WhoAmI {
  clientId: string | undefined;
  scopes: string[] | undefined;
  resource: string | undefined;
  sub: string | undefined;
  dpopJkt: string | undefined;
}

/** A fresh stateless MCP server for one request (the SDK's stateless pattern), with the `whoami` tool. */
export function mcpServer(): McpServer {
  const server = new McpServer({ name: "resource-test", version: "1.0.0" });
  server.registerTool("whoami", { description: "who is calling" }, async (extra) => {
    const auth = extra.authInfo as AuthInfo | undefined;
    const caller = auth?.extra?.caller as VerifiedCaller | undefined;
    const seen: WhoAmI = {
      clientId: auth?.clientId,
      scopes: auth?.scopes,
      resource: auth?.resource?.href,
      sub: caller?.claims.sub,
      dpopJkt: caller?.claims.dpopJkt,
    };
    return { content: [{ type: "text", text: JSON.stringify(seen) }] };
  });
  return server;
}

/** Serves one MCP POST with a fresh server and transport (`req.auth` reaches the tools as authInfo). */
export function serveMcp(req: IncomingMessage, res: ServerResponse, body?: unknown): Promise<void> {
  return serveStateless(req, res, body, mcpServer);
}

/**
 * Serves one MCP POST with a fresh server of `newServer` on a fresh stateless transport (the SDK's
 * stateless pattern), both closed with the response; `enableJsonResponse` answers JSON, not SSE.
 */
export async function serveStateless(
  req: IncomingMessage,
  res: ServerResponse,
  body: unknown,
  newServer: () => Pick<McpServer, "connect" | "close">,
  options: { enableJsonResponse?: boolean } = {},
): Promise<void> {
  // Stateless: no standalone SSE stream, no session to end (the SDK's stateless example answers 405).
  if (req.method !== "POST") {
    res.writeHead(405, { allow: "POST" }).end();
    return;
  }
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, ...options });
  const server = newServer();
  res.on("close", () => {
    void transport.close();
    void server.close();
  });
  await server.connect(transport);
  await transport.handleRequest(req as IncomingMessage & { auth?: AuthInfo }, res, body);
}

/** Calls the `whoami` tool at `url` with the MCP SDK client over `fetcher`: what the tool saw. */
export async function whoami(fetcher: typeof fetch, url: string): Promise<WhoAmI> {
  const client = new Client({ name: "resource-test-client", version: "1.0.0" });
  await client.connect(new StreamableHTTPClientTransport(new URL(url), { fetch: fetcher }));
  try {
    const result = await client.callTool({ name: "whoami", arguments: {} });
    const [content] = result.content as Array<{ type: string; text: string }>;
    return JSON.parse(content?.text ?? "{}") as WhoAmI;
  } finally {
    await client.close();
  }
}

/** A fetch presenting `token` as Bearer. */
export function bearerFetch(token: string): typeof fetch {
  return (input, init) => {
    const headers = new Headers(init?.headers);
    headers.set("authorization", `Bearer ${token}`);
    return fetch(input, { ...init, headers });
  };
}

/** A fetch presenting `token` under the DPoP scheme with a fresh proof by `key` for each request. */
export function dpopFetch(token: string, key: AgentKey): typeof fetch {
  return async (input, init) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const method = init?.method ?? (input instanceof Request ? input.method : "GET");
    const headers = new Headers(init?.headers);
    headers.set("authorization", `DPoP ${token}`);
    headers.set("dpop", await dpopProof(key, token, method, `${url.origin}${url.pathname}`));
    return fetch(input, { ...init, headers });
  };
}

/** A JSON-RPC initialize POST, as an MCP client's first message (for raw requests). */
export function initialize(url: string, headers: Record<string, string>): Promise<Response> {
  return fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...headers },
    body: JSON.stringify({
      jsonrpc: "2.0",
      id: 1,
      method: "initialize",
      params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "raw", version: "1" } },
    }),
  });
}
