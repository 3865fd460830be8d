// API keys of agents (issue 18) against a running `mandate dev`: created over gRPC (Issue.CreateApiKey)
// and the CLI, exchanged at the token endpoint (RFC 8693 token exchange, subject_token_type
// urn:mandate:params:oauth:token-type:api-key) by oauth4webapi with a DPoP proof, and every refusal:
// a scope or resource beyond the key, an expired key (made in the same database with a clock in the
// past), a revoked one, a rotated one after its overlap (configured to a few seconds), malformed,
// unknown and other tenants' keys, no sender constraint; the key never in a list, an audit payload
// or the server's log; the RPCs with unauthenticated, under-scoped and other tenants' callers.
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { decodeJwt } from "jose";
import * as oauth from "oauth4webapi";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Issue } from "../../gen/mandate/v1/issue_pb.js";
import { Tenants } from "../../gen/mandate/v1/tenants_pb.js";
import { ClientRegistry } from "../../services/issue/clients/registry.ts";
import { ApiKeys } from "../../services/issue/federation/api-keys/api-keys.ts";
import { ManualClock } from "../../services/shared/clock.ts";
import { loadConfig } from "../../services/shared/config.ts";
import { Store } from "../../services/shared/store/store.ts";
import { adminClient } from "../helpers/admin.ts";
import { type Agent, discover, registerAgent, type TokenEndpoint } from "../helpers/agents.ts";
import { addOptions, runMandate } from "../helpers/mandate-process.ts";
import { type OAuthServer, startOAuthServer } from "../helpers/oauth-server.ts";
import { rpcExchange, rpcRefusal } from "../helpers/rpc-exchange.ts";

const TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange";
const API_KEY_TYPE = "urn:mandate:params:oauth:token-type:api-key";
const RESOURCE = "https://orders.example";
const OTHER_RESOURCE = "https://billing.example";
const OVERLAP_MS = 3000;
const insecure = { [oauth.allowInsecureRequests]: true };

let server: OAuthServer;
let endpoint: TokenEndpoint;
let store: Store;
let agent: Agent;
/** Every key the test saw, to look for in lists, audit payloads and the log. */
const seenKeys: string[] = [];

beforeAll(async () => {
  // Debug logging: the key must not appear even in the most verbose log.
  server = await startOAuthServer({
    MANDATE_FEDERATION_API_KEY_ROTATION_OVERLAP: `${OVERLAP_MS}ms`,
    MANDATE_LOG_LEVEL: "debug",
  });
  endpoint = await discover(server.issuer);
  store = Store.open({ url: server.database, poolSize: 2 });
  agent = await registerAgent(server.issue, {
    name: "Key agent",
    scope: "orders:read orders:write",
    resources: [RESOURCE, OTHER_RESOURCE],
  });
  await adminClient(Tenants, server.process.summary.grpc as string, server.process.adminFile).createTenant({
    tenant: "acme",
    displayName: "Acme",
  });
}, 60_000);

afterAll(async () => {
  await store?.close();
  await server?.stop();
});

async function createKey(scopes: string[], resources: string[] = [RESOURCE]) {
  const created = await server.issue.createApiKey({ tenant: "demo", clientId: agent.clientId, scopes, resources });
  seenKeys.push(created.key);
  return { id: created.apiKey?.id as string, key: created.key };
}

/** The exchange as an agent sends it with oauth4webapi: no client authentication, DPoP, nonce retried. */
async function exchange(
  key: string,
  extra: Record<string, string> = {},
  tenantIssuer = server.issuer,
): Promise<{ body: Record<string, unknown>; claims: Record<string, unknown> }> {
  const as = tenantIssuer === server.issuer ? endpoint.as : (await discover(tenantIssuer)).as;
  const send = () =>
    oauth.genericTokenEndpointRequest(
      as,
      { client_id: agent.clientId },
      oauth.None(),
      TOKEN_EXCHANGE,
      new URLSearchParams({ subject_token: key, subject_token_type: API_KEY_TYPE, ...extra }),
      { ...insecure, DPoP: agent.dpop },
    );
  const process = async () =>
    oauth.processGenericTokenEndpointResponse(as, { client_id: agent.clientId }, await send());
  const body = await process().catch((error) => {
    if (!oauth.isDPoPNonceError(error)) throw error;
    return process();
  });
  return { body: body as unknown as Record<string, unknown>, claims: decodeJwt(body.access_token) };
}

/** The OAuth error code of a refused exchange. */
async function refusedWith(key: string, extra: Record<string, string> = {}, tenantIssuer?: string): Promise<string> {
  try {
    await exchange(key, extra, tenantIssuer);
  } catch (error) {
    if (error instanceof oauth.ResponseBodyError) return error.error;
    throw error;
  }
  return "accepted";
}

/**
 * The stored audit payloads of `type` (or all): the outbox's rows and the log entries' details,
 * since the relay moves events from the one to the other at any moment.
 */
async function auditPayloads(type?: string): Promise<Record<string, unknown>[]> {
  let outbox = store.db.selectFrom("audit_outbox").select("payload");
  let log = store.db.selectFrom("audit_log").select("body");
  if (type) {
    outbox = outbox.where("type", "=", type);
    log = log.where("type", "=", type);
  }
  const pending = (await outbox.execute()).map((row) => JSON.parse(row.payload) as Record<string, unknown>);
  const logged = (await log.execute()).map((row) => {
    const body = JSON.parse(row.body) as { event?: { details?: Record<string, unknown> } };
    return body.event?.details ?? body;
  });
  return [...pending, ...logged];
}

/** The audit payload of `type` that `match` picks, waiting for the relay (5 s at most). */
async function auditPayload(type: string, match: (payload: Record<string, unknown>) => boolean) {
  for (let i = 0; i < 50; i++) {
    const found = (await auditPayloads(type)).find(match);
    if (found) return found;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return undefined;
}

describe("API key exchange at the token endpoint", { timeout: 60_000 }, () => {
  it("yields a DPoP-bound token with the key's scopes only and an act naming the key; audited", async () => {
    const { id, key } = await createKey(["orders:read"]);
    const { body, claims } = await exchange(key);
    expect(body).toMatchObject({
      token_type: "dpop", // oauth4webapi normalises the case
      scope: "orders:read",
      issued_token_type: "urn:ietf:params:oauth:token-type:access_token",
    });
    expect(claims).toMatchObject({
      client_id: agent.clientId,
      sub: agent.clientId,
      scope: "orders:read",
      cnf: { jkt: agent.jkt },
      act: { sub: agent.clientId, mandate_api_key: id, mandate_federation: { protocol: "api_key", trust: id } },
    });
    expect([claims.aud].flat()).toEqual([RESOURCE]);
    expect(Number(claims.exp) - Number(claims.iat)).toBeLessThanOrEqual(300);

    expect(await auditPayload("token.federated.v1", (p) => p.jti === claims.jti)).toMatchObject({
      protocol: "api_key",
      token_type: API_KEY_TYPE,
      trust_id: id,
      external_subject: `api-key:${id}`,
      client_id: agent.clientId,
      scope: ["orders:read"],
      cnf_jkt: agent.jkt,
    });
    expect(await auditPayload("api_key.created.v1", (p) => p.id === id)).toMatchObject({
      client_id: agent.clientId,
      scopes: ["orders:read"],
    });
  });

  it("refuses a scope or resource beyond the key (invalid_scope, invalid_target) and an unbound request", async () => {
    const { key } = await createKey(["orders:read"]);
    expect(await refusedWith(key, { scope: "orders:write" })).toBe("invalid_scope");
    expect(await refusedWith(key, { resource: OTHER_RESOURCE })).toBe("invalid_target");
    // Without DPoP (and no certificate) the token would be a bearer token: refused (the agent is
    // registered with a DPoP key, so its proof is required first, RFC 9449 §5).
    const response = await fetch(`${server.issuer}/oauth2/token`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ grant_type: TOKEN_EXCHANGE, subject_token: key, subject_token_type: API_KEY_TYPE }),
    });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: string }).error).toBe("invalid_dpop_proof");
  });

  it("refuses malformed, unknown, other tenants' and expired keys with invalid_grant", async () => {
    const { key } = await createKey(["orders:read"]);
    expect(await refusedWith("mdk_not_a_key")).toBe("invalid_grant");
    expect(await refusedWith(`${key.slice(0, -1)}${key.endsWith("A") ? "B" : "A"}`)).toBe("invalid_grant");
    expect(await refusedWith(key, {}, `${server.base}/t/acme`)).toBe("invalid_grant");

    // A key that expired: made in the same database by a clock a day behind, living an hour.
    const clock = new ManualClock(Date.now() - 86_400_000);
    const config = loadConfig({ env: {} });
    const keys = new ApiKeys({ store, clock, config, clients: new ClientRegistry(store, clock) });
    const expired = await keys.create(
      "demo",
      { clientId: agent.clientId, scopes: ["orders:read"], resources: [RESOURCE], ttlMs: 3_600_000 },
      { by: { service: "test" } },
    );
    seenKeys.push(expired.key);
    expect(await refusedWith(expired.key)).toBe("invalid_grant");
  });

  it("a revoked key is refused at once", async () => {
    const { id, key } = await createKey(["orders:read"]);
    await exchange(key);
    const { apiKey } = await server.issue.revokeApiKey({ tenant: "demo", id });
    expect(apiKey?.revokeTime).toBeDefined();
    expect(await refusedWith(key)).toBe("invalid_grant");
  });

  it("a rotated key works during the overlap and is refused after it; the new one works", async () => {
    const { id, key } = await createKey(["orders:read", "orders:write"]);
    const rotated = await server.issue.rotateApiKey({ tenant: "demo", id });
    seenKeys.push(rotated.key);
    expect(rotated.apiKey?.rotatedFrom).toBe(id);
    expect(rotated.previous?.rotatedTo).toBe(rotated.apiKey?.id);
    expect((await exchange(key, { scope: "orders:read" })).claims.act).toMatchObject({ mandate_api_key: id });
    const fresh = await exchange(rotated.key);
    expect(fresh.claims.act).toMatchObject({ mandate_api_key: rotated.apiKey?.id });
    expect(fresh.body.scope).toBe("orders:read orders:write");
    // Wait out the overlap (configured to a few seconds); the old key is refused from then on.
    const end = Number(rotated.previous?.expireTime?.seconds) * 1000;
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, end - Date.now()) + 200));
    expect(await refusedWith(key)).toBe("invalid_grant");
    expect((await exchange(rotated.key)).claims.client_id).toBe(agent.clientId);
    expect(await auditPayload("api_key.rotated.v1", (p) => p.id === id)).toMatchObject({
      replaced_by: rotated.apiKey?.id,
    });
  });
});

describe("API key exchange over Issue.ExchangeToken (gRPC)", { timeout: 60_000 }, () => {
  const target = () => ({ grpc: server.process.summary.grpc as string, issuer: server.issuer, tenant: "demo" });

  it("yields the same DPoP-bound token for the authenticated agent the key maps to", async () => {
    const { id, key } = await createKey(["orders:read"]);
    const response = await rpcExchange(target(), agent, { subjectToken: key, subjectTokenType: API_KEY_TYPE });
    expect(response.mandateId).toBe("");
    expect(response.tokens).toMatchObject({
      tokenType: "DPoP",
      scopes: ["orders:read"],
      issuedTokenType: "urn:ietf:params:oauth:token-type:access_token",
    });
    const claims = decodeJwt(response.tokens?.accessToken as string);
    expect(claims).toMatchObject({
      client_id: agent.clientId,
      cnf: { jkt: agent.jkt },
      act: { mandate_api_key: id, mandate_federation: { protocol: "api_key" } },
    });
    expect(await auditPayload("token.federated.v1", (p) => p.jti === claims.jti)).toMatchObject({ trust_id: id });
  });

  it("refuses another agent's key, a revoked key and an actor_token with precise statuses", async () => {
    const other = await registerAgent(server.issue, { name: "Other", scope: "orders:read", resources: [RESOURCE] });
    const { id, key } = await createKey(["orders:read"]);
    const foreign = await rpcRefusal(
      rpcExchange(target(), other, { subjectToken: key, subjectTokenType: API_KEY_TYPE }),
    );
    expect(foreign).toMatchObject({ code: Code.FailedPrecondition, reason: "INVALID_GRANT" });
    const withActor = await rpcRefusal(
      rpcExchange(target(), agent, {
        subjectToken: key,
        subjectTokenType: API_KEY_TYPE,
        actorToken: "x",
        actorTokenType: "urn:ietf:params:oauth:token-type:access_token",
      }),
    );
    expect(withActor).toMatchObject({ code: Code.InvalidArgument, reason: "INVALID_REQUEST" });
    await server.issue.revokeApiKey({ tenant: "demo", id });
    const revoked = await rpcRefusal(
      rpcExchange(target(), agent, { subjectToken: key, subjectTokenType: API_KEY_TYPE }),
    );
    expect(revoked).toMatchObject({ code: Code.FailedPrecondition, reason: "INVALID_GRANT" });
  });
});

describe("API key RPCs", { timeout: 60_000 }, () => {
  const transport = (interceptors: Interceptor[] = []) =>
    createGrpcTransport({ baseUrl: `http://${server.process.summary.grpc}`, interceptors });
  const code = (call: Promise<unknown>) =>
    call.then(
      () => undefined,
      (error: unknown) => (error instanceof ConnectError ? error.code : Code.Unknown),
    );

  it("lists keys without the key; shows the last use", async () => {
    const { id, key } = await createKey(["orders:read"]);
    await exchange(key);
    const { apiKeys } = await server.issue.listApiKeys({ tenant: "demo", clientId: agent.clientId });
    const listed = apiKeys.find((k) => k.id === id);
    expect(listed).toMatchObject({ clientId: agent.clientId, prefix: `mdk_${id}_`, scopes: ["orders:read"] });
    expect(listed?.lastUseTime).toBeDefined();
    const text = JSON.stringify(apiKeys, (_, v) => (typeof v === "bigint" ? String(v) : v));
    for (const seen of seenKeys) expect(text).not.toContain(seen.slice(21));
  });

  it("refuses bad requests with precise statuses", async () => {
    const create = (fields: Record<string, unknown>) =>
      code(server.issue.createApiKey({ tenant: "demo", clientId: agent.clientId, scopes: ["orders:read"], ...fields }));
    expect(await create({ scopes: ["admin"] })).toBe(Code.InvalidArgument);
    expect(await create({ scopes: [] })).toBe(Code.InvalidArgument);
    expect(await create({ resources: ["https://elsewhere.example"] })).toBe(Code.InvalidArgument);
    expect(await create({ clientId: "nobody" })).toBe(Code.NotFound);
    expect(await create({ ttl: { seconds: 400n * 86_400n, nanos: 0 } })).toBe(Code.InvalidArgument);
    expect(await code(server.issue.revokeApiKey({ tenant: "demo", id: "0000000000000000" }))).toBe(Code.NotFound);
    expect(await code(server.issue.rotateApiKey({ tenant: "demo", id: "0000000000000000" }))).toBe(Code.NotFound);
    const { id } = await createKey(["orders:read"]);
    await server.issue.rotateApiKey({ tenant: "demo", id });
    expect(await code(server.issue.rotateApiKey({ tenant: "demo", id }))).toBe(Code.FailedPrecondition);
  });

  it("answers only a tenant admin of the tenant", async () => {
    const anonymous = createClient(Issue, transport());
    expect(await code(anonymous.listApiKeys({ tenant: "demo" }))).toBe(Code.Unauthenticated);
    expect(
      await code(anonymous.createApiKey({ tenant: "demo", clientId: agent.clientId, scopes: ["orders:read"] })),
    ).toBe(Code.Unauthenticated);
    const auditor = createClient(Issue, transport([await server.caller("mandate:audit.read")]));
    expect(await code(auditor.listApiKeys({ tenant: "demo" }))).toBe(Code.PermissionDenied);
    const acmeAdmin = createClient(Issue, transport([await server.caller("mandate:tenant-admin", "acme")]));
    expect(await code(acmeAdmin.listApiKeys({ tenant: "demo" }))).toBe(Code.PermissionDenied);
    expect(
      await code(acmeAdmin.createApiKey({ tenant: "demo", clientId: agent.clientId, scopes: ["orders:read"] })),
    ).toBe(Code.PermissionDenied);
    const demoAdmin = createClient(Issue, transport([await server.caller("mandate:tenant-admin")]));
    const created = await demoAdmin.createApiKey({ tenant: "demo", clientId: agent.clientId, scopes: ["orders:read"] });
    seenKeys.push(created.key);
    expect(created.key).toMatch(/^mdk_/);
    expect((await demoAdmin.listApiKeys({ tenant: "demo" })).apiKeys.map((k) => k.id)).toContain(created.apiKey?.id);
  });
});

describe("mandate api-keys", { timeout: 120_000 }, () => {
  const cli = (args: string[]) =>
    runMandate(addOptions(args, ["--tenant", "demo", "--address", server.process.summary.grpc as string]), {
      MANDATE_ADMIN_FILE: server.process.adminFile,
    });

  it("creates (the key printed once), lists, rotates and revokes", async () => {
    const created = await cli([
      "api-keys",
      "create",
      "--scope",
      "orders:read",
      "--ttl",
      "7d",
      "--json",
      "--",
      agent.clientId,
    ]);
    expect(created.code, created.stderr).toBe(0);
    const { key, apiKey } = JSON.parse(created.stdout) as { key: string; apiKey: { id: string; scopes: string[] } };
    seenKeys.push(key);
    expect(apiKey.scopes).toEqual(["orders:read"]);
    expect((await exchange(key)).claims.act).toMatchObject({ mandate_api_key: apiKey.id });

    const listed = await cli(["api-keys", "list", "--client", agent.clientId]);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toMatch(new RegExp(`${apiKey.id}\\s+${agent.clientId}\\s+orders:read`));
    expect(listed.stdout).not.toContain(key.slice(21));

    const rotated = await cli(["api-keys", "rotate", apiKey.id]);
    expect(rotated.code, rotated.stderr).toBe(0);
    expect(rotated.stdout).toMatch(/key {7}mdk_[0-9a-f]{16}_/);
    expect(rotated.stdout).toContain(`the old key ${apiKey.id} works until`);
    seenKeys.push(/key {7}(\S+)/.exec(rotated.stdout)?.[1] as string);

    const revoked = await cli(["api-keys", "revoke", apiKey.id]);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(revoked.stdout).toContain(`revoked API key ${apiKey.id}`);
    expect(await refusedWith(key)).toBe("invalid_grant");

    const refused = await cli(["api-keys", "create", "--scope", "admin", "--", agent.clientId]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain("not registered for the agent");
    const help = await runMandate(["api-keys", "--help"]);
    expect(help.stdout).toContain("rotate");
  });
});

describe("the key stays secret", () => {
  it("appears in no audit payload and not in the server's log", async () => {
    expect(seenKeys.length).toBeGreaterThan(5);
    const payloads = JSON.stringify(await auditPayloads());
    const log = server.process.stderr();
    expect(log).toContain(`"level":20`); // written at debug, the level that shows the most
    for (const key of seenKeys) {
      const secret = key.slice(21);
      expect(payloads).not.toContain(secret);
      expect(log).not.toContain(secret);
    }
  });
});
