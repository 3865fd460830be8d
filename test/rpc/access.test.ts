// Every RPC of every service, from the descriptors, against a running `mandate dev`, over native gRPC
// and gRPC-Web at the edge, with every kind of caller credential: only the right credential gets
// past the access gate; INTERNAL methods are not even routed at the edge; and nothing in the
// request is looked at before the caller is authenticated (the requests are invalid, or name a
// tenant that does not exist, so a validation or store answer would show).
import { randomUUID } from "node:crypto";
import { create, type DescMethod, type DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { exportJWK, generateKeyPair, type JWK, SignJWT } from "jose";
import * as oauth from "oauth4webapi";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { Audit } from "../../gen/mandate/v1/audit_pb.js";
import { Issue } from "../../gen/mandate/v1/issue_pb.js";
import { Tenants } from "../../gen/mandate/v1/tenants_pb.js";
import { bearerToken } from "../../services/cli/credentials.ts";
import { SERVICE_DESCRIPTORS } from "../../services/runtime/start.ts";
import { accessTokenHash } from "../../services/shared/oauth/dpop.ts";
import { API_SCOPES } from "../../services/shared/oauth/mandate-api.ts";
import { type AccessRule, accessRuleOf } from "../../services/shared/rpc/access.ts";
import { adminClient, adminHeaders } from "../helpers/admin.ts";
import { type OAuthServer, startOAuthServer } from "../helpers/oauth-server.ts";

const SERVICES: DescService[] = Object.values(SERVICE_DESCRIPTORS);
const METHODS = SERVICES.flatMap((service) => service.methods);
const insecure = { [oauth.allowInsecureRequests]: true };

type Headers = Record<string, string>;
/** What a row sends: headers for a call to `url`, and the request's `client` field for client-authenticated methods. */
interface Row {
  name: string;
  headers(url: string, rule: AccessRule): Promise<Headers>;
  client?: (rule: AccessRule) => Record<string, string> | undefined;
  expect(rule: AccessRule): "pass" | Code;
}

let server: OAuthServer;
let grpc: Transport;
let web: Transport;
let as: oauth.AuthorizationServer;
const tokens: Record<string, string> = {};
let dpopAll: { token: string; proof(url: string): Promise<string> };
let foreignProof: (url: string, token: string) => Promise<string>;
let clientCredentials: { clientId: string; clientSecret: string };
let expired: { token: string; exp: number };

/** A client of `tenant` for Mandate's API (or `resources`), and its client-credentials token. */
async function token(
  scope: string,
  options: { tenant?: string; resources?: string[]; resource?: string; ttl?: number } = {},
): Promise<{ token: string; clientId: string; clientSecret: string; exp: number }> {
  const tenant = options.tenant ?? "demo";
  const resource = options.resource ?? server.base;
  const { clientId, clientSecret } = await server.register(
    {
      grantTypes: ["client_credentials"],
      scope,
      resources: options.resources ?? [server.base],
      accessTokenLifetimeSeconds: options.ttl ?? 0,
    },
    tenant,
  );
  const response = await fetch(`${server.base}/t/${tenant}/oauth2/token`, {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      authorization: `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString("base64")}`,
    },
    body: new URLSearchParams({ grant_type: "client_credentials", scope, resource }),
  });
  expect(response.status, await response.clone().text()).toBe(200);
  const body = (await response.json()) as { access_token: string; expires_in: number };
  return { token: body.access_token, clientId, clientSecret, exp: Date.now() + body.expires_in * 1000 };
}

async function dpopKey() {
  const { privateKey, publicKey } = await generateKeyPair("ES256", { extractable: true });
  const jwk = (await exportJWK(publicKey)) as JWK;
  return {
    pair: { privateKey, publicKey } as CryptoKeyPair,
    proof: (url: string, accessToken: string) =>
      new SignJWT({ htm: "POST", htu: url, ath: accessTokenHash(accessToken) })
        .setProtectedHeader({ alg: "ES256", typ: "dpop+jwt", jwk })
        .setIssuedAt()
        .setJti(randomUUID())
        .sign(privateKey),
  };
}

beforeAll(async () => {
  // Every method × every refused credential comes from one address: more than the default burst of
  // unauthenticated RPCs per IP (that limit has its own tests), which would answer RESOURCE_EXHAUSTED.
  server = await startOAuthServer({ MANDATE_RATE_LIMITS_UNAUTHENTICATED_RPC: "1000:100000" });
  const address = server.process.summary.grpc as string;
  grpc = createGrpcTransport({ baseUrl: `http://${address}` });
  web = createGrpcWebTransport({ baseUrl: server.base, httpVersion: "1.1" });
  as = await oauth.processDiscoveryResponse(
    new URL(server.issuer),
    await oauth.discoveryRequest(new URL(server.issuer), { algorithm: "oauth2", ...insecure }),
  );
  await adminClient(Tenants, address, server.process.adminFile).createTenant({ tenant: "other" });
  // An expired token: the shortest lifetime a client may have, waited out at the end.
  const short = await token(API_SCOPES.tenantAdmin, { ttl: 10 });
  expired = { token: short.token, exp: short.exp };
  for (const scope of [API_SCOPES.tenantAdmin, API_SCOPES.authorize, API_SCOPES.introspect, API_SCOPES.auditRead]) {
    tokens[scope] = (await token(scope)).token;
  }
  tokens.platform = (await bearerToken(server.process.adminFile)).access_token;
  tokens.otherTenant = (await token(API_SCOPES.tenantAdmin, { tenant: "other" })).token;
  tokens.noMandateScope = (await token("orders.read")).token;
  tokens.wrongAudience = (
    await token(API_SCOPES.tenantAdmin, {
      resources: [server.base, "https://api.example.com/"],
      resource: "https://api.example.com/",
    })
  ).token;
  const revoked = await token(API_SCOPES.tenantAdmin);
  const revocation = await fetch(`${server.base}/t/demo/oauth2/revoke`, {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      authorization: `Basic ${Buffer.from(`${revoked.clientId}:${revoked.clientSecret}`).toString("base64")}`,
    },
    body: new URLSearchParams({ token: revoked.token }),
  });
  expect(revocation.status).toBe(200);
  tokens.revoked = revoked.token;
  clientCredentials = await server.register({ grantTypes: ["client_credentials"] });

  // A DPoP-bound token holding every tenant scope (RFC 9449 §5, through the nonce retry).
  const all = [API_SCOPES.tenantAdmin, API_SCOPES.authorize, API_SCOPES.introspect, API_SCOPES.auditRead].join(" ");
  const bound = await server.register({ grantTypes: ["client_credentials"], scope: all, resources: [server.base] });
  const key = await dpopKey();
  const c: oauth.Client = { client_id: bound.clientId };
  const DPoP = oauth.DPoP(c, key.pair);
  const request = () =>
    oauth.clientCredentialsGrantRequest(
      as,
      c,
      oauth.ClientSecretBasic(bound.clientSecret),
      { scope: all, resource: server.base },
      { ...insecure, DPoP },
    );
  let result: oauth.TokenEndpointResponse;
  try {
    result = await oauth.processClientCredentialsResponse(as, c, await request());
  } catch (error) {
    if (!oauth.isDPoPNonceError(error)) throw error;
    result = await oauth.processClientCredentialsResponse(as, c, await request());
  }
  expect(result.token_type.toLowerCase()).toBe("dpop");
  dpopAll = { token: result.access_token, proof: (url) => key.proof(url, result.access_token) };
  const stranger = await dpopKey();
  foreignProof = stranger.proof;
}, 60_000);

afterAll(async () => {
  await server?.stop();
});

const bearer = (token: string): Headers => ({ authorization: `Bearer ${token}` });
/** The token that is right for a method: the platform admin for platform methods, else the method's scope. */
const rightToken = (rule: AccessRule) =>
  rule.platform ? tokens.platform : (tokens[rule.scopes[0] ?? API_SCOPES.tenantAdmin] as string);

const ROWS: Row[] = [
  { name: "no credentials", headers: async () => ({}), expect: () => Code.Unauthenticated },
  { name: "malformed token", headers: async () => bearer("not.a.jwt"), expect: () => Code.Unauthenticated },
  { name: "revoked token", headers: async () => bearer(tokens.revoked as string), expect: () => Code.Unauthenticated },
  {
    name: "token of another tenant",
    headers: async (_url, rule) =>
      bearer((rule.platform ? tokens[API_SCOPES.tenantAdmin] : tokens.otherTenant) as string),
    expect: () => Code.PermissionDenied,
  },
  {
    name: "token for another audience",
    headers: async () => bearer(tokens.wrongAudience as string),
    expect: () => Code.Unauthenticated,
  },
  {
    name: "token without the method's scope",
    headers: async () => bearer(tokens.noMandateScope as string),
    expect: () => Code.PermissionDenied,
  },
  {
    name: "DPoP-bound token without a proof",
    headers: async () => ({ authorization: `DPoP ${dpopAll.token}` }),
    expect: () => Code.Unauthenticated,
  },
  {
    name: "DPoP-bound token sent as Bearer",
    headers: async (url) => ({ ...bearer(dpopAll.token), dpop: await dpopAll.proof(url) }),
    expect: () => Code.Unauthenticated,
  },
  {
    name: "DPoP-bound token with another key's proof",
    headers: async (url) => ({ authorization: `DPoP ${dpopAll.token}`, dpop: await foreignProof(url, dpopAll.token) }),
    expect: () => Code.Unauthenticated,
  },
  {
    name: "correct Bearer token",
    headers: async (_url, rule) => bearer(rightToken(rule) as string),
    client: () => ({
      clientId: clientCredentials.clientId,
      method: "client_secret_basic",
      clientSecret: clientCredentials.clientSecret,
    }),
    expect: () => "pass",
  },
  {
    name: "correct DPoP-bound token",
    headers: async (url, rule) =>
      rule.platform
        ? adminHeaders(server.process.adminFile, url)
        : { authorization: `DPoP ${dpopAll.token}`, dpop: await dpopAll.proof(url) },
    client: () => ({
      clientId: clientCredentials.clientId,
      method: "client_secret_basic",
      clientSecret: clientCredentials.clientSecret,
    }),
    expect: () => "pass",
  },
];

/** An invalid request (empty, or naming `tenant` only): a validation error would show it was looked at. */
function requestFor(method: DescMethod, tenant: string, client?: Record<string, string>) {
  const fields = new Set(method.input.fields.map((f) => f.localName));
  return create(method.input, {
    ...(fields.has("tenant") ? { tenant } : {}),
    ...(client && fields.has("client") ? { client } : {}),
  } as never);
}

/** The code a call ends with ("ok" when it succeeds); a server stream counts as soon as it answers. */
async function call(
  transport: Transport,
  method: DescMethod,
  request: unknown,
  headers: Headers,
): Promise<Code | "ok"> {
  const client = createClient(method.parent, transport) as unknown as Record<
    string,
    (r: unknown, o: object) => Promise<unknown> | AsyncIterable<unknown>
  >;
  const invoke = client[method.localName] as (r: unknown, o: object) => Promise<unknown> | AsyncIterable<unknown>;
  const abort = new AbortController();
  try {
    if (method.methodKind === "server_streaming") {
      const iterator = (invoke(request, { headers, signal: abort.signal }) as AsyncIterable<unknown>)[
        Symbol.asyncIterator
      ]();
      // A stream the gate admitted may wait for entries: an answer, or 2 s of silence, means "admitted".
      await Promise.race([iterator.next(), new Promise((resolve) => setTimeout(resolve, 2000))]);
    } else {
      await invoke(request, { headers, timeoutMs: 10_000 });
    }
    return "ok";
  } catch (error) {
    return ConnectError.from(error).code;
  } finally {
    abort.abort();
  }
}

const transports = () => ({
  grpc: { transport: grpc, base: `http://${server.process.summary.grpc}` },
  edge: { transport: web, base: server.base },
});
const ADMITTED = (code: Code | "ok") =>
  code !== Code.Unauthenticated && code !== Code.PermissionDenied && code !== Code.ResourceExhausted;

/** What a method answers a row with, given its access rule and the transport. */
function expected(row: Row, rule: AccessRule, transport: "grpc" | "edge"): "pass" | Code {
  if (rule.exposure === "internal") {
    // Never routed by the edge; on gRPC only Mandate's services (mTLS) get in: a token is the wrong credential.
    if (transport === "edge") return Code.Unimplemented;
    return row.name === "no credentials" ? Code.Unauthenticated : Code.PermissionDenied;
  }
  if (rule.anonymous) return "pass"; // a standard publishes it (the JWK Set)
  if (rule.clientAuthentication) return row.client ? "pass" : Code.Unauthenticated;
  return row.expect(rule);
}

/** The credential rows `method` does not answer as its access rule says, described. */
async function gateMismatches(transportName: "grpc" | "edge", method: (typeof METHODS)[number]): Promise<string[]> {
  const { transport, base } = transports()[transportName];
  const rule = accessRuleOf(method) as AccessRule;
  const url = `${base}/${method.parent.typeName}/${method.name}`;
  const failures: string[] = [];
  for (const row of ROWS) {
    const want = expected(row, rule, transportName);
    const got = await call(
      transport,
      method,
      requestFor(method, "demo", row.client?.(rule)),
      await row.headers(url, rule),
    );
    const ok = want === "pass" ? ADMITTED(got) : got === want;
    if (!ok)
      failures.push(
        `${method.parent.typeName}/${method.name} × ${row.name}: got ${Code[got as Code] ?? got}, want ${want === "pass" ? "admitted" : Code[want]}`,
      );
  }
  return failures;
}

describe("every RPC, every credential, both transports", () => {
  it("declares an access rule on every method of every service", () => {
    const missing = METHODS.filter((method) => !accessRuleOf(method)).map((m) => `${m.parent.typeName}/${m.name}`);
    expect(missing).toEqual([]);
    expect(METHODS.length).toBeGreaterThanOrEqual(28);
    expect(METHODS.some((m) => m.methodKind === "server_streaming")).toBe(true);
  });

  for (const transportName of ["grpc", "edge"] as const) {
    it(`${transportName}: only the right credential gets past the gate`, async () => {
      const failures: string[] = [];
      for (const method of METHODS) failures.push(...(await gateMismatches(transportName, method)));
      expect(failures).toEqual([]);
    }, 120_000);

    it(`${transportName}: nothing is validated or read before authentication`, async () => {
      const { transport } = transports()[transportName];
      for (const method of METHODS) {
        const rule = accessRuleOf(method) as AccessRule;
        if (rule.anonymous) continue;
        // Invalid and for a tenant that does not exist: INVALID_ARGUMENT or NOT_FOUND would mean it was read.
        const got = await call(transport, method, requestFor(method, "no-such-tenant"), {});
        const want =
          rule.exposure === "internal" && transportName === "edge" ? Code.Unimplemented : Code.Unauthenticated;
        expect(Code[got as Code] ?? got, `${method.parent.typeName}/${method.name}`).toBe(Code[want]);
      }
    }, 60_000);

    it(`${transportName}: UNAUTHENTICATED carries a WWW-Authenticate challenge, PERMISSION_DENIED the missing scope`, async () => {
      const { transport, base } = transports()[transportName];
      const client = createClient(Tenants, transport);
      const none = await client.getTenant({ tenant: "demo" }).then(() => undefined, ConnectError.from);
      expect(none?.code).toBe(Code.Unauthenticated);
      expect(none?.metadata.get("www-authenticate")).toMatch(/^Bearer realm="mandate"/);
      const scoped = await client
        .getTenant({ tenant: "demo" }, { headers: bearer(tokens[API_SCOPES.introspect] as string) })
        .then(() => undefined, ConnectError.from);
      expect(scoped?.code).toBe(Code.PermissionDenied);
      expect(scoped?.metadata.get("www-authenticate")).toContain('error="insufficient_scope"');
      expect(scoped?.rawMessage).toContain(API_SCOPES.tenantAdmin);
      // A proof made for another method does not open this one (htu, RFC 9449 §4.3).
      const elsewhere = await client
        .getTenant(
          { tenant: "demo" },
          {
            headers: {
              authorization: `DPoP ${dpopAll.token}`,
              dpop: await dpopAll.proof(`${base}/mandate.v1.Tenants/ListTenants`),
            },
          },
        )
        .then(() => undefined, ConnectError.from);
      expect(elsewhere?.code).toBe(Code.Unauthenticated);
      // The same proof twice: the second is a replay (RFC 9449 §11.1).
      const url = `${base}/mandate.v1.Tenants/GetTenant`;
      const proof = await dpopAll.proof(url);
      const headers = { authorization: `DPoP ${dpopAll.token}`, dpop: proof };
      await expect(client.getTenant({ tenant: "demo" }, { headers })).resolves.toBeTruthy();
      const replay = await client.getTenant({ tenant: "demo" }, { headers }).then(() => undefined, ConnectError.from);
      expect(replay?.code).toBe(Code.Unauthenticated);
      // Health is for load balancers: open, by its protocol.
      await expect(createClient(Health, transport).check({ service: "" })).resolves.toBeTruthy();
    });
  }

  it("records every admin action in the tenant's audit log with its caller", async () => {
    const address = server.process.summary.grpc as string;
    const { readAdminCredentials } = await import("../../services/runtime/admin-bootstrap.ts");
    const adminId = readAdminCredentials(server.process.adminFile)?.client_id;
    const issue = adminClient(Issue, address, server.process.adminFile);
    const { client } = await issue.createClient({ tenant: "demo", metadata: { grantTypes: ["client_credentials"] } });
    await issue.getClient({ tenant: "demo", clientId: client?.clientId as string });
    await issue.deleteClient({ tenant: "demo", clientId: client?.clientId as string });
    const audit = adminClient(Audit, address, server.process.adminFile);
    const types = ["client.created.v1", "client.deleted.v1", "admin.read.v1"];
    // The admin's own entries of each type (other tests' callers write admin reads to this log too).
    const mine = (entries: Awaited<ReturnType<typeof audit.query>>["entries"]) =>
      entries
        .map((e) => ({ type: e.event?.type ?? "", details: (e.event?.details ?? {}) as Record<string, unknown> }))
        .filter((e) => (e.details.by as { client_id?: string } | undefined)?.client_id === adminId)
        .filter((e) => e.type === "admin.read.v1" || JSON.stringify(e.details).includes(client?.clientId as string));
    let found: ReturnType<typeof mine> = [];
    for (let attempt = 0; attempt < 50; attempt++) {
      found = mine((await audit.query({ tenant: "demo", types, clientId: adminId, page: { pageSize: 500 } })).entries);
      if (types.every((type) => found.some((e) => e.type === type))) break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    for (const type of types) {
      const entry = found.find((e) => e.type === type);
      expect(entry?.details.by, type).toMatchObject({ tenant: "platform", client_id: adminId });
    }
  });

  it("refuses an expired token on both transports", async () => {
    // RFC 9068 §4 / RFC 7519 §4.1.4, with the verifier's few seconds of clock tolerance.
    const wait = expired.exp + 6500 - Date.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    for (const { transport } of Object.values(transports())) {
      const error = await createClient(Tenants, transport)
        .getTenant({ tenant: "demo" }, { headers: bearer(expired.token) })
        .then(() => undefined, ConnectError.from);
      expect(error?.code).toBe(Code.Unauthenticated);
      expect(error?.rawMessage).toContain("expired");
    }
  }, 30_000);
});
