// Authorize.Check and BatchCheck against a running `mandate dev`, through real gRPC (and the edge's
// Connect and gRPC-Web): decisions of the default policy, access-token mode (the token verified as
// Introspect verifies it, DPoP proofs per RFC 9449 §7.1), failing closed (a policy that throws, runs
// out of memory or of its step budget, answers in the wrong shape, or whose stored module is
// corrupt: a deny with its reason, never an RPC error), batches, who may call, and the decision log
// (Audit.Query by the decision id, masked). The process runs with a small memory maximum and step
// budget, and a decision-log mask.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, type ConnectError, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { calculateJwkThumbprint, exportJWK, type JWK, SignJWT } from "jose";
import * as oauth from "oauth4webapi";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Audit } from "../../gen/mandate/v1/audit_pb.js";
import {
  Authorize,
  type CheckRequest,
  type CheckRequestSchema,
  type Decision,
} from "../../gen/mandate/v1/authorize_pb.js";
import { PartyKind } from "../../gen/mandate/v1/common_pb.js";
import { Tenants } from "../../gen/mandate/v1/tenants_pb.js";
import { buildBundle, writeBundle } from "../../services/authorize/rego/index.ts";
import { Store } from "../../services/shared/store/store.ts";
import { adminClient } from "../helpers/admin.ts";
import { type OAuthServer, startOAuthServer } from "../helpers/oauth-server.ts";
import { rpcError } from "../helpers/rpc-error.ts";

/** A CheckRequest as a plain object (the init shape without the message type). */
type CheckInput = Exclude<MessageInitShape<typeof CheckRequestSchema>, CheckRequest>;

const API = "https://api.example.com/";
const insecure = { [oauth.allowInsecureRequests]: true };
const MASK = ["/context/ip", "/resource/attributes/ssn"];

let server: OAuthServer;
let address: string;
let authorize: ReturnType<typeof createClient<typeof Authorize>>;
let caller: Interceptor;
let as: oauth.AuthorizationServer;
let client: { id: string; secret: string };
/** A token of a client whose tokens live 10 s, minted at the start: expired by the last test. */
let shortLived: { token: string; expiresAt: number };

beforeAll(async () => {
  const configFile = join(mkdtempSync(join(tmpdir(), "mandate-authorize-")), "mandate.yaml");
  writeFileSync(configFile, JSON.stringify({ authorize: { decisionLogMask: MASK } }));
  server = await startOAuthServer({
    MANDATE_CONFIG: configFile,
    MANDATE_AUTHORIZE_MAX_MEMORY_MIB: "16",
    MANDATE_AUTHORIZE_EVALUATION_BUDGET: "5000000",
  });
  address = server.process.summary.grpc as string;
  caller = await server.caller("mandate:authorize");
  authorize = createClient(Authorize, grpc([caller]));
  as = await oauth.processDiscoveryResponse(
    new URL(server.issuer),
    await oauth.discoveryRequest(new URL(server.issuer), { algorithm: "oauth2", ...insecure }),
  );
  const registered = await server.register({
    grantTypes: ["client_credentials"],
    scope: "orders.read",
    resources: [API],
  });
  client = { id: registered.clientId, secret: registered.clientSecret };
  const brief = await server.register({
    grantTypes: ["client_credentials"],
    scope: "orders.read",
    resources: [API],
    accessTokenLifetimeSeconds: 10,
  });
  shortLived = { token: await tokenOf(brief), expiresAt: Date.now() + 10_000 };
  await adminClient(Tenants, address, server.process.adminFile).createTenant({ tenant: "acme", displayName: "Acme" });
}, 60_000);

afterAll(async () => {
  await server?.stop();
});

function grpc(interceptors: Interceptor[]): Transport {
  return createGrpcTransport({ baseUrl: `http://${address}`, interceptors });
}

/** Callers (mandate:authorize) of the tenants other than demo, made on first use. */
const tenantCallers = new Map<string, ReturnType<typeof createClient<typeof Authorize>>>();

async function check(request: CheckInput): Promise<Decision> {
  const tenant = request.tenant ?? "demo";
  let asker = tenant === "demo" ? authorize : tenantCallers.get(tenant);
  if (!asker) {
    asker = createClient(Authorize, grpc([await server.caller("mandate:authorize", tenant)]));
    tenantCallers.set(tenant, asker);
  }
  const { decision } = await asker.check(request);
  if (!decision) throw new Error("no decision");
  return decision;
}

/** A request the default policy allows: scope, audience and nothing else to object to. */
function question(fields: Partial<CheckInput> = {}): CheckInput {
  return {
    tenant: "demo",
    subject: { id: "alice", kind: PartyKind.HUMAN, attributes: { clearance: 1 } },
    client: { id: "storefront", kind: PartyKind.SERVICE },
    action: "orders.read",
    resource: { type: "order", id: "o-1", attributes: { audience: API } },
    token: { scopes: ["orders.read"], audiences: [API] },
    ...fields,
  };
}

/** An access-token-mode request about `token` (parties and claims come from it). */
function withToken(token: string, fields: Partial<CheckInput> = {}): CheckInput {
  return {
    tenant: "demo",
    accessToken: token,
    action: "orders.read",
    resource: { type: "order", id: "o-1", attributes: { audience: API } },
    ...fields,
  };
}

async function tokenOf(registered: { clientId: string; clientSecret: string }, tenant = "demo"): Promise<string> {
  const response = await fetch(`${server.base}/t/${tenant}/oauth2/token`, {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      authorization: `Basic ${Buffer.from(`${registered.clientId}:${registered.clientSecret}`).toString("base64")}`,
    },
    body: new URLSearchParams({ grant_type: "client_credentials", resource: API }),
  });
  if (response.status !== 200) throw new Error(`token: ${response.status} ${await response.text()}`);
  return ((await response.json()) as { access_token: string }).access_token;
}

/** A DPoP key pair and a proof builder for it. */
async function dpopKey() {
  const pair = await oauth.generateKeyPair("ES256", { extractable: true });
  const jwk = (await exportJWK(pair.publicKey)) as JWK;
  return {
    pair,
    jkt: await calculateJwkThumbprint(jwk),
    proof: (claims: Record<string, unknown>) =>
      new SignJWT({ jti: crypto.randomUUID(), iat: Math.floor(Date.now() / 1000), ...claims })
        .setProtectedHeader({ alg: "ES256", typ: "dpop+jwt", jwk })
        .sign(pair.privateKey),
  };
}

async function dpopBoundToken(key: Awaited<ReturnType<typeof dpopKey>>): Promise<string> {
  const c = { client_id: client.id };
  const dpop = oauth.DPoP({}, key.pair);
  const request = () =>
    oauth.clientCredentialsGrantRequest(
      as,
      c,
      oauth.ClientSecretBasic(client.secret),
      { resource: API },
      {
        ...insecure,
        DPoP: dpop,
      },
    );
  let response = await request();
  if (response.status === 400) response = await request(); // the server's DPoP nonce (RFC 9449 §8)
  return (await oauth.processClientCredentialsResponse(as, c, response)).access_token;
}

const ath = async (value: string) =>
  Buffer.from(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(value))).toString("base64url");

const reasonCodes = (decision: Decision) => decision.reasons.map((r) => r.code);

describe("Check with the default policy", () => {
  it("allows what the token's scopes and audience cover, with a UUIDv7 decision id and the policy revision", async () => {
    const decision = await check(question());
    expect(decision.allow).toBe(true);
    expect(decision.decisionId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(decision.policyRevision).toMatch(/^default-/);
    expect(Math.abs(Number(decision.decideTime?.seconds) * 1000 - Date.now())).toBeLessThan(60_000);
  });

  it("denies with the policy's reasons, and attaches its obligations", async () => {
    const denied = await check(question({ action: "orders.delete" }));
    expect(denied.allow).toBe(false);
    expect(denied.reasons).toEqual([
      expect.objectContaining({ code: "scope_missing", message: "the action is outside the token's scopes" }),
    ]);
    const wrongAudience = await check(question({ token: { scopes: ["orders.read"], audiences: ["https://other/"] } }));
    expect(reasonCodes(wrongAudience)).toEqual(["audience_mismatch"]);
    const classified = await check(
      question({
        subject: { id: "alice", kind: PartyKind.HUMAN, attributes: { clearance: 3 } },
        resource: { type: "order", id: "o-2", attributes: { audience: API, classification: 3 } },
      }),
    );
    expect(classified.allow).toBe(true);
    expect(classified.obligations.map((o) => [o.type, o.parameters])).toEqual([
      ["step_up", { acr_values: "urn:mandate:acr:mfa" }],
    ]);
  });

  it("reports ready on /readyz once the default policy has loaded", async () => {
    const ready = await fetch(`${server.base}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: "ready", checks: { "authorize.policy": "ok" } });
  });

  it("gives every decision its own id", async () => {
    const ids = new Set<string>();
    for (let i = 0; i < 5; i++) ids.add((await check(question())).decisionId);
    expect(ids.size).toBe(5);
  });

  it("answers the same over the edge's Connect and gRPC-Web", async () => {
    for (const transport of [
      createConnectTransport({ baseUrl: server.base, httpVersion: "1.1", interceptors: [caller] }),
      createGrpcWebTransport({ baseUrl: server.base, httpVersion: "1.1", interceptors: [caller] }),
    ]) {
      const edge = createClient(Authorize, transport);
      expect((await edge.check(question())).decision?.allow).toBe(true);
      expect((await edge.check(question({ action: "orders.delete" }))).decision?.allow).toBe(false);
    }
  });

  it("refuses an invalid request with INVALID_ARGUMENT (no subject and no token, no resource)", async () => {
    const { subject: _subject, ...anonymous } = question();
    expect((await rpcError(authorize.check(anonymous))).code).toBe(Code.InvalidArgument);
    const { resource: _resource, ...nowhere } = question();
    expect((await rpcError(authorize.check(nowhere))).code).toBe(Code.InvalidArgument);
  });
});

describe("access-token mode", () => {
  it("decides about the verified token's claims, ignoring the caller's copies", async () => {
    const token = await tokenOf({ clientId: client.id, clientSecret: client.secret });
    expect(await check(withToken(token))).toMatchObject({ allow: true });
    // The caller claims more scopes and another subject: the token's own are what the policy sees.
    const claimed = await check(
      withToken(token, {
        action: "orders.write",
        subject: { id: "root", kind: PartyKind.HUMAN },
        token: { scopes: ["orders.write"], audiences: [API] },
      }),
    );
    expect(reasonCodes(claimed)).toEqual(["scope_missing"]);
    // Meant for another resource server: not accepted here (RFC 8707, RFC 9068 §4).
    const elsewhere = await check(withToken(token, { expectedAudience: "https://other.example/" }));
    expect(reasonCodes(elsewhere)).toEqual(["token_invalid"]);
    expect((await check(withToken(token, { expectedAudience: API }))).allow).toBe(true);
  });

  it("denies token_invalid for a forged signature, garbage, a refresh token and a revoked token", async () => {
    const token = await tokenOf({ clientId: client.id, clientSecret: client.secret });
    const [header, payload, signature] = token.split(".") as [string, string, string];
    const flipped = `${signature.slice(0, -2)}${signature.endsWith("AA") ? "BB" : "AA"}`;
    const forgedPayload = Buffer.from(
      JSON.stringify({
        ...JSON.parse(Buffer.from(payload, "base64url").toString()),
        scope: "orders.read orders.write",
      }),
    ).toString("base64url");
    for (const bad of [
      `${header}.${payload}.${flipped}`,
      `${header}.${forgedPayload}.${signature}`,
      "not-a-jwt",
      "mrt_abc",
    ]) {
      const decision = await check(withToken(bad));
      expect(decision.allow, bad.slice(0, 20)).toBe(false);
      expect(reasonCodes(decision)).toEqual(["token_invalid"]);
      expect(decision.policyRevision).toBe("");
    }
    const revoked = await tokenOf({ clientId: client.id, clientSecret: client.secret });
    const revocation = await fetch(`${server.issuer}/oauth2/revoke`, {
      method: "POST",
      headers: {
        "content-type": "application/x-www-form-urlencoded",
        authorization: `Basic ${Buffer.from(`${client.id}:${client.secret}`).toString("base64")}`,
      },
      body: new URLSearchParams({ token: revoked }),
    });
    expect(revocation.status).toBe(200);
    expect(reasonCodes(await check(withToken(revoked)))).toEqual(["token_invalid"]);
  });

  it("denies token_wrong_tenant for a token of another tenant", async () => {
    const acmeClient = await server.register(
      { grantTypes: ["client_credentials"], scope: "orders.read", resources: [API] },
      "acme",
    );
    const acmeToken = await tokenOf(acmeClient, "acme");
    expect(reasonCodes(await check(withToken(acmeToken)))).toEqual(["token_wrong_tenant"]);
  });

  it("requires the DPoP proof of a DPoP-bound token, by the bound key (RFC 9449 §7.1)", async () => {
    const key = await dpopKey();
    const token = await dpopBoundToken(key);
    const uri = `${API}orders/o-1`;
    const proofBy = async (k: typeof key, claims: Record<string, unknown> = {}) => ({
      proof: await k.proof({ htm: "GET", htu: uri, ath: await ath(token), ...claims }),
      httpMethod: "GET",
      httpUri: uri,
    });
    expect(reasonCodes(await check(withToken(token)))).toEqual(["dpop_required"]);
    expect(reasonCodes(await check(withToken(token, { dpop: await proofBy(await dpopKey()) })))).toEqual([
      "dpop_invalid",
    ]);
    expect(reasonCodes(await check(withToken(token, { dpop: await proofBy(key, { htu: `${API}other` }) })))).toEqual([
      "dpop_invalid",
    ]);
    expect(reasonCodes(await check(withToken(token, { dpop: await proofBy(key, { ath: undefined }) })))).toEqual([
      "dpop_invalid",
    ]);
    const proof = await proofBy(key);
    expect(await check(withToken(token, { dpop: proof }))).toMatchObject({ allow: true });
    // A proof is single use (§11.1): the same one again is a replay.
    expect(reasonCodes(await check(withToken(token, { dpop: proof })))).toEqual(["dpop_invalid"]);
  });

  it("lets the checks of one batch share one token and proof (one protected request, several questions)", async () => {
    const key = await dpopKey();
    const token = await dpopBoundToken(key);
    const uri = `${API}orders`;
    const dpop = {
      proof: await key.proof({ htm: "GET", htu: uri, ath: await ath(token) }),
      httpMethod: "GET",
      httpUri: uri,
    };
    const { decisions } = await authorize.batchCheck({
      tenant: "demo",
      checks: [
        withToken(token, { dpop }),
        withToken(token, { dpop, action: "orders.write" }),
        withToken(token, { dpop }),
      ],
    });
    expect(decisions.map((d) => d.allow)).toEqual([true, false, true]);
    expect(reasonCodes(decisions[1] as Decision)).toEqual(["scope_missing"]);
  });
});

describe("BatchCheck", () => {
  it("decides up to 100 checks in request order, each with its own decision id", async () => {
    const checks = Array.from({ length: 100 }, (_, i) =>
      question({ action: i % 3 === 0 ? "orders.delete" : "orders.read" }),
    );
    const { decisions } = await authorize.batchCheck({ tenant: "demo", checks });
    expect(decisions.map((d) => d.allow)).toEqual(checks.map((c) => c.action === "orders.read"));
    expect(new Set(decisions.map((d) => d.decisionId)).size).toBe(100);
  });

  it("refuses 101 checks, none, and a check naming another tenant with INVALID_ARGUMENT", async () => {
    const many = Array.from({ length: 101 }, () => question());
    expect((await rpcError(authorize.batchCheck({ tenant: "demo", checks: many }))).code).toBe(Code.InvalidArgument);
    expect((await rpcError(authorize.batchCheck({ tenant: "demo", checks: [] }))).code).toBe(Code.InvalidArgument);
    const mixed = [question(), question({ tenant: "acme" })];
    expect((await rpcError(authorize.batchCheck({ tenant: "demo", checks: mixed }))).code).toBe(Code.InvalidArgument);
  });
});

describe("who may ask", () => {
  it("refuses a caller without credentials (UNAUTHENTICATED)", async () => {
    const anonymous = createClient(Authorize, grpc([]));
    expect((await rpcError(anonymous.check(question()))).code).toBe(Code.Unauthenticated);
    expect((await rpcError(anonymous.batchCheck({ tenant: "demo", checks: [question()] }))).code).toBe(
      Code.Unauthenticated,
    );
    const forged = createClient(
      Authorize,
      grpc([
        (next) => (request) => {
          request.header.set("authorization", "Bearer not.a.token");
          return next(request);
        },
      ]),
    );
    expect((await rpcError(forged.check(question()))).code).toBe(Code.Unauthenticated);
  });

  it("refuses a token without mandate:authorize, and a caller of another tenant (PERMISSION_DENIED)", async () => {
    const introspector = createClient(Authorize, grpc([await server.caller("mandate:introspect")]));
    expect((await rpcError(introspector.check(question()))).code).toBe(Code.PermissionDenied);
    const acme = createClient(Authorize, grpc([await server.caller("mandate:authorize", "acme")]));
    expect((await rpcError(acme.check(question()))).code).toBe(Code.PermissionDenied);
    expect((await rpcError(acme.batchCheck({ tenant: "demo", checks: [question()] }))).code).toBe(
      Code.PermissionDenied,
    );
    // acme's caller may ask about acme (decided by the default policy).
    expect((await acme.check(question({ tenant: "acme" }))).decision?.allow).toBe(true);
  });
});

/** A tenant policy that fails in every way the engine must survive, chosen by `input.action`. */
const FAULTY = `package mandate.authz
import rego.v1

# METADATA
# entrypoint: true
decision := {"allow": 1 / input.context.zero > 0} if input.action == "divide"

decision := {"allow": count(s5) > 0} if input.action == "huge"

decision := {"allow": spin} if input.action == "loop"

decision := {"allow": "yes"} if input.action == "shape"

decision := {"allow": true, "reasons": ["fine"]} if input.action == "fine"

# 64 bytes repeated 16-fold five times: 64 MiB, beyond the instance's 16 MiB, in few steps.
s0 := "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
s1 := concat("", [s0, s0, s0, s0, s0, s0, s0, s0, s0, s0, s0, s0, s0, s0, s0, s0])
s2 := concat("", [s1, s1, s1, s1, s1, s1, s1, s1, s1, s1, s1, s1, s1, s1, s1, s1])
s3 := concat("", [s2, s2, s2, s2, s2, s2, s2, s2, s2, s2, s2, s2, s2, s2, s2, s2])
s4 := concat("", [s3, s3, s3, s3, s3, s3, s3, s3, s3, s3, s3, s3, s3, s3, s3, s3])
s5 := concat("", [s4, s4, s4, s4, s4, s4, s4, s4, s4, s4, s4, s4, s4, s4, s4, s4])

# 16 million comparisons: beyond the 5 million step budget, allocating nothing.
xs := {x | some x in numbers.range(1, 4000)}
ys := {y | some y in numbers.range(5000, 9000)}
default spin := false
spin if {
	some x in xs
	some y in ys
	x == y
}
`;

async function bundleOf(source: string, revision: string): Promise<Buffer> {
  const dir = mkdtempSync(join(tmpdir(), "mandate-policy-"));
  writeFileSync(join(dir, "authz.rego"), source);
  return (await buildBundle(dir, { revision })).bytes;
}

describe("failing closed", () => {
  const admin = () => adminClient(Authorize, address, server.process.adminFile);

  beforeAll(async () => {
    const tenants = adminClient(Tenants, address, server.process.adminFile);
    for (const tenant of ["faulty", "corrupt"]) await tenants.createTenant({ tenant, displayName: tenant });
    await admin().pushPolicy({ tenant: "faulty", bundle: await bundleOf(FAULTY, "faulty-1"), activate: true });
  }, 30_000);

  it.each([
    ["divide", "policy_error"],
    ["huge", "memory_limit"],
    ["loop", "evaluation_budget"],
    ["shape", "policy_result_invalid"],
    ["undefined", "policy_result_invalid"],
  ])("answers a policy that fails on %s with a deny, reason %s, never an RPC error", async (action, code) => {
    const decision = await check(question({ tenant: "faulty", action, context: { zero: 0 } }));
    expect(decision.allow).toBe(false);
    expect(reasonCodes(decision)).toEqual([code]);
    expect(decision.policyRevision).toBe("faulty-1");
    // The tenant's policy keeps deciding afterwards (the failed instance was replaced).
    expect(await check(question({ tenant: "faulty", action: "fine" }))).toMatchObject({ allow: true });
  });

  it("denies policy_error when the stored module is corrupt", async () => {
    await admin().pushPolicy({ tenant: "corrupt", bundle: await bundleOf(FAULTY, "corrupt-1"), activate: true });
    // The row is damaged after it was checked and stored (the store is the only writer a push passes).
    const corrupt = await writeBundle({
      manifest: { revision: "corrupt-1", roots: [""] },
      data: {},
      wasm: new TextEncoder().encode("\0asm but not really"),
      modules: {},
    });
    const store = Store.open({ url: server.database });
    try {
      await store
        .forTenant("corrupt")
        .db.updateTable("policy_bundles")
        .set({ bundle: corrupt.toString("base64") })
        .where("tenant_id", "=", "corrupt")
        .execute();
    } finally {
      await store.close();
    }
    const decision = await check(question({ tenant: "corrupt", action: "fine" }));
    expect(decision.allow).toBe(false);
    expect(reasonCodes(decision)).toEqual(["policy_error"]);
  });

  it("decides with a newly activated revision once it has loaded (hot reload)", async () => {
    const before = await check(question({ tenant: "faulty", action: "fine" }));
    expect(before.policyRevision).toBe("faulty-1");
    const next = FAULTY.replace('"reasons": ["fine"]', '"reasons": ["finer"]');
    await admin().pushPolicy({ tenant: "faulty", bundle: await bundleOf(next, "faulty-2"), activate: true });
    let decision = before;
    for (let i = 0; i < 50 && decision.policyRevision !== "faulty-2"; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      decision = await check(question({ tenant: "faulty", action: "fine" }));
    }
    expect(decision).toMatchObject({ allow: true, policyRevision: "faulty-2" });
    expect(decision.reasons).toEqual([expect.objectContaining({ code: "policy", message: "finer" })]);
  });
});

describe("policy data documents", () => {
  const admin = () => adminClient(Authorize, address, server.process.adminFile);

  it("sets, reads and removes a document, and refuses a value with no kind (INVALID_ARGUMENT, not INTERNAL)", async () => {
    await admin().setPolicyData({
      tenant: "demo",
      path: "bindings/roles",
      value: {
        kind: { case: "structValue", value: { fields: { alice: { kind: { case: "stringValue", value: "admin" } } } } },
      },
    });
    const { documents } = await admin().getPolicyData({ tenant: "demo" });
    expect(documents.map((d) => d.path)).toContain("bindings/roles");
    // Found by the fuzz suite: a google.protobuf.Value with no kind set is not JSON.
    const empty = await admin()
      .setPolicyData({ tenant: "demo", path: "aa6", value: {} })
      .then(
        () => undefined,
        (error: ConnectError) => error,
      );
    expect(empty?.code).toBe(Code.InvalidArgument);
    expect(empty?.rawMessage).toMatch(/^value: .*has no kind/);
    await admin().setPolicyData({ tenant: "demo", path: "bindings/roles" });
    expect((await admin().getPolicyData({ tenant: "demo" })).documents.map((d) => d.path)).not.toContain(
      "bindings/roles",
    );
  });
});

describe("the decision log", () => {
  it("is queryable by the decision id once the outbox drains, without the masked paths or the parties' ids", async () => {
    const decision = await check(
      question({
        resource: { type: "order", id: "o-9", attributes: { audience: API, ssn: "123-45-6789" } },
        context: { ip: "192.0.2.44", channel: "web" },
        requestId: "req-audit-1",
      }),
    );
    const audit = createClient(Audit, grpc([await server.caller("mandate:audit.read")]));
    let entries: Awaited<ReturnType<typeof audit.query>>["entries"] = [];
    for (let i = 0; i < 100 && entries.length === 0; i++) {
      entries = (await audit.query({ tenant: "demo", requestId: decision.decisionId })).entries;
      if (entries.length === 0) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(entries).toHaveLength(1);
    const event = entries[0]?.event;
    expect(event).toMatchObject({ type: "authz.decision.v1", action: "orders.read", requestId: decision.decisionId });
    const details = event?.details as Record<string, unknown>;
    expect(details).toMatchObject({
      decision_id: decision.decisionId,
      allow: true,
      policy_revision: decision.policyRevision,
      request_id: "req-audit-1",
    });
    expect(details.input_sha256).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const logged = JSON.stringify(details.input);
    for (const hidden of ["192.0.2.44", "123-45-6789", '"alice"', '"storefront"']) expect(logged).not.toContain(hidden);
    expect(details.input).toMatchObject({ context: { channel: "web" }, resource: { attributes: { audience: API } } });
    // The human subject is in the log only as a salted reference.
    expect(event?.subject?.id ?? "").not.toBe("alice");
  });
});

describe("expiry", () => {
  it("denies token_expired once the token's lifetime (and the allowed skew) has passed", async () => {
    const wait = shortLived.expiresAt + 6_000 - Date.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    expect(reasonCodes(await check(withToken(shortLived.token)))).toEqual(["token_expired"]);
  }, 30_000);
});
