// The demo MCP server of `mandate demo mcp`: the MCP SDK's low-level Server over Streamable HTTP
// (stateless: a server and transport per request), protected by the MCP kit in a few lines:
//   1. McpResourceServer verifies the access token for this server (RFC 9728 metadata, audience,
//      DPoP, the tenant's revocation feed) — a 401 challenge otherwise;
//   2. each JSON-RPC message is mapped to AuthZEN requests (COAZ-MCP: the tools' declared mappings);
//   3. Authorize decides them in access-token mode under the tenant's policy, counting the mandate's
//      usage; a deny is JSON-RPC -32001, a step_up obligation an RFC 9470 challenge.
// The server itself only lists and runs tools: it never sees a token it has not been allowed.
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { CallToolRequestSchema, ListToolsRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import { AuthorizeClient } from "../../authorize/client.ts";
import { RevocationFeed } from "../../shared/oauth/revocation-feed.ts";
import { AuthorizePdp, McpResourceServer, metadataUrls, protectMcp } from "../index.ts";
import { DEMO_TOOLS, type DemoTool } from "./tools.ts";

export interface DemoServerOptions {
  /** The Mandate tenant issuer whose tokens the server accepts, e.g. http://127.0.0.1:4460/t/demo. */
  issuer: string;
  /** Authorize's gRPC address (host:port), which decides every message. */
  authorizeAddress: string;
  /** This server's own client at Mandate (client_credentials, scopes mandate:authorize mandate:introspect). */
  client: { clientId: string; clientSecret: string };
  /** Mandate's API audience, the `resource` of the server's own tokens (the issuer's base URL). */
  apiAudience: string;
  host?: string;
  /** 0: any free port. */
  port?: number;
  tools?: readonly DemoTool[];
  /** Told about failures callers see only as -32603 or 503 (Authorize or the feed down). */
  onError?: (error: unknown) => void;
}

export interface DemoServer {
  /** The MCP endpoint, also the server's canonical URI (the audience its tokens must name). */
  url: string;
  /** Its RFC 9728 Protected Resource Metadata. */
  metadataUrl: string;
  close(): Promise<void>;
}

export async function startDemoServer(options: DemoServerOptions): Promise<DemoServer> {
  const tools = options.tools ?? DEMO_TOOLS;
  const host = options.host ?? "127.0.0.1";
  const http = createServer();
  await new Promise<void>((resolve, reject) => {
    http.once("error", reject);
    http.listen(options.port ?? 0, host, resolve);
  });
  const url = `http://${host}:${(http.address() as AddressInfo).port}/mcp`;
  const tenant = new URL(options.issuer).pathname.split("/").at(-1) as string;

  // The server's own token for Mandate's API: Authorize calls and the revocation feed. Asked once
  // now, so wrong credentials fail here rather than as a feed that never connects.
  const serviceToken = clientCredentials(options);
  await serviceToken().catch((error: unknown) => {
    http.close();
    throw error;
  });
  const revocations = new RevocationFeed({ url: `${options.issuer}/revocations`, token: serviceToken });
  await revocations.start();
  const authorize = new AuthorizeClient({ address: options.authorizeAddress, token: serviceToken });
  const guard = protectMcp({
    server: new McpResourceServer({
      issuer: options.issuer,
      resource: url,
      resourceName: "Mandate MCP demo (orders)",
      scopesSupported: ["orders.read", "orders.refund", "payments.send"],
      revocations,
    }),
    pdp: new AuthorizePdp({ authorize, tenant, audience: url }),
    tools,
    onError: options.onError,
  });

  // The guard answers the metadata and every refusal; what it lets through reaches the MCP server.
  http.on("request", (req: IncomingMessage, res: ServerResponse) => {
    void guard(req, res, async (body) => {
      if (new URL(req.url ?? "/", url).pathname !== "/mcp") return void res.writeHead(404).end();
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
      res.on("close", () => void transport.close());
      await mcpServer(tools).connect(transport);
      await transport.handleRequest(req, res, body);
    });
  });

  return {
    url,
    metadataUrl: metadataUrls(url).pathInserted,
    async close() {
      await revocations.stop();
      authorize.close();
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}

/** The MCP server proper: lists the tools (mappings included, COAZ-MCP "Declaring a Mapping") and runs them. */
function mcpServer(tools: readonly DemoTool[]): Server {
  const server = new Server({ name: "mandate-mcp-demo", version: "1.0.0" }, { capabilities: { tools: {} } });
  server.setRequestHandler(ListToolsRequestSchema, () => ({
    tools: tools.map(({ name, description, inputSchema }) => ({ name, description, inputSchema })),
  }));
  server.setRequestHandler(CallToolRequestSchema, (request) => {
    const tool = tools.find((t) => t.name === request.params.name);
    if (!tool) return { isError: true, content: [{ type: "text", text: `no tool ${request.params.name}` }] };
    try {
      const result = tool.run(request.params.arguments ?? {});
      return { content: [{ type: "text", text: JSON.stringify(result) }] };
    } catch (error) {
      return { isError: true, content: [{ type: "text", text: (error as Error).message }] };
    }
  });
  return server;
}

/** A client-credentials token of the server's own client, renewed a little before it expires. */
function clientCredentials(options: DemoServerOptions): () => Promise<string> {
  let current: { token: string; renewAt: number } | undefined;
  return async () => {
    if (current && Date.now() < current.renewAt) return current.token;
    const { clientId, clientSecret } = options.client;
    const response = await fetch(`${options.issuer}/oauth2/token`, {
      method: "POST",
      headers: { authorization: `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString("base64")}` },
      body: new URLSearchParams({
        grant_type: "client_credentials",
        scope: "mandate:authorize mandate:introspect",
        resource: options.apiAudience,
      }),
    });
    if (!response.ok) throw new Error(`the demo server's token: HTTP ${response.status} ${await response.text()}`);
    const { access_token, expires_in } = (await response.json()) as { access_token: string; expires_in: number };
    current = { token: access_token, renewAt: Date.now() + (expires_in * 1000) / 2 };
    return access_token;
  };
}
