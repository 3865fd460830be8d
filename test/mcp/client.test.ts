// The MCP client for agents (services/mcp/client) end to end: a real Mandate (startOAuthServer, 4 s
// access tokens) grants alice's mandate to a registered agent; the MCP SDK's Client connects over
// Streamable HTTP through mandateTransport to a real MCP SDK server that verifies every request with
// the resource-server library (ResourceServer: audience, DPoP proof and key, the revocation feed).
// Shown: the resource discovered from RFC 9728 metadata, tools listed and called with DPoP-bound
// tokens (the Authorization scheme DPoP, never Bearer), renewal before expiry (refresh when a refresh
// token was issued, re-exchange otherwise) and after invalid_token (the token revoked at Mandate),
// the resource server's nonce challenge answered once and never looped on, RFC 9470 step-up and
// insufficient_scope as typed errors, MandateUnusable once alice revokes the mandate (within a
// bounded wait), it expires or its token limit is used up, client_secret_basic and private_key_jwt,
// a stolen token refused from another key or as Bearer, an agent holding the wrong key or another
// agent's mandate refused at the token endpoint; and the same client through the resource kit's protect().
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { JsonObject } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import type { AuthInfo } from "@modelcontextprotocol/sdk/server/auth/types.js";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { decodeJwt, exportJWK } from "jose";
import * as oauth from "oauth4webapi";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClientKind } from "../../gen/mandate/v1/clients_pb.js";
import { PartyKind } from "../../gen/mandate/v1/common_pb.js";
import { mandateCondition } from "../../services/mcp/client/errors.ts";
import {
  AccessTokenRefused,
  InsufficientScope,
  type MandateClientAuthOptions,
  MandateClientError,
  MandateUnusable,
  mandateClientAuth,
  mandateTransport,
  StepUpRequired,
  TokenRequestRefused,
} from "../../services/mcp/client/index.ts";
import { McpResourceServer, type ProtectedRequest, protect } from "../../services/mcp/resource/index.ts";
import {
  ResourceServer,
  ResourceServerError,
  type VerifiedClaims,
} from "../../services/shared/oauth/resource-server.ts";
import { RevocationFeed } from "../../services/shared/oauth/revocation-feed.ts";
import { type Agent, claimsOf, dpopProof, newAgentKey, registerAgent } from "../helpers/agents.ts";
import { clientToken } from "../helpers/mcp-resource-fixtures.ts";
import { freePort, type OAuthServer, startOAuthServer } from "../helpers/oauth-server.ts";

const SCOPE = "orders.read orders.write";
const HOUR = 3_600_000;
const TTL_MS = 4_000;

let mandate: OAuthServer;
let feed: RevocationFeed;
let mcp: McpTestServer;

interface McpTestServer {
  origin: string;
  resource: string;
  /** What the server saw: each request's Authorization scheme, and the nonce challenges it sent. */
  schemes: string[];
  nonceChallenges: number;
  stop(): Promise<void>;
}

/**
 * A real MCP SDK server (stateless Streamable HTTP) at `{origin}/mcp` whose every request is verified
 * by ResourceServer for the audience `{origin}/mcp`; `nonce` makes it demand its DPoP nonce (RFC 9449
 * §9) — "once" keeping one, "always" changing it at every request. Tools: whoami (the token's claims),
 * pay (RFC 9470 step-up challenge), admin (insufficient_scope). `kit`: verified by the MCP resource kit's
 * protect() guard (services/mcp/resource) instead.
 */
async function startMcpServer(
  options: { nonce?: "once" | "always"; authorizationServers?: string[]; kit?: boolean } = {},
): Promise<McpTestServer> {
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const resource = `${origin}/mcp`;
  const rs = new ResourceServer({ issuer: mandate.issuer, audience: resource, revocations: feed });
  let nonce = randomUUID();
  const seen: McpTestServer = { origin, resource, schemes: [], nonceChallenges: 0, stop: async () => {} };

  const refuse = (res: ServerResponse, status: number, challenge: string, headers: Record<string, string> = {}) =>
    res.writeHead(status, { "www-authenticate": challenge, ...headers }).end();

  const metadata = (res: ServerResponse) =>
    res.writeHead(200, { "content-type": "application/json" }).end(
      JSON.stringify({
        resource,
        authorization_servers: options.authorizationServers ?? [mandate.issuer],
        scopes_supported: SCOPE.split(" "),
        dpop_signing_alg_values_supported: ["ES256"],
      }),
    );

  const guard = options.kit
    ? protect(new McpResourceServer({ issuer: mandate.issuer, resource, revocations: feed, dpopRequired: true }))
    : undefined;

  /** RFC 9449 §9: the proof must carry this server's nonce; true once the challenge is sent. */
  const nonceRefused = (req: IncomingMessage, res: ServerResponse) => {
    if (!options.nonce || decodeJwt(req.headers.dpop as string).nonce === nonce) return false;
    seen.nonceChallenges++;
    const current = nonce;
    if (options.nonce === "always") nonce = randomUUID();
    refuse(res, 401, 'DPoP error="use_dpop_nonce", error_description="a nonce is required"', { "dpop-nonce": current });
    return true;
  };

  /** The verified claims, or undefined once the refusal is sent. */
  const authenticate = async (req: IncomingMessage, res: ServerResponse) => {
    seen.schemes.push((req.headers.authorization ?? "").split(" ")[0] as string);
    if (guard) return (await guard(req, res)) ? (req as ProtectedRequest).mandate.claims : undefined;
    try {
      const claims = await rs.verify({
        method: req.method as string,
        url: `${origin}${req.url}`,
        authorization: req.headers.authorization,
        dpop: req.headers.dpop,
      });
      if (nonceRefused(req, res)) return undefined;
      return claims;
    } catch (error) {
      if (!(error instanceof ResourceServerError)) throw error;
      refuse(res, error.status, error.wwwAuthenticate);
      return undefined;
    }
  };

  /** What the PEP would answer for the tools the mandate does not cover (step-up, scope). */
  const toolRefused = (tool: unknown, res: ServerResponse) => {
    if (tool === "pay") {
      refuse(
        res,
        401,
        'Bearer error="insufficient_user_authentication", error_description="a stronger authentication is required", acr_values="urn:mandate:acr:mfa", max_age="300"',
      );
    } else if (tool === "admin") {
      refuse(res, 403, 'Bearer error="insufficient_scope", error_description="admin only", scope="orders.admin"');
    }
    return res.headersSent;
  };

  const serveMcp = async (req: IncomingMessage, res: ServerResponse, body: unknown, claims: VerifiedClaims) => {
    const server = new McpServer({ name: "client-test", version: "1.0.0" });
    server.registerTool("whoami", { description: "The token's subject, actor and mandate" }, (extra) => ({
      content: [{ type: "text", text: JSON.stringify(extra.authInfo?.extra) }],
    }));
    server.registerTool("pay", { description: "Needs step-up" }, () => ({ content: [] }));
    server.registerTool("admin", { description: "Needs orders.admin" }, () => ({ content: [] }));
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    res.on("close", () => {
      void transport.close();
      void server.close();
    });
    await server.connect(transport);
    const auth: AuthInfo = {
      token: claims.jti,
      clientId: claims.client_id as string,
      scopes: String(claims.scope ?? "").split(" "),
      extra: { sub: claims.sub, act: claims.act, mandate_id: claims.mandate_id, jkt: claims.dpopJkt },
    };
    await transport.handleRequest(Object.assign(req, { auth }), res, body);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    if (req.url === "/.well-known/oauth-protected-resource/mcp") return void metadata(res);
    if (!req.url?.startsWith("/mcp")) return void res.writeHead(404).end();
    const claims = await authenticate(req, res);
    if (!claims) return;
    if (req.method !== "POST") return void res.writeHead(405).end();
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = JSON.parse(Buffer.concat(chunks).toString());
    if (toolRefused(body.method === "tools/call" ? body.params?.name : undefined, res)) return;
    await serveMcp(req, res, body, claims);
  };

  const http: Server = createServer((req, res) => {
    handle(req, res).catch((error) => {
      if (!res.headersSent) res.writeHead(500).end(String(error));
    });
  });
  await new Promise<void>((resolve) => http.listen(port, "127.0.0.1", resolve));
  seen.stop = () => new Promise<void>((resolve) => http.close(() => resolve()));
  return seen;
}

/** An agent of demo registered for the MCP server (`grantTypes`: with refresh_token or without). */
function newAgent(resource: string, refresh: boolean): Promise<Agent> {
  const grantTypes = ["client_credentials", "urn:ietf:params:oauth:grant-type:token-exchange"];
  return registerAgent(mandate.issue, {
    scope: SCOPE,
    resources: [resource],
    grantTypes: refresh ? [...grantTypes, "refresh_token"] : grantTypes,
  });
}

/** alice's mandate to `agent` for the MCP server (`tokens`: at most that many tokens issued). */
async function grant(agent: Agent, resource: string, expiresInMs = HOUR, tokens?: number): Promise<string> {
  const created = await mandate.issue.createMandate({
    tenant: "demo",
    mandate: {
      principal: { id: "alice", kind: PartyKind.HUMAN },
      agent: { id: agent.clientId, kind: PartyKind.AGENT },
      scopes: SCOPE.split(" "),
      resources: [resource],
      expireTime: timestampFromMs(Date.now() + expiresInMs),
      maxTokenLifetime: durationFromMs(600_000),
      ...(tokens ? { usageLimits: [{ meter: "tokens", maximum: tokens }] } : {}),
    },
  });
  return created.mandate?.id as string;
}

function options(
  agent: Agent,
  mandateId: string,
  extra: Partial<MandateClientAuthOptions> = {},
): MandateClientAuthOptions {
  return {
    issuer: mandate.issuer,
    clientId: agent.clientId,
    clientAuthentication: { method: "client_secret_basic", clientSecret: agent.secret },
    dpopKeys: agent.keys,
    mandateId,
    allowInsecureRequests: true,
    ...extra,
  };
}

/** A connected MCP SDK client for the agent under the mandate, and its transport's session. */
async function connect(
  server: McpTestServer,
  agent: Agent,
  mandateId: string,
  extra?: Partial<MandateClientAuthOptions>,
) {
  const transport = mandateTransport(`${server.resource}`, options(agent, mandateId, extra));
  const client = new Client({ name: "test-agent", version: "1.0.0" });
  await client.connect(transport);
  return { client, session: transport.session };
}

/** A new agent (`refresh`: with refresh tokens) holding alice's mandate for `server`, and its connected client. */
async function agentClient(server: McpTestServer, refresh: boolean, extra?: Partial<MandateClientAuthOptions>) {
  const agent = await newAgent(server.resource, refresh);
  const mandateId = await grant(agent, server.resource);
  return { agent, mandateId, ...(await connect(server, agent, mandateId, extra)) };
}

const whoami = async (client: Client) => {
  const result = await client.callTool({ name: "whoami" });
  return JSON.parse((result.content as Array<{ text: string }>)[0]?.text as string) as Record<string, unknown>;
};

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** whoami's first refusal within 5 s (a revocation reaches the MCP server within a second), else undefined. */
async function refusalWithin(client: Client): Promise<unknown> {
  const deadline = Date.now() + 5_000;
  let refusal: unknown;
  while (!refusal && Date.now() < deadline) {
    refusal = await whoami(client).then(
      () => undefined,
      (error: unknown) => error,
    );
    if (!refusal) await sleep(100);
  }
  return refusal;
}

/** What connecting an MCP SDK client over `transport` fails with. */
const connectError = (transport: Parameters<Client["connect"]>[0]) =>
  new Client({ name: "a", version: "1" }).connect(transport).catch((error: unknown) => error);

/** A token of demo with mandate:introspect, for the revocation feed (what a resource server holds). */
async function feedToken(): Promise<string> {
  const client = await mandate.register({
    grantTypes: ["client_credentials"],
    scope: "mandate:introspect",
    resources: [mandate.base],
  });
  return clientToken(mandate.issuer, client, "mandate:introspect", mandate.base);
}

beforeAll(async () => {
  mandate = await startOAuthServer({ MANDATE_OAUTH_ACCESS_TOKEN_TTL: `${TTL_MS / 1000}s` });
  feed = new RevocationFeed({ url: `${mandate.issuer}/revocations`, token: feedToken });
  await feed.start();
  mcp = await startMcpServer();
}, 90_000);

afterAll(async () => {
  if (process.env.MANDATE_TEST_DEBUG) console.error(mandate?.process.stderr());
  await mcp?.stop();
  await feed?.stop();
  await mandate?.stop();
});

describe("mandateClientAuth with the MCP SDK client", () => {
  it("discovers the resource (RFC 9728), exchanges the mandate and calls tools with DPoP-bound tokens", async () => {
    const agent = await newAgent(mcp.resource, false);
    const mandateId = await grant(agent, mcp.resource);
    const before = mcp.schemes.length;
    const { client, session } = await connect(mcp, agent, mandateId);
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual(["admin", "pay", "whoami"]);
    // The token acts for alice, by the agent, under the mandate, bound to the agent's key.
    expect(await whoami(client)).toEqual({
      sub: "alice",
      act: { sub: agent.clientId },
      mandate_id: mandateId,
      jkt: agent.jkt,
    });
    const tokens = await session.current();
    expect(tokens?.resource).toBe(mcp.resource);
    expect(claimsOf(tokens?.accessToken as string)).toMatchObject({ aud: mcp.resource, cnf: { jkt: agent.jkt } });
    // Every request carried the DPoP scheme, never the SDK's Bearer.
    expect(new Set(mcp.schemes.slice(before))).toEqual(new Set(["DPoP"]));
    await client.close();
  });

  it("authenticates the agent by private_key_jwt (RFC 7523), its signing key apart from its DPoP key", async () => {
    const signing = await oauth.generateKeyPair("ES256", { extractable: true });
    const dpop = await newAgentKey();
    const created = await mandate.issue.createClient({
      tenant: "demo",
      metadata: {
        kind: ClientKind.AGENT,
        clientName: "Signing agent",
        owner: "alice",
        jwks: { keys: [{ ...(await exportJWK(signing.publicKey)) }] } as JsonObject,
        dpopJkt: dpop.jkt,
        scope: SCOPE,
        resources: [mcp.resource],
        grantTypes: ["urn:ietf:params:oauth:grant-type:token-exchange"],
      },
    });
    const agent: Agent = {
      ...dpop,
      clientId: created.client?.clientId as string,
      secret: "",
      dpop: oauth.DPoP({}, dpop.keys),
    };
    const mandateId = await grant(agent, mcp.resource);
    const { client } = await connect(mcp, agent, mandateId, {
      clientAuthentication: { method: "private_key_jwt", privateKey: signing.privateKey },
    });
    expect(await whoami(client)).toMatchObject({ act: { sub: agent.clientId }, jkt: dpop.jkt });
    await client.close();
  });

  it("re-exchanges the mandate before the token expires when no refresh token was issued", async () => {
    const { mandateId, client, session } = await agentClient(mcp, false, { resource: mcp.resource });
    await whoami(client);
    const first = await session.current();
    expect(first?.refreshToken).toBeUndefined();
    await sleep(TTL_MS);
    expect((await whoami(client)).mandate_id).toBe(mandateId);
    const second = await session.current();
    expect(second?.accessToken).not.toBe(first?.accessToken);
    expect(claimsOf(second?.accessToken as string).jti).not.toBe(claimsOf(first?.accessToken as string).jti);
    await client.close();
  });

  it("refreshes with the refresh token when one was issued, keeping the mandate and the key", async () => {
    const saved: unknown[] = [];
    const { agent, mandateId, client, session } = await agentClient(mcp, true, {
      storage: { load: () => undefined, save: (tokens) => void saved.push(tokens) },
    });
    await whoami(client);
    const first = await session.current();
    expect(first?.refreshToken).toBeTruthy();
    await sleep(TTL_MS);
    expect(await whoami(client)).toMatchObject({ mandate_id: mandateId, jkt: agent.jkt });
    const second = await session.current();
    expect(second?.accessToken).not.toBe(first?.accessToken);
    // Both issuances went to storage, with the key's thumbprint they are bound to.
    expect(saved.length).toBeGreaterThanOrEqual(2);
    expect(saved.every((t) => (t as { jkt: string }).jkt === agent.jkt)).toBe(true);
    await client.close();
  });

  it("renews after the MCP server refuses a token with invalid_token (the token revoked at Mandate)", async () => {
    const { agent, mandateId, client, session } = await agentClient(mcp, false);
    await whoami(client);
    const revoked = (await session.current())?.accessToken as string;
    // RFC 7009 by the agent itself: the feed tells the resource server within a second.
    const as = await oauth.processDiscoveryResponse(
      new URL(mandate.issuer),
      await oauth.discoveryRequest(new URL(mandate.issuer), {
        algorithm: "oauth2",
        [oauth.allowInsecureRequests]: true,
      }),
    );
    const revocation = await oauth.revocationRequest(
      as,
      { client_id: agent.clientId },
      oauth.ClientSecretBasic(agent.secret),
      revoked,
      { [oauth.allowInsecureRequests]: true },
    );
    expect(revocation.status).toBe(200);
    const deadline = Date.now() + 5_000;
    while ((await session.current())?.accessToken === revoked && Date.now() < deadline) {
      expect((await whoami(client)).mandate_id).toBe(mandateId);
      await sleep(100);
    }
    expect((await session.current())?.accessToken).not.toBe(revoked);
    await client.close();
  });

  it("fails with MandateUnusable (revoked) once alice revokes the mandate, within a bounded wait", async () => {
    const { mandateId, client, session } = await agentClient(mcp, true);
    await whoami(client);
    await mandate.issue.revokeMandate({ tenant: "demo", mandateId, reason: "alice revoked it" });
    const refusal = await refusalWithin(client);
    expect(refusal).toBeInstanceOf(MandateUnusable);
    expect(refusal).toMatchObject({ mandateId, condition: "revoked", error: "invalid_request" });
    // The tokens are dropped, and the next call says the same without looping.
    expect(await session.current()).toBeUndefined();
    await expect(whoami(client)).rejects.toBeInstanceOf(MandateUnusable);
    await client.close();
  });

  it("fails with MandateUnusable (expired) once the mandate expires", async () => {
    const agent = await newAgent(mcp.resource, false);
    const expiresAt = Date.now() + 3_500;
    const mandateId = await grant(agent, mcp.resource, 3_500);
    const { client } = await connect(mcp, agent, mandateId);
    await whoami(client);
    await sleep(expiresAt - Date.now() + 100);
    await expect(whoami(client)).rejects.toMatchObject({ name: "MandateUnusable", condition: "expired" });
    await client.close();
  });

  it("fails with MandateUnusable (exhausted) when the mandate's token limit is used up", async () => {
    const agent = await newAgent(mcp.resource, false);
    const { client, session } = await connect(mcp, agent, await grant(agent, mcp.resource, HOUR, 1));
    await whoami(client);
    // The one token the mandate allows was issued: renewing it needs a second.
    await expect(session.renew((await session.current())?.accessToken)).rejects.toMatchObject({
      name: "MandateUnusable",
      condition: "exhausted",
    });
    await expect(whoami(client)).rejects.toBeInstanceOf(MandateUnusable);
    await client.close();
  });

  it("surfaces RFC 9470 step-up and insufficient_scope as typed errors carrying what the server asks", async () => {
    const { client } = await agentClient(mcp, false);
    const stepUp = await client.callTool({ name: "pay" }).catch((error: unknown) => error);
    expect(stepUp).toBeInstanceOf(StepUpRequired);
    expect(stepUp).toMatchObject({ acrValues: "urn:mandate:acr:mfa", maxAge: 300 });
    const scope = await client.callTool({ name: "admin" }).catch((error: unknown) => error);
    expect(scope).toBeInstanceOf(InsufficientScope);
    expect(scope).toMatchObject({ scope: "orders.admin", description: "admin only" });
    // The session is still good for what the mandate allows.
    expect((await whoami(client)).sub).toBe("alice");
    await client.close();
  });
});

describe("through the MCP resource kit (services/mcp/resource protect())", () => {
  it("connects, calls tools, renews and stops with MandateUnusable once the mandate is revoked", async () => {
    const server = await startMcpServer({ kit: true });
    try {
      const { agent, mandateId, client } = await agentClient(server, true);
      expect(await whoami(client)).toMatchObject({ sub: "alice", mandate_id: mandateId, jkt: agent.jkt });
      await mandate.issue.revokeMandate({ tenant: "demo", mandateId, reason: "alice revoked it" });
      const refusal = await refusalWithin(client);
      expect(refusal).toMatchObject({ name: "MandateUnusable", condition: "revoked" });
      await client.close();
    } finally {
      await server.stop();
    }
  });
});

describe("DPoP at the MCP server", () => {
  it("answers the server's nonce challenge once, then sends its nonce (RFC 9449 §9)", async () => {
    const server = await startMcpServer({ nonce: "once" });
    try {
      const { client } = await agentClient(server, false);
      await whoami(client);
      await whoami(client);
      expect(server.nonceChallenges).toBe(1);
      await client.close();
    } finally {
      await server.stop();
    }
  });

  it("does not loop on a server that wants a new nonce every time: AccessTokenRefused", async () => {
    const server = await startMcpServer({ nonce: "always" });
    try {
      const agent = await newAgent(server.resource, false);
      const transport = mandateTransport(server.resource, options(agent, await grant(agent, server.resource)));
      const error = await connectError(transport);
      expect(error).toBeInstanceOf(AccessTokenRefused);
      expect(error).toMatchObject({ status: 401, error: "use_dpop_nonce" });
      expect(server.nonceChallenges).toBe(2);
    } finally {
      await server.stop();
    }
  });

  it("a stolen token is refused from another key and as Bearer", async () => {
    const { agent, client, session } = await agentClient(mcp, false);
    await whoami(client);
    const stolen = (await session.current())?.accessToken as string;
    const thief = await newAgentKey();
    const initialize = JSON.stringify({
      jsonrpc: "2.0",
      id: 1,
      method: "initialize",
      params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "thief", version: "1" } },
    });
    const post = (headers: Record<string, string>) =>
      fetch(mcp.resource, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...headers },
        body: initialize,
      });
    const otherKey = await post({
      authorization: `DPoP ${stolen}`,
      dpop: await dpopProof(thief, stolen, "POST", mcp.resource),
    });
    expect(otherKey.status).toBe(401);
    expect(otherKey.headers.get("www-authenticate")).toMatch(/invalid_dpop_proof/);
    const bearer = await post({ authorization: `Bearer ${stolen}` });
    expect(bearer.status).toBe(401);
    expect(bearer.headers.get("www-authenticate")).toMatch(/invalid_token/);
    // The owner's own proof still works (the refusals were the key's, not the token's).
    const owner = await post({
      authorization: `DPoP ${stolen}`,
      dpop: await dpopProof(agent, stolen, "POST", mcp.resource),
    });
    expect(owner.status).toBe(200);
    await client.close();
  });
});

describe("refusals before any MCP call", () => {
  it("an agent without its registered key cannot exchange: TokenRequestRefused, not retried", async () => {
    const agent = await newAgent(mcp.resource, false);
    const mandateId = await grant(agent, mcp.resource);
    // No dpopKeys: the session generates a key, which is not the agent's registered dpop_jkt.
    const transport = mandateTransport(mcp.resource, { ...options(agent, mandateId), dpopKeys: undefined });
    const error = await connectError(transport);
    expect(error).toBeInstanceOf(TokenRequestRefused);
    expect(error).toMatchObject({ error: "invalid_dpop_proof" });
    expect(await transport.session.dpopKeys()).not.toBe(agent.keys);
  });

  it("another agent's mandate is MandateUnusable (other_agent)", async () => {
    const owner = await newAgent(mcp.resource, false);
    const other = await newAgent(mcp.resource, false);
    const transport = mandateTransport(mcp.resource, options(other, await grant(owner, mcp.resource)));
    const error = await connectError(transport);
    expect(error).toBeInstanceOf(MandateUnusable);
    expect(error).toMatchObject({ condition: "other_agent" });
  });

  it("refuses an MCP server whose metadata does not trust the issuer, and tokens of other keys in storage", async () => {
    const server = await startMcpServer({ authorizationServers: ["https://elsewhere.example/t/demo"] });
    try {
      const agent = await newAgent(server.resource, false);
      const mandateId = await grant(agent, server.resource);
      const transport = mandateTransport(server.resource, options(agent, mandateId));
      const error = await connectError(transport);
      expect(error).toBeInstanceOf(MandateClientError);
      expect((error as Error).message).toMatch(/does not accept tokens of/);
      // Stored tokens bound to another key are not used.
      const { session } = mandateClientAuth(
        options(agent, mandateId, {
          resource: server.resource,
          storage: {
            load: () => ({
              accessToken: "stolen",
              expiresAt: Date.now() + HOUR,
              lifetimeMs: HOUR,
              resource: server.resource,
              mandateId,
              jkt: "another-key",
            }),
            save: () => {},
          },
        }),
      );
      expect(await session.current()).toBeUndefined();
    } finally {
      await server.stop();
    }
  });

  it("reads the mandate's condition from Mandate's error_description", () => {
    expect(mandateCondition("mandate mdt_1 has been revoked")).toBe("revoked");
    expect(mandateCondition("mandate mdt_1's parent mandate mdt_0 has been revoked")).toBe("revoked");
    expect(mandateCondition("mandate mdt_1 expired at 2026-01-01T00:00:00.000Z")).toBe("expired");
    expect(mandateCondition("mandate mdt_1 expires within a second")).toBe("expired");
    expect(mandateCondition("mandate mdt_1 is exhausted: usage limit reached (3 tokens in all)")).toBe("exhausted");
    expect(mandateCondition("mandate mdt_1 is not valid before 2030-01-01T00:00:00.000Z")).toBe("not_yet_valid");
    expect(mandateCondition('no mandate "mdt_x" in this tenant')).toBe("unknown_mandate");
    expect(mandateCondition("mandate mdt_1 was granted to another agent, not to this client")).toBe("other_agent");
    expect(mandateCondition("scope widens the mandate")).toBeUndefined();
  });
});
