// The conformance suite's MCP server (everything-server.ts) protected by the MCP kit exactly as the
// demo server (services/mcp/demo/server.ts) is: McpResourceServer (audience, DPoP, the tenant's
// revocation feed), COAZ-MCP default mappings, AuthorizePdp deciding in access-token mode. Unlike the
// demo it keeps MCP sessions (the SDK's stateful Streamable HTTP transport), which the scenarios with
// server-to-client requests (sampling, elicitation), subscriptions and several SSE streams need, and
// it turns on the SDK's DNS-rebinding protection as a localhost MCP server should.
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { AuthorizeClient } from "../../../services/authorize/client.ts";
import { AuthorizePdp, McpResourceServer, protectMcp, serveMetadata } from "../../../services/mcp/index.ts";
import { RevocationFeed } from "../../../services/shared/oauth/revocation-feed.ts";
import { everythingServer } from "./everything-server.ts";

export interface ProtectedServerOptions {
  /** The tenant issuer, e.g. http://127.0.0.1:4460/t/demo. */
  issuer: string;
  /** Authorize's gRPC address (host:port). */
  authorizeAddress: string;
  /** The MCP server's own token for Mandate's API (scopes mandate:authorize mandate:introspect). */
  serviceToken: () => Promise<string>;
  /** Failures callers see only as -32603 / 503. */
  onError?: (error: unknown) => void;
}

export interface ProtectedServer {
  /** The MCP endpoint, also its canonical URI (the audience of its tokens). */
  url: string;
  close(): Promise<void>;
}

export async function startProtectedServer(options: ProtectedServerOptions): Promise<ProtectedServer> {
  const http = createServer();
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  const host = `127.0.0.1:${(http.address() as AddressInfo).port}`;
  const url = `http://${host}/mcp`;
  const tenant = new URL(options.issuer).pathname.split("/").at(-1) as string;

  const revocations = new RevocationFeed({ url: `${options.issuer}/revocations`, token: options.serviceToken });
  await revocations.start();
  const verifier = new McpResourceServer({ issuer: options.issuer, resource: url, revocations });
  const authorize = new AuthorizeClient({ address: options.authorizeAddress, token: options.serviceToken });
  const guard = protectMcp({
    server: verifier,
    pdp: new AuthorizePdp({ authorize, tenant, audience: url }),
    onError: options.onError,
  });

  const sessions = new Map<string, StreamableHTTPServerTransport>();
  const transportFor = async (req: IncomingMessage, body: unknown) => {
    const id = req.headers["mcp-session-id"];
    if (typeof id === "string") return sessions.get(id);
    const initialize = !Array.isArray(body) && (body as { method?: unknown } | undefined)?.method === "initialize";
    if (!initialize) return undefined;
    const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
      sessionIdGenerator: randomUUID,
      onsessioninitialized: (sessionId) => void sessions.set(sessionId, transport),
      enableDnsRebindingProtection: true,
      allowedHosts: [host],
    });
    transport.onclose = () => {
      if (transport.sessionId) sessions.delete(transport.sessionId);
    };
    await everythingServer().connect(transport);
    return transport;
  };

  http.on("request", (req: IncomingMessage, res: ServerResponse) => {
    if (serveMetadata(verifier.metadata, req, res)) return;
    if (new URL(req.url ?? "/", url).pathname !== "/mcp") {
      res.writeHead(404).end();
      return;
    }
    void guard(req, res, async (body) => {
      const transport = await transportFor(req, body);
      if (!transport) {
        res.writeHead(404, { "content-type": "application/json" });
        res.end(JSON.stringify({ jsonrpc: "2.0", id: null, error: { code: -32001, message: "Session not found" } }));
        return;
      }
      await transport.handleRequest(req, res, body);
    });
  });

  return {
    url,
    async close() {
      for (const transport of sessions.values()) await transport.close();
      await revocations.stop();
      authorize.close();
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}
