// The MCP resource-server kit in frameworks: Express with the MCP SDK's own `requireBearerAuth` and
// the kit's tokenVerifier (with and without withRequestContext), Express with `protect()`, and the
// Fastify-style hook. Fastify is not installed here: the hook is driven by a plain http server
// handing it `{ raw }` request/reply objects with `hijack()`, as Fastify does. Real Mandate, real MCP
// SDK server and client.
import { requireBearerAuth } from "@modelcontextprotocol/sdk/server/auth/middleware/bearerAuth.js";
import express from "express";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  fastifyHook,
  type HookRequest,
  McpResourceServer,
  protect,
  withRequestContext,
} from "../../services/mcp/resource/index.ts";
import {
  agentToken,
  bearerFetch,
  clientToken,
  type Deployment,
  deployment,
  dpopFetch,
  initialize,
  type Listening,
  listen,
  MCP_SCOPE,
  serveMcp,
  whoami,
} from "../helpers/mcp-resource-fixtures.ts";

let app: Listening;
let hooked: Listening;
let deployed: Deployment;
let server: McpResourceServer;
const hijacked: string[] = [];

beforeAll(async () => {
  app = await listen();
  hooked = await listen();
  // One audience per listener; the Express app's is /mcp (its other routes share the token audience).
  deployed = await deployment(`${app.origin}/mcp`, `${hooked.origin}/mcp`);
  server = new McpResourceServer({
    issuer: deployed.issuer,
    resource: `${app.origin}/mcp`,
    scopesSupported: [MCP_SCOPE],
    requiredScopes: [MCP_SCOPE],
  });
  const sdkAuth = requireBearerAuth({
    verifier: server.tokenVerifier(),
    requiredScopes: [MCP_SCOPE],
    resourceMetadataUrl: server.resourceMetadataUrl,
  });
  const express5 = express();
  express5.use(server.metadataHandler());
  // The SDK's middleware with the kit's verifier, the request kept for it.
  express5.all("/mcp", withRequestContext(), sdkAuth, (req, res) => serveMcp(req, res));
  // Without the request context: bearer tokens still work, sender-constrained ones cannot.
  express5.all("/sdk-no-context/mcp", sdkAuth, (req, res) => serveMcp(req, res));
  // The kit's own guard as Express middleware.
  express5.use("/guarded/mcp", protect(server));
  express5.all("/guarded/mcp", (req, res) => serveMcp(req, res));
  app.handle = express5;

  const other = new McpResourceServer({ issuer: deployed.issuer, resource: `${hooked.origin}/mcp` });
  const hook = fastifyHook(other);
  hooked.handle = async (req, res) => {
    const request: HookRequest = { raw: req };
    await hook(request, {
      raw: res,
      hijack: () => {
        hijacked.push(req.url ?? "");
      },
    });
    if (res.writableEnded) return;
    Object.assign(req, { auth: request.auth });
    await serveMcp(req, res);
  };
});

afterAll(async () => {
  await app?.close();
  await hooked?.close();
  await deployed?.stop();
});

describe("Express with the MCP SDK's requireBearerAuth and the kit's tokenVerifier", () => {
  it("serves the metadata at both well-known URLs", async () => {
    for (const path of ["/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"]) {
      const response = await fetch(`${app.origin}${path}`);
      expect(response.status).toBe(200);
      expect(await response.json()).toMatchObject({
        resource: `${app.origin}/mcp`,
        bearer_methods_supported: ["header"],
      });
    }
  });

  it("accepts a bearer token, and the tool gets the SDK's AuthInfo with the verified caller", async () => {
    const token = await clientToken(deployed.issuer, deployed.bearer, MCP_SCOPE, `${app.origin}/mcp`);
    const seen = await whoami(bearerFetch(token), `${app.origin}/mcp`);
    expect(seen).toMatchObject({
      clientId: deployed.bearer.clientId,
      scopes: [MCP_SCOPE],
      resource: `${app.origin}/mcp`,
      sub: deployed.bearer.clientId,
    });
    // Without withRequestContext too (the audience is the same canonical URI).
    expect((await whoami(bearerFetch(token), `${app.origin}/sdk-no-context/mcp`)).clientId).toBe(
      deployed.bearer.clientId,
    );
  });

  it("refuses a DPoP-bound token: as Bearer (RFC 9449 §7.2) and as DPoP (the SDK takes Bearer only)", async () => {
    const token = await agentToken(deployed, `${app.origin}/mcp`);
    for (const path of ["/mcp", "/sdk-no-context/mcp"]) {
      const response = await initialize(`${app.origin}${path}`, { authorization: `Bearer ${token}` });
      expect(response.status).toBe(401);
      expect(response.headers.get("www-authenticate")).toBe(
        `Bearer error="invalid_token", error_description="this access token requires the DPoP scheme", scope="${MCP_SCOPE}", resource_metadata="${server.resourceMetadataUrl}"`,
      );
    }
    await expect(whoami(dpopFetch(token, deployed.agent), `${app.origin}/mcp`)).rejects.toMatchObject({ code: 401 });
  });

  it("refuses a token of another audience and a token without the required scope", async () => {
    const foreign = await clientToken(deployed.issuer, deployed.bearer, MCP_SCOPE, `${hooked.origin}/mcp`);
    const refused = await initialize(`${app.origin}/mcp`, { authorization: `Bearer ${foreign}` });
    expect(refused.status).toBe(401);
    expect(refused.headers.get("www-authenticate")).toMatch(/^Bearer error="invalid_token"/);
    const narrow = await clientToken(deployed.issuer, deployed.bearer, "mcp:admin", `${app.origin}/mcp`);
    const scoped = await initialize(`${app.origin}/mcp`, { authorization: `Bearer ${narrow}` });
    expect(scoped.status).toBe(403);
    expect(scoped.headers.get("www-authenticate")).toMatch(/^Bearer error="insufficient_scope"/);
  });
});

describe("Express with protect()", () => {
  it("lets the DPoP-bound token through with its proof (the URL the client called is the mounted one)", async () => {
    const guarded = new McpResourceServer({ issuer: deployed.issuer, resource: `${app.origin}/mcp` });
    expect(guarded.resource).toBe(server.resource);
    const token = await agentToken(deployed, `${app.origin}/mcp`);
    const seen = await whoami(dpopFetch(token, deployed.agent), `${app.origin}/guarded/mcp`);
    expect(seen).toMatchObject({ clientId: deployed.agent.clientId, dpopJkt: deployed.agent.jkt });
    const refused = await initialize(`${app.origin}/guarded/mcp`, { authorization: `Bearer ${token}` });
    expect(refused.status).toBe(401);
    expect((await initialize(`${app.origin}/guarded/mcp`, {})).headers.get("www-authenticate")).toMatch(
      /^Bearer scope="mcp:tools", resource_metadata=/,
    );
  });
});

describe("the Fastify-style hook (driven by plain http: Fastify is not installed)", () => {
  it("sets request.auth for a good token, and answers and hijacks the reply otherwise", async () => {
    const token = await clientToken(deployed.issuer, deployed.bearer, MCP_SCOPE, `${hooked.origin}/mcp`);
    expect((await whoami(bearerFetch(token), `${hooked.origin}/mcp`)).clientId).toBe(deployed.bearer.clientId);
    expect(hijacked).toEqual([]);
    const refused = await initialize(`${hooked.origin}/mcp`, {});
    expect(refused.status).toBe(401);
    expect(refused.headers.get("www-authenticate")).toContain(
      `resource_metadata="${hooked.origin}/.well-known/oauth-protected-resource/mcp"`,
    );
    const metadata = await fetch(`${hooked.origin}/.well-known/oauth-protected-resource/mcp`);
    expect(metadata.status).toBe(200);
    expect(hijacked).toEqual(["/mcp", "/.well-known/oauth-protected-resource/mcp"]);
  });
});
