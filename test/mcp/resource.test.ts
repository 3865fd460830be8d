// The MCP resource-server kit (issue 19, item 1) on plain Node http: a real MCP SDK server behind
// `protect()`, a real Mandate (in-process) issuing the tokens, the real SDK client calling tools. The metadata at
// both well-known URLs; 401 with resource_metadata without a token; wrong audience, expired, DPoP
// replay, another key's proof, a DPoP-bound token as Bearer, a revoked token (feed), introspection
// (active, revoked, wrong credentials: fail closed), the scopes a server requires (403 step-up).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { McpResourceServer, protect } from "../../services/mcp/resource/index.ts";
import { DPOP_ALGORITHMS } from "../../services/shared/oauth/dpop.ts";
import { RevocationFeed } from "../../services/shared/oauth/revocation-feed.ts";
import { dpopProof, newAgentKey } from "../helpers/agents.ts";
import {
  agentToken,
  bearerFetch,
  whoami as callWhoami,
  clientToken,
  type Deployment,
  deployment,
  dpopFetch,
  initialize,
  type Listening,
  listen,
  MCP_SCOPE,
  revoke,
  serveMcp,
} from "../helpers/mcp-resource-fixtures.ts";

const ALGS = DPOP_ALGORITHMS.join(" ");

let mcp: Listening;
let resource: string;
let deployed: Deployment;
let feed: RevocationFeed;
let server: McpResourceServer;

beforeAll(async () => {
  mcp = await listen();
  resource = `${mcp.origin}/mcp`;
  deployed = await deployment(resource, "https://elsewhere.example/mcp");
  const { issuer, base, mcpClient } = deployed;
  feed = new RevocationFeed({
    url: `${issuer}/revocations`,
    token: () => clientToken(issuer, mcpClient, "mandate:introspect", base),
  });
  await feed.start();
  server = new McpResourceServer({
    issuer,
    resource,
    scopesSupported: [MCP_SCOPE, "mcp:admin"],
    requiredScopes: [MCP_SCOPE],
    resourceName: "Test MCP server",
    revocations: feed,
  });
  const guard = protect(server);
  mcp.handle = async (req, res) => {
    if (await guard(req, res)) await serveMcp(req, res);
    else if (!res.headersSent) res.writeHead(404).end();
  };
});

afterAll(async () => {
  await feed?.stop();
  await mcp?.close();
  await deployed?.stop();
});

const whoami = (fetcher: typeof fetch) => callWhoami(fetcher, resource);

/** The parts of an MCP POST presenting `token` as Bearer that McpResourceServer.verify() reads. */
const bearerRequest = (token: string) =>
  ({
    method: "POST",
    url: "/mcp",
    headers: { host: new URL(resource).host, authorization: `Bearer ${token}` },
    socket: {},
  }) as never;

describe("protected resource metadata (RFC 9728)", () => {
  it("is served at the path-inserted and the root well-known URLs, with CORS, GET only", async () => {
    for (const url of [
      `${mcp.origin}/.well-known/oauth-protected-resource/mcp`,
      `${mcp.origin}/.well-known/oauth-protected-resource`,
    ]) {
      const response = await fetch(url, { headers: { origin: "https://app.example" } });
      expect(response.status).toBe(200);
      expect(response.headers.get("content-type")).toBe("application/json");
      expect(response.headers.get("access-control-allow-origin")).toBe("*");
      expect(await response.json()).toEqual({
        resource,
        authorization_servers: [deployed.issuer],
        scopes_supported: [MCP_SCOPE, "mcp:admin"],
        bearer_methods_supported: ["header"],
        resource_name: "Test MCP server",
        dpop_signing_alg_values_supported: [...DPOP_ALGORITHMS],
      });
    }
    const post = await fetch(`${mcp.origin}/.well-known/oauth-protected-resource/mcp`, { method: "POST" });
    expect(post.status).toBe(405);
    expect(post.headers.get("allow")).toBe("GET, HEAD, OPTIONS");
    const preflight = await fetch(`${mcp.origin}/.well-known/oauth-protected-resource/mcp`, { method: "OPTIONS" });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-methods")).toContain("GET");
  });
});

describe("protect() on plain http with the MCP SDK", () => {
  it("lets the agent's DPoP-bound token call a tool, and the tool sees who called", async () => {
    const token = await agentToken(deployed, resource);
    const seen = await whoami(dpopFetch(token, deployed.agent));
    expect(seen).toEqual({
      clientId: deployed.agent.clientId,
      scopes: [MCP_SCOPE],
      resource,
      sub: deployed.agent.clientId,
      dpopJkt: deployed.agent.jkt,
    });
  });

  it("lets a bearer token of the right audience call a tool", async () => {
    const token = await clientToken(deployed.issuer, deployed.bearer, MCP_SCOPE, resource);
    expect((await whoami(bearerFetch(token))).clientId).toBe(deployed.bearer.clientId);
  });

  it("answers a request without a token 401 with resource_metadata and scope, no error code (exact syntax)", async () => {
    const response = await initialize(resource, {});
    expect(response.status).toBe(401);
    const metadata = `${mcp.origin}/.well-known/oauth-protected-resource/mcp`;
    expect(response.headers.get("www-authenticate")).toBe(
      `Bearer scope="${MCP_SCOPE}", resource_metadata="${metadata}", DPoP scope="${MCP_SCOPE}", resource_metadata="${metadata}", algs="${ALGS}"`,
    );
    expect(await response.json()).toEqual({});
    // The SDK client without an auth provider fails on it as a 401.
    await expect(whoami(fetch)).rejects.toMatchObject({ code: 401 });
  });

  it("refuses a token of another audience: 401 invalid_token", async () => {
    const token = await clientToken(deployed.issuer, deployed.bearer, MCP_SCOPE, "https://elsewhere.example/mcp");
    const response = await initialize(resource, { authorization: `Bearer ${token}` });
    expect(response.status).toBe(401);
    expect(response.headers.get("www-authenticate")).toMatch(
      /^Bearer error="invalid_token", error_description="[^"]+", scope="mcp:tools", resource_metadata="[^"]+", DPoP /,
    );
    expect(await response.json()).toMatchObject({ error: "invalid_token" });
    await expect(whoami(bearerFetch(token))).rejects.toMatchObject({ code: 401 });
  });

  it("refuses an expired token (the server's clock two hours on)", async () => {
    const later = new McpResourceServer({
      issuer: deployed.issuer,
      resource,
      now: () => Date.now() + 2 * 3_600_000,
    });
    const token = await clientToken(deployed.issuer, deployed.bearer, MCP_SCOPE, resource);
    await expect(later.verify(bearerRequest(token))).rejects.toMatchObject({ status: 401, error: "invalid_token" });
    // The same token, now, verifies.
    await expect(server.verify(bearerRequest(token))).resolves.toMatchObject({ token });
  });

  it("refuses a DPoP proof replayed, and a proof by another key", async () => {
    const token = await agentToken(deployed, resource);
    const proof = await dpopProof(deployed.agent, token, "POST", resource);
    const headers = { authorization: `DPoP ${token}`, dpop: proof };
    expect((await initialize(resource, headers)).status).toBe(200);
    const replayed = await initialize(resource, headers);
    expect(replayed.status).toBe(401);
    expect(replayed.headers.get("www-authenticate")).toMatch(
      /^Bearer scope="mcp:tools", resource_metadata="[^"]+", DPoP error="invalid_dpop_proof", error_description="the DPoP proof was already used", scope="mcp:tools", resource_metadata="[^"]+", algs="[^"]+"$/,
    );
    const thief = await newAgentKey();
    const stolen = await initialize(resource, {
      authorization: `DPoP ${token}`,
      dpop: await dpopProof(thief, token, "POST", resource),
    });
    expect(stolen.status).toBe(401);
    expect(stolen.headers.get("www-authenticate")).toContain('DPoP error="invalid_dpop_proof"');
    await expect(whoami(dpopFetch(token, thief))).rejects.toMatchObject({ code: 401 });
    // A proof for another URL (htu) is refused too.
    const elsewhere = await initialize(resource, {
      authorization: `DPoP ${token}`,
      dpop: await dpopProof(deployed.agent, token, "POST", `${mcp.origin}/other`),
    });
    expect(elsewhere.status).toBe(401);
  });

  it("refuses a DPoP-bound token presented as Bearer (RFC 9449 §7.2)", async () => {
    const token = await agentToken(deployed, resource);
    const response = await initialize(resource, { authorization: `Bearer ${token}` });
    expect(response.status).toBe(401);
    expect(response.headers.get("www-authenticate")).toMatch(
      /^Bearer error="invalid_token", error_description="this access token requires the DPoP scheme"/,
    );
    await expect(whoami(bearerFetch(token))).rejects.toMatchObject({ code: 401 });
  });

  it("refuses a token without the scope the server requires: 403 insufficient_scope naming it", async () => {
    const token = await clientToken(deployed.issuer, deployed.bearer, "mcp:admin", resource);
    const response = await initialize(resource, { authorization: `Bearer ${token}` });
    expect(response.status).toBe(403);
    expect(response.headers.get("www-authenticate")).toMatch(
      /^Bearer error="insufficient_scope", error_description="the access token lacks the scope mcp:tools", scope="mcp:admin mcp:tools", resource_metadata="/,
    );
  });

  it("refuses a revoked token through the revocation feed within a second", async () => {
    const token = await clientToken(deployed.issuer, deployed.bearer, MCP_SCOPE, resource);
    expect((await whoami(bearerFetch(token))).clientId).toBe(deployed.bearer.clientId);
    await revoke(deployed.issuer, deployed.bearer, token);
    let status = 0;
    for (const deadline = Date.now() + 5_000; Date.now() < deadline; ) {
      status = (await initialize(resource, { authorization: `Bearer ${token}` })).status;
      if (status === 401) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(status).toBe(401);
    await expect(whoami(bearerFetch(token))).rejects.toMatchObject({ code: 401 });
  });
});

describe("introspection (RFC 7662) with the MCP server's client credentials", () => {
  it("accepts an active token, refuses a revoked one, and fails closed with wrong credentials", async () => {
    const { issuer, mcpClient, bearer } = deployed;
    const introspecting = new McpResourceServer({
      issuer,
      resource,
      introspection: { clientId: mcpClient.clientId, clientSecret: mcpClient.clientSecret },
    });
    const wrongSecret = new McpResourceServer({
      issuer,
      resource,
      introspection: { clientId: mcpClient.clientId, clientSecret: "not-the-secret" },
    });
    const token = await clientToken(issuer, bearer, MCP_SCOPE, resource);
    await expect(introspecting.verify(bearerRequest(token))).resolves.toMatchObject({ token });
    await expect(wrongSecret.verify(bearerRequest(token))).rejects.toMatchObject({
      status: 401,
      error: "invalid_token",
    });
    await revoke(issuer, bearer, token);
    await expect(introspecting.verify(bearerRequest(token))).rejects.toMatchObject({
      status: 401,
      error: "invalid_token",
    });
  });

  it("decides while the revocation feed is down (fallback), and without introspection refuses (fail closed)", async () => {
    const { issuer, mcpClient, bearer } = deployed;
    // A feed never started: silent, so not live.
    const silent = new RevocationFeed({ url: `${issuer}/revocations`, token: async () => "unused" });
    const credentials = { clientId: mcpClient.clientId, clientSecret: mcpClient.clientSecret };
    const fallback = new McpResourceServer({ issuer, resource, revocations: silent, introspection: credentials });
    const feedOnly = new McpResourceServer({ issuer, resource, revocations: silent });
    const token = await clientToken(issuer, bearer, MCP_SCOPE, resource);
    await expect(fallback.verify(bearerRequest(token))).resolves.toMatchObject({ token });
    await expect(feedOnly.verify(bearerRequest(token))).rejects.toMatchObject({ status: 401, error: "invalid_token" });
    await revoke(issuer, bearer, token);
    await expect(fallback.verify(bearerRequest(token))).rejects.toMatchObject({ status: 401, error: "invalid_token" });
  });
});
