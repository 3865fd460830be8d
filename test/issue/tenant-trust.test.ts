// Cross-organization trust (issue 18 item 3) against a running `mandate dev` over real HTTP: tenant
// "demo" (A) trusts tenant "partner" (B). B's agent — a real client of B with its own DPoP key —
// gets a B token meant for A (aud = A's issuer) from B's token endpoint and exchanges it at A's token
// endpoint with oauth4webapi (RFC 8693, subject_token_type urn:mandate:params:oauth:token-type:
// tenant-access-token). The A token keeps B's identities in `act`; a tenant policy in A narrows the
// crossing by reading `input.token.foreign_tenant`; both tenants' audit logs record it. Refusals:
// scope/resource outside the trust, no trust, expired trust, a human when only agents are trusted,
// B's token revoked in B, a token not meant for A, and the trust revoked — which also makes the
// crossing tokens already issued inactive at A's introspection.
import { randomUUID } from "node:crypto";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { exportJWK, generateKeyPair } from "jose";
import * as oauth from "oauth4webapi";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Authorize } from "../../gen/mandate/v1/authorize_pb.js";
import { ClientKind } from "../../gen/mandate/v1/clients_pb.js";
import { Issue } from "../../gen/mandate/v1/issue_pb.js";
import { Tenants } from "../../gen/mandate/v1/tenants_pb.js";
import { buildBundle } from "../../services/authorize/rego/bundle.ts";
import { TENANT_ACCESS_TOKEN_TYPE } from "../../services/issue/federation/gateway/sources/tenant.ts";
import { type NewTenantTrust, TenantTrusts } from "../../services/issue/federation/tenant-trust/trusts.ts";
import { Store } from "../../services/shared/store/store.ts";
import { adminClient } from "../helpers/admin.ts";
import {
  type Agent,
  claimsOf,
  discover,
  presentedProof,
  redeemCode,
  registerAgent,
  TOKEN_EXCHANGE,
  type TokenEndpoint,
  tokenRequest,
} from "../helpers/agents.ts";
import { auditDetails } from "../helpers/audit-log.ts";
import { runMandate } from "../helpers/mandate-process.ts";
import { Browser, type OAuthServer, startOAuthServer } from "../helpers/oauth-server.ts";
import { policyDir } from "../helpers/policy-bundles.ts";

const A = "demo";
const B = "partner";
const C = "stranger";
const RESOURCE = "https://orders.example";
const OTHER_RESOURCE = "https://billing.example";
const ADMIN = { by: { role: "test administrator" } };
const insecure = { [oauth.allowInsecureRequests]: true };

/**
 * A's policy: crossings from B may read orders but never cancel them; crossings from B and C get
 * tokens for reading only (Issue asks before minting: action token.federated, one check per scope);
 * A's own callers are untouched.
 */
const POLICY = `package mandate.authz

import rego.v1

default allow := false

crossing if input.token.foreign_tenant == "${B}"

allow if {
	crossing
	input.action == "orders.read"
	input.actors[0].attributes.iss == "${"ISSUER_B"}"
}

allow if {
	input.token.foreign_tenant in {"${B}", "${C}"}
	input.action == "token.federated"
	input.context.phase == "issuance"
	input.resource.type == "scope"
	input.resource.id == "orders.read"
}

# METADATA
# entrypoint: true
decision := {"allow": allow, "reasons": reasons, "obligations": []}

reasons := ["crossings from ${B} may not do this"] if {
	crossing
	not allow
} else := []
`;

let server: OAuthServer;
let store: Store;
let trusts: TenantTrusts;
let endpointA: TokenEndpoint;
let endpointB: TokenEndpoint;
let issuerB: string;
let agentB: Agent;
let agentC: Agent;
/** A's agent client standing for B's crossing identities. */
let representative: string;
let trustId: string;

function newTrust(fields: Partial<NewTenantTrust> = {}): NewTenantTrust {
  return {
    foreignTenant: B,
    clientId: representative,
    subjectKinds: ["agent"],
    scopes: ["orders.read", "orders.cancel"],
    resources: [RESOURCE],
    authorizationDetails: [],
    expiresAt: Date.now() + 3600_000,
    ...fields,
  };
}

/** `agent`'s own token at its tenant's endpoint, meant for A (RFC 8707 resource = A's issuer). */
async function foreignToken(agent: Agent, endpoint: TokenEndpoint, audience = server.issuer): Promise<string> {
  const response = await tokenRequest(endpoint, agent, "client_credentials", {
    scope: "partner.act",
    resource: audience,
  });
  if (response.status !== 200) throw new Error(`B token: ${response.status} ${await response.text()}`);
  return ((await response.json()) as { access_token: string }).access_token;
}

/** The crossing as B's agent sends it to A: no client authentication, DPoP by its own key, nonce retried. */
async function cross(
  agent: Agent,
  subjectToken: string,
  extra: Record<string, string> = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  const send = () =>
    oauth.genericTokenEndpointRequest(
      endpointA.as,
      { client_id: representative },
      oauth.None(),
      TOKEN_EXCHANGE,
      new URLSearchParams({
        subject_token: subjectToken,
        subject_token_type: TENANT_ACCESS_TOKEN_TYPE,
        resource: RESOURCE,
        scope: "orders.read",
        ...extra,
      }),
      { ...insecure, DPoP: agent.dpop },
    );
  let response = await send();
  let body = (await response.json()) as Record<string, unknown>;
  if (response.status === 400 && body.error === "use_dpop_nonce") {
    response = await send();
    body = (await response.json()) as Record<string, unknown>;
  }
  return { status: response.status, body };
}

async function crossed(agent: Agent, extra: Record<string, string> = {}) {
  const answer = await cross(agent, await foreignToken(agent, endpointB), extra);
  if (answer.status !== 200) throw new Error(`crossing: ${answer.status} ${JSON.stringify(answer.body)}`);
  return { token: answer.body.access_token as string, claims: claimsOf(answer.body.access_token as string) };
}

async function introspect(tenant: string, token: string): Promise<Record<string, unknown>> {
  const introspector = await server.register(
    { grantTypes: ["client_credentials"], scope: "mandate:introspect" },
    tenant,
  );
  const response = await fetch(`${server.base}/t/${tenant}/oauth2/introspect`, {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      authorization: `Basic ${Buffer.from(`${introspector.clientId}:${introspector.clientSecret}`).toString("base64")}`,
    },
    body: new URLSearchParams({ token }),
  });
  return (await response.json()) as Record<string, unknown>;
}

/** The details of `tenant`'s `tenant_trust.crossed.v1` entry for the A token `jti` (events reach the log shortly after). */
function crossingEntry(tenant: string, jti: string): Promise<Record<string, unknown>> {
  return auditDetails(server.database, "tenant_trust.crossed.v1", jti, tenant);
}

beforeAll(async () => {
  server = await startOAuthServer();
  const grpc = server.process.summary.grpc as string;
  const tenants = adminClient(Tenants, grpc, server.process.adminFile);
  await tenants.createTenant({ tenant: B, displayName: "Partner" });
  await tenants.createTenant({ tenant: C, displayName: "Stranger" });
  issuerB = `${server.base}/t/${B}`;
  store = Store.open({ url: server.database, poolSize: 1 });
  trusts = new TenantTrusts(store, () => Date.now());
  endpointA = await discover(server.issuer);
  endpointB = await discover(issuerB);
  // B's agents may ask their issuer for tokens meant for A (RFC 8707).
  agentB = await registerAgent(server.issue, {
    tenant: B,
    scope: "partner.act",
    resources: [server.issuer, OTHER_RESOURCE],
  });
  agentC = await registerAgent(server.issue, { tenant: C, scope: "partner.act", resources: [server.issuer] });
  // A's representative agent: keyed by a JWK Set no crossing agent holds, so the crossing token is
  // bound to the crossing agent's own DPoP key (no registered dpop_jkt to insist on).
  const { publicKey } = await generateKeyPair("ES256", { extractable: true });
  const { clientId } = await server.register(
    {
      kind: ClientKind.AGENT,
      owner: "demo-admin",
      clientName: "Partner agents",
      tokenEndpointAuthMethod: "private_key_jwt",
      jwks: { keys: [{ ...(await exportJWK(publicKey)), kid: randomUUID() }] },
      grantTypes: [TOKEN_EXCHANGE],
      scope: "orders.read orders.cancel",
      resources: [RESOURCE, OTHER_RESOURCE],
    },
    A,
  );
  representative = clientId;
  trustId = (await trusts.create(A, newTrust(), ADMIN)).id;
  const bundle = await buildBundle(policyDir({ "authz.rego": POLICY.replaceAll("ISSUER_B", issuerB) }));
  await adminClient(Authorize, grpc, server.process.adminFile).pushPolicy({
    tenant: A,
    bundle: bundle.bytes,
    activate: true,
  });
}, 120_000);

afterAll(async () => {
  await store?.close();
  await server?.stop();
});

describe("a crossing B → A", () => {
  it("gives B's agent an A token: A's representative client, B's identities in act, bound to the agent's key", async () => {
    const { claims } = await crossed(agentB);
    expect(claims.iss).toBe(server.issuer);
    expect(claims.client_id).toBe(representative);
    expect(claims.sub).toBe(representative);
    expect(claims.aud).toBe(RESOURCE);
    expect(claims.scope).toBe("orders.read");
    expect(claims.cnf).toEqual({ jkt: agentB.jkt });
    expect(claims.act).toEqual({
      sub: agentB.clientId,
      iss: issuerB,
      client_id: agentB.clientId,
      mandate_federation: { protocol: "tenant", trust: trustId, tenant: B },
    });
  });

  it("is recorded in both tenants' audit logs", async () => {
    const { claims } = await crossed(agentB);
    const inA = await crossingEntry(A, claims.jti as string);
    expect(inA).toMatchObject({ direction: "inbound", trust_id: trustId, foreign_tenant: B, foreign_issuer: issuerB });
    expect(inA.foreign_client_id).toBe(agentB.clientId);
    const inB = await crossingEntry(B, claims.jti as string);
    expect(inB).toMatchObject({
      direction: "outbound",
      trust_id: trustId,
      trusting_tenant: A,
      client_id: representative,
    });
  });

  it("is narrowed by A's policy, which sees the foreign tenant: orders.read allowed, orders.cancel denied", async () => {
    const { token } = await crossed(agentB);
    const authorize = createClient(
      Authorize,
      createGrpcTransport({
        baseUrl: `http://${server.process.summary.grpc}`,
        interceptors: [await server.caller("mandate:authorize", A)],
      }),
    );
    const ask = async (action: string) =>
      (
        await authorize.check({
          tenant: A,
          accessToken: token,
          dpop: await presentedProof(agentB, token, "POST", `${RESOURCE}/orders`),
          action,
          resource: { type: "order", id: "o-1", attributes: { audience: RESOURCE } },
        })
      ).decision;
    expect((await ask("orders.read"))?.allow).toBe(true);
    const denied = await ask("orders.cancel");
    expect(denied?.allow).toBe(false);
    expect(denied?.reasons.map((r) => r.message)).toContain(`crossings from ${B} may not do this`);
  });

  it("is narrowed by A's policy at issuance: a scope the policy denies is left out, none allowed is access_denied", async () => {
    // RFC 6749 §3.3: the trust allows both scopes; the policy lets the token carry orders.read only.
    const both = await cross(agentB, await foreignToken(agentB, endpointB), { scope: "orders.read orders.cancel" });
    expect(both.status).toBe(200);
    expect(both.body.scope).toBe("orders.read");
    expect(claimsOf(both.body.access_token as string).scope).toBe("orders.read");
    const cancel = await cross(agentB, await foreignToken(agentB, endpointB), { scope: "orders.cancel" });
    expect(cancel).toMatchObject({ status: 403, body: { error: "access_denied" } });
    expect(cancel.body.error_description).toContain(`crossings from ${B} may not do this`);
  });
});

describe("refusals", () => {
  it("refuses scopes and resources outside the trust", async () => {
    const token = await foreignToken(agentB, endpointB);
    expect(await cross(agentB, token, { scope: "orders.write" })).toMatchObject({
      status: 400,
      body: { error: "invalid_scope" },
    });
    const again = await foreignToken(agentB, endpointB);
    expect(await cross(agentB, again, { resource: OTHER_RESOURCE })).toMatchObject({
      status: 400,
      body: { error: "invalid_target" },
    });
  });

  it("refuses a tenant A has no trust in", async () => {
    const answer = await cross(agentC, await foreignToken(agentC, await discover(`${server.base}/t/${C}`)));
    expect(answer).toMatchObject({ status: 400, body: { error: "invalid_grant" } });
    expect(answer.body.error_description).toContain("no active trust");
  });

  it("refuses a token not meant for A (its aud names another resource)", async () => {
    const answer = await cross(agentB, await foreignToken(agentB, endpointB, OTHER_RESOURCE));
    expect(answer).toMatchObject({ status: 400, body: { error: "invalid_grant" } });
    expect(answer.body.error_description).toContain("audience");
  });

  it("refuses A's own token presented as a foreign one", async () => {
    const own = await registerAgent(server.issue, { tenant: A, scope: "orders.read", resources: [server.issuer] });
    const answer = await cross(own, await foreignToken(own, endpointA).catch(() => "x.y.z"));
    expect(answer.status).toBe(400);
  });

  it("refuses a B token that B revoked (RFC 7009), with B's revocation state", async () => {
    const token = await foreignToken(agentB, endpointB);
    const revoked = await oauth.revocationRequest(
      endpointB.as,
      { client_id: agentB.clientId },
      oauth.ClientSecretBasic(agentB.secret),
      token,
      insecure,
    );
    expect(revoked.status).toBe(200);
    const answer = await cross(agentB, token);
    expect(answer).toMatchObject({ status: 400, body: { error: "invalid_grant" } });
    expect(answer.body.error_description).toContain("revoked");
  });

  it("refuses a human of B when only B's agents are trusted", async () => {
    const app = await server.register(
      {
        grantTypes: ["authorization_code"],
        redirectUris: ["http://127.0.0.1/callback"],
        scope: "openid partner.act",
        resources: [server.issuer],
      },
      B,
    );
    const verifier = oauth.generateRandomCodeVerifier();
    const state = oauth.generateRandomState();
    const url = new URL(endpointB.as.authorization_endpoint as string);
    url.search = new URLSearchParams({
      response_type: "code",
      client_id: app.clientId,
      redirect_uri: "http://127.0.0.1/callback",
      scope: "openid partner.act",
      resource: server.issuer,
      state,
      code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
      code_challenge_method: "S256",
    }).toString();
    const callback = await new Browser().authorize(url.toString(), "http://127.0.0.1/callback");
    const keys = await oauth.generateKeyPair("ES256", { extractable: true });
    const { tokens } = await redeemCode(endpointB.as, app, keys, {
      callback: callback.toString(),
      state,
      verifier,
      redirectUri: "http://127.0.0.1/callback",
    });
    const human = { ...agentB, keys, dpop: oauth.DPoP({}, keys) };
    const answer = await cross(human, tokens.access_token);
    expect(answer).toMatchObject({ status: 400, body: { error: "invalid_grant" } });
    expect(answer.body.error_description).toContain("not its humans");
  });
});

describe("trust lifetime", () => {
  it("refuses once the trust expired", async () => {
    const other = await registerAgent(server.issue, { tenant: C, scope: "partner.act", resources: [server.issuer] });
    const brief = await trusts.create(A, newTrust({ foreignTenant: C, expiresAt: Date.now() + 1500 }), ADMIN);
    const endpointC = await discover(`${server.base}/t/${C}`);
    expect((await cross(other, await foreignToken(other, endpointC))).status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 1600));
    const answer = await cross(other, await foreignToken(other, endpointC));
    expect(answer).toMatchObject({ status: 400, body: { error: "invalid_grant" } });
    await trusts.revoke(A, brief.id, ADMIN);
  });

  it("revoking the trust stops every crossing at once: new exchanges and the tokens already issued", async () => {
    const issued = await crossed(agentB);
    expect((await introspect(A, issued.token)).active).toBe(true);
    const { revokedTokens } = await trusts.revoke(A, trustId, ADMIN);
    expect(revokedTokens).toBeGreaterThanOrEqual(1);
    // The revoking replica is another process here (the test's store): its NOTIFY reaches the server.
    let active = true;
    for (let attempt = 0; attempt < 10 && active; attempt++) {
      active = (await introspect(A, issued.token)).active === true;
      if (active) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(active).toBe(false);
    const answer = await cross(agentB, await foreignToken(agentB, endpointB));
    expect(answer).toMatchObject({ status: 400, body: { error: "invalid_grant" } });
    expect(answer.body.error_description).toContain("no active trust");
  });
});

describe("admin RPCs and `mandate tenant-trusts`", () => {
  const cli = (...args: string[]) =>
    runMandate(["tenant-trusts", ...args, "--address", server.process.summary.grpc as string], {
      MANDATE_ADMIN_FILE: server.process.adminFile,
    });
  const code = (call: Promise<unknown>) =>
    call.then(
      () => undefined,
      (error) => ConnectError.from(error).code,
    );
  const request = (fields: Record<string, unknown> = {}) => ({
    tenant: A,
    foreignTenant: B,
    clientId: representative,
    subjectKinds: ["agent"],
    scopes: ["orders.read"],
    resources: [RESOURCE],
    expireTime: timestampFromMs(Date.now() + 3600_000),
    ...fields,
  });

  it("refuses what cannot be a trust, with the field or resource named", async () => {
    expect(await code(server.issue.createTenantTrust(request({ expireTime: undefined })))).toBe(Code.InvalidArgument);
    expect(await code(server.issue.createTenantTrust(request({ subjectKinds: ["robot"] })))).toBe(Code.InvalidArgument);
    expect(await code(server.issue.createTenantTrust(request({ foreignTenant: "nowhere" })))).toBe(Code.NotFound);
    expect(await code(server.issue.createTenantTrust(request({ foreignTenant: A })))).toBe(Code.InvalidArgument);
    expect(await code(server.issue.createTenantTrust(request({ clientId: "nobody" })))).toBe(Code.NotFound);
    const app = await server.register({ grantTypes: ["client_credentials"] }, A);
    expect(await code(server.issue.createTenantTrust(request({ clientId: app.clientId })))).toBe(Code.InvalidArgument);
    expect(
      await code(server.issue.createTenantTrust(request({ expireTime: timestampFromMs(Date.now() - 1000) }))),
    ).toBe(Code.InvalidArgument);
    expect(await code(server.issue.createTenantTrust(request({ authorizationDetails: [{ actions: ["x"] }] })))).toBe(
      Code.InvalidArgument,
    );
    expect(await code(server.issue.revokeTenantTrust({ tenant: A, id: "ttr_nope" }))).toBe(Code.NotFound);
    // Another tenant's administrator cannot grant A's trust.
    const partnerAdmin = createClient(
      Issue,
      createGrpcTransport({
        baseUrl: `http://${server.process.summary.grpc}`,
        interceptors: [await server.caller("mandate:tenant-admin", B)],
      }),
    );
    expect(await code(partnerAdmin.createTenantTrust(request()))).toBe(Code.PermissionDenied);
  });

  it("grant, list and revoke from the CLI; the revocation kills the crossing tokens at once", {
    timeout: 180_000,
  }, async () => {
    const granted = await cli(
      "grant",
      "--tenant",
      A,
      "--foreign-tenant",
      B,
      "--client",
      representative,
      "--scope",
      "orders.read",
      "--resource",
      RESOURCE,
      "--authorization-details",
      JSON.stringify([{ type: "order_access", actions: ["read"] }]),
      "--ttl",
      "1h",
      "--json",
    );
    expect(granted.code, granted.stderr).toBe(0);
    const trust = JSON.parse(granted.stdout) as Record<string, unknown>;
    expect(trust).toMatchObject({ foreignTenant: B, clientId: representative, subjectKinds: ["agent"] });
    const listed = await cli("list", "--tenant", A, "--json");
    expect((JSON.parse(listed.stdout) as { id: string }[]).map((t) => t.id)).toContain(trust.id);
    const { token, claims } = await crossed(agentB);
    expect(claims.authorization_details).toEqual([{ type: "order_access", actions: ["read"] }]);
    expect((await introspect(A, token)).active).toBe(true);
    const revoked = await cli("revoke", trust.id as string, "--tenant", A, "--json");
    expect(revoked.code, revoked.stderr).toBe(0);
    expect((JSON.parse(revoked.stdout) as { revokedTokens: number }).revokedTokens).toBeGreaterThanOrEqual(1);
    // Revoked by the server's own process: its introspection refuses the token from the next call.
    expect((await introspect(A, token)).active).toBe(false);
    const help = await cli("--help");
    expect(help.stdout).toContain("grant");
  });
});
