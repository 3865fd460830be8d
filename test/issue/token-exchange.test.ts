// RFC 8693 token exchange of mandates against a running `mandate dev` (the last engine of the run:
// PostgreSQL under test:postgres): the token endpoint driven by oauth4webapi
// (genericTokenEndpointRequest, DPoP with nonce retry) and Issue.ExchangeToken over native gRPC.
// Subjects: a mandate id, a token exchanged from a mandate (re-exchange), the human's own token with
// mandate_id; sub-delegation with an actor token; the issued token's claims (sub, nested act,
// client_id, mandate_id, aud, scope, authorization_details, exp, cnf.jkt); a refusal per widened
// dimension and per check (wrong agent, wrong actor, expired and not-yet-valid mandates, depth,
// other tenant, revoked parent, the `tokens` limit, unsupported token types, DPoP) — invalid_request
// for every unacceptable subject, actor or mandate (RFC 8693 §2.2.2), over gRPC INVALID_ARGUMENT or
// FAILED_PRECONDITION with the condition; refresh tokens bound to the key and the mandate, refused
// once it is revoked (invalid_grant, RFC 6749 §5.2); the audit event with the actor chain.
import { randomUUID } from "node:crypto";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { calculateJwkThumbprint, exportJWK, SignJWT } from "jose";
import * as oauth from "oauth4webapi";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Audit, type AuditEvent } from "../../gen/mandate/v1/audit_pb.js";
import { ClientKind } from "../../gen/mandate/v1/clients_pb.js";
import { PartyKind } from "../../gen/mandate/v1/common_pb.js";
import { Issue, type Mandate, type MandateSchema, MandateState } from "../../gen/mandate/v1/issue_pb.js";
import { Tenants } from "../../gen/mandate/v1/tenants_pb.js";
import { adminClient } from "../helpers/admin.ts";
import { Browser, type OAuthServer, startOAuthServer } from "../helpers/oauth-server.ts";
import { rpcExchange as exchangeByRpc, rpcRefusal } from "../helpers/rpc-exchange.ts";

type MandateInit = Exclude<MessageInitShape<typeof MandateSchema>, Mandate>;

const insecure = { [oauth.allowInsecureRequests]: true };
const TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange";
const MANDATE_TYPE = "urn:mandate:params:oauth:token-type:mandate";
const ACCESS_TYPE = "urn:ietf:params:oauth:token-type:access_token";
const API = "https://api.example.com/";
const PAY = "https://pay.example.com/";
const DAY = 86_400_000;
const REDIRECT = "https://app.example.com/callback";
const PAYMENT = { type: "payment_initiation", max_amount: 100, currency: "EUR" };
const ORDERS = { type: "data_access", actions: ["read", "write"], locations: [`${API}orders/*`] };

interface Agent {
  clientId: string;
  secret: string;
  keys: CryptoKeyPair;
  jkt: string;
  dpop: () => oauth.DPoPHandle;
}

let server: OAuthServer;
let as: oauth.AuthorizationServer;
/** The human (the dev user alice, as the token endpoint names her). */
let alice: string;
let aliceToken: string;
let agentA: Agent;
let agentB: Agent;
let agentC: Agent;
/** An agent registered for refresh_token too. */
let agentR: Agent;
/** An agent not registered for token exchange. */
let plain: Agent;

async function newAgent(name: string, grantTypes: string[], tenant = "demo"): Promise<Agent> {
  const keys = await oauth.generateKeyPair("ES256", { extractable: true });
  const jkt = await calculateJwkThumbprint(await exportJWK(keys.publicKey), "sha256");
  const { clientId, clientSecret } = await server.register(
    {
      kind: ClientKind.AGENT,
      clientName: name,
      owner: "dev-alice",
      dpopJkt: jkt,
      scope: "orders.read orders.write payments.create",
      resources: [API, PAY],
      grantTypes,
    },
    tenant,
  );
  const agent: Agent = { clientId, secret: clientSecret, keys, jkt, dpop: () => oauth.DPoP({}, keys) };
  // One DPoP handle per agent, so the server's nonce is remembered across requests.
  const handle = agent.dpop();
  agent.dpop = () => handle;
  return agent;
}

/** A token-endpoint request of an agent, retried once with the server's DPoP nonce (RFC 9449 §8). */
async function post(
  agent: Agent,
  grantType: string,
  parameters: Record<string, string | string[]>,
  dpopOrNone: oauth.DPoPHandle | null = agent.dpop(),
): Promise<Response> {
  const dpop = dpopOrNone ?? undefined;
  const body = new URLSearchParams();
  for (const [name, value] of Object.entries(parameters)) {
    for (const v of Array.isArray(value) ? value : [value]) body.append(name, v);
  }
  const send = () =>
    oauth.genericTokenEndpointRequest(
      as,
      { client_id: agent.clientId },
      oauth.ClientSecretBasic(agent.secret),
      grantType,
      body,
      { ...insecure, DPoP: dpop },
    );
  let response = await send();
  if (dpop && response.status === 400 && (await response.clone().json()).error === "use_dpop_nonce") {
    response = await send();
  }
  return response;
}

function exchange(agent: Agent, parameters: Record<string, string | string[]>, dpop?: oauth.DPoPHandle | null) {
  return post(agent, TOKEN_EXCHANGE, parameters, dpop === undefined ? agent.dpop() : dpop);
}

/** A successful exchange's response, processed by oauth4webapi. */
async function exchanged(agent: Agent, parameters: Record<string, string | string[]>) {
  const response = await exchange(agent, parameters);
  expect(response.status, await response.clone().text()).toBe(200);
  const raw = (await response.clone().json()) as Record<string, unknown>;
  const tokens = await oauth.processGenericTokenEndpointResponse(as, { client_id: agent.clientId }, response);
  return { tokens, raw, claims: claimsOf(tokens.access_token) };
}

/** The error a refused request answers. */
async function refused(response: Response, status = 400): Promise<{ error: string; error_description: string }> {
  expect(response.status, await response.clone().text()).toBe(status);
  return (await response.json()) as { error: string; error_description: string };
}

function ofMandate(mandateId: string, extra: Record<string, string | string[]> = {}) {
  return { subject_token: mandateId, subject_token_type: MANDATE_TYPE, ...extra };
}

function claimsOf(jwt: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(jwt.split(".")[1] as string, "base64url").toString());
}

/** The agent's own client-credentials token (DPoP-bound to its key). */
async function ownToken(agent: Agent): Promise<string> {
  const response = await post(agent, "client_credentials", { scope: "orders.read" });
  expect(response.status, await response.clone().text()).toBe(200);
  return ((await response.json()) as { access_token: string }).access_token;
}

function mandateOf(agent: Agent, fields: Partial<MandateInit> = {}): MandateInit {
  return {
    principal: { id: alice, kind: PartyKind.HUMAN },
    agent: { id: agent.clientId, kind: PartyKind.AGENT },
    scopes: ["orders.read", "orders.write", "payments.create"],
    resources: [API, PAY],
    authorizationDetails: [PAYMENT, ORDERS],
    expireTime: timestampFromMs(Date.now() + 30 * DAY),
    maxTokenLifetime: durationFromMs(600_000),
    maxDelegationDepth: 2,
    mayAct: [agentB.clientId],
    ...fields,
  };
}

async function grant(agent: Agent, fields: Partial<MandateInit> = {}, tenant = "demo"): Promise<string> {
  const { mandate } = await server.issue.createMandate({ tenant, mandate: mandateOf(agent, fields) });
  return mandate?.id as string;
}

/** Logs alice in through the code flow of an ordinary application; her own access token. */
async function humanToken(): Promise<string> {
  const { clientId, clientSecret } = await server.register({
    redirectUris: [REDIRECT],
    grantTypes: ["authorization_code"],
    scope: "orders.read",
  });
  const client = { client_id: clientId };
  const verifier = oauth.generateRandomCodeVerifier();
  const url = new URL(as.authorization_endpoint as string);
  url.search = new URLSearchParams({
    client_id: clientId,
    redirect_uri: REDIRECT,
    response_type: "code",
    scope: "orders.read",
    code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
    code_challenge_method: "S256",
  }).toString();
  const callback = await new Browser().authorize(url.toString(), REDIRECT);
  const validated = oauth.validateAuthResponse(as, client, callback, oauth.expectNoState);
  const response = await oauth.authorizationCodeGrantRequest(
    as,
    client,
    oauth.ClientSecretBasic(clientSecret),
    validated,
    REDIRECT,
    verifier,
    insecure,
  );
  return (await oauth.processAuthorizationCodeResponse(as, client, response)).access_token;
}

beforeAll(async () => {
  server = await startOAuthServer();
  as = await oauth.processDiscoveryResponse(
    new URL(server.issuer),
    await oauth.discoveryRequest(new URL(server.issuer), { algorithm: "oauth2", ...insecure }),
  );
  aliceToken = await humanToken();
  alice = claimsOf(aliceToken).sub as string;
  agentA = await newAgent("Agent A", ["client_credentials", TOKEN_EXCHANGE]);
  agentB = await newAgent("Agent B", ["client_credentials", TOKEN_EXCHANGE]);
  agentC = await newAgent("Agent C", ["client_credentials", TOKEN_EXCHANGE]);
  agentR = await newAgent("Agent R", ["client_credentials", TOKEN_EXCHANGE, "refresh_token"]);
  plain = await newAgent("Plain agent", ["client_credentials"]);
  await adminClient(Tenants, server.process.summary.grpc as string, server.process.adminFile).createTenant({
    tenant: "acme",
    displayName: "Acme",
  });
}, 90_000);

afterAll(async () => {
  if (process.env.MANDATE_TEST_DEBUG) console.error(server?.process.stderr());
  await server?.stop();
});

describe("token exchange of a mandate at the token endpoint (oauth4webapi)", () => {
  it("is advertised in the metadata", () => {
    expect(as.grant_types_supported).toContain(TOKEN_EXCHANGE);
  });

  it("exchanges a mandate id for the human's token acted on by the agent: every claim from the mandate", async () => {
    const mandateId = await grant(agentA);
    const before = Math.floor(Date.now() / 1000);
    const { tokens, raw, claims } = await exchanged(agentA, ofMandate(mandateId));
    expect(raw).toMatchObject({
      issued_token_type: ACCESS_TYPE,
      token_type: "DPoP",
      scope: "orders.read orders.write payments.create",
      mandate_id: mandateId,
      authorization_details: [PAYMENT, ORDERS],
    });
    expect(tokens.token_type).toBe("dpop");
    expect(claims).toMatchObject({
      iss: server.issuer,
      sub: alice,
      act: { sub: agentA.clientId },
      client_id: agentA.clientId,
      mandate_id: mandateId,
      aud: [API, PAY],
      scope: "orders.read orders.write payments.create",
      authorization_details: [PAYMENT, ORDERS],
      cnf: { jkt: agentA.jkt },
    });
    // exp ≤ the agent's access-token lifetime (the deployment's 5 minutes) and the mandate's bounds.
    expect(claims.exp as number).toBeLessThanOrEqual(before + 300 + 1);
    expect(raw.refresh_token).toBeUndefined();
  });

  it("narrows scope, audience (resource and audience) and authorization details as requested", async () => {
    const mandateId = await grant(agentA);
    const narrower = { type: "payment_initiation", max_amount: 20, currency: "EUR" };
    const { claims, raw } = await exchanged(
      agentA,
      ofMandate(mandateId, {
        scope: "orders.read",
        audience: PAY,
        authorization_details: JSON.stringify([narrower]),
      }),
    );
    expect(claims).toMatchObject({ scope: "orders.read", aud: PAY, authorization_details: [narrower] });
    expect(raw.scope).toBe("orders.read");
    const byResource = await exchanged(agentA, ofMandate(mandateId, { resource: API, scope: "orders.write" }));
    expect(byResource.claims).toMatchObject({ aud: API, scope: "orders.write" });
  });

  it("keeps exp within the mandate's max_token_ttl and its end", async () => {
    const short = await grant(agentA, { maxTokenLifetime: durationFromMs(60_000) });
    expect((await exchanged(agentA, ofMandate(short))).tokens.expires_in).toBeLessThanOrEqual(60);
    const ending = await grant(agentA, { expireTime: timestampFromMs(Date.now() + 30_000) });
    expect((await exchanged(agentA, ofMandate(ending))).tokens.expires_in).toBeLessThanOrEqual(30);
  });

  it("refuses every widening with the error of its dimension, naming it", async () => {
    const mandateId = await grant(agentA, {
      scopes: ["orders.read"],
      resources: [API],
      authorizationDetails: [PAYMENT],
    });
    const cases: Array<[Record<string, string>, string, string]> = [
      [{ scope: "orders.read orders.write" }, "invalid_scope", "scopes"],
      [{ resource: PAY }, "invalid_target", "resources"],
      [{ audience: "https://elsewhere.example/" }, "invalid_target", "resources"],
      [
        { authorization_details: JSON.stringify([{ ...PAYMENT, max_amount: 1000 }]) },
        "invalid_authorization_details",
        "authorization_details",
      ],
      [
        { authorization_details: JSON.stringify([{ type: "account_information" }]) },
        "invalid_authorization_details",
        "authorization_details",
      ],
      [{ authorization_details: "{not json" }, "invalid_authorization_details", "not JSON"],
    ];
    for (const [extra, error, named] of cases) {
      const answer = await refused(await exchange(agentA, ofMandate(mandateId, extra)));
      expect(answer.error, JSON.stringify(extra)).toBe(error);
      expect(answer.error_description).toContain(named);
    }
  });

  it("re-exchanges a mandate's token for another audience and scope within the mandate", async () => {
    const mandateId = await grant(agentA);
    const first = await exchanged(agentA, ofMandate(mandateId, { resource: API, scope: "orders.read" }));
    const again = await exchanged(agentA, {
      subject_token: first.tokens.access_token,
      subject_token_type: ACCESS_TYPE,
      resource: PAY,
      scope: "payments.create",
    });
    expect(again.claims).toMatchObject({
      sub: alice,
      act: { sub: agentA.clientId },
      mandate_id: mandateId,
      aud: PAY,
      scope: "payments.create",
      cnf: { jkt: agentA.jkt },
    });
    // Only the agent it was issued to, with its key.
    const other = await refused(
      await exchange(agentB, { subject_token: first.tokens.access_token, subject_token_type: ACCESS_TYPE }),
    );
    expect(other).toMatchObject({ error: "invalid_request" });
    expect(other.error_description).toContain("issued to another client");
  });

  it("exchanges the human's own token with mandate_id, and only for the mandate's principal", async () => {
    const mandateId = await grant(agentA);
    const { claims } = await exchanged(agentA, {
      subject_token: aliceToken,
      subject_token_type: ACCESS_TYPE,
      mandate_id: mandateId,
      scope: "orders.read",
    });
    expect(claims).toMatchObject({ sub: alice, act: { sub: agentA.clientId }, mandate_id: mandateId });
    const unnamed = await refused(
      await exchange(agentA, { subject_token: aliceToken, subject_token_type: ACCESS_TYPE }),
    );
    expect(unnamed.error).toBe("invalid_request");
    expect(unnamed.error_description).toContain("mandate_id");
    const bobs = await grant(agentA, { principal: { id: "bob", kind: PartyKind.HUMAN } });
    const notHers = await refused(
      await exchange(agentA, { subject_token: aliceToken, subject_token_type: ACCESS_TYPE, mandate_id: bobs }),
    );
    expect(notHers.error).toBe("invalid_request");
    expect(notHers.error_description).toContain("not the principal");
  });

  it("refuses a mandate of another agent, of another tenant, unknown, and a token of another tenant", async () => {
    const mandateId = await grant(agentA);
    const wrongAgent = await refused(await exchange(agentB, ofMandate(mandateId)));
    expect(wrongAgent.error).toBe("invalid_request");
    expect(wrongAgent.error_description).toContain("granted to another agent");
    const unknown = await refused(await exchange(agentA, ofMandate("mdt_nothing")));
    expect(unknown).toMatchObject({
      error: "invalid_request",
      error_description: 'no mandate "mdt_nothing" in this tenant',
    });

    const acmeAgent = await newAgent("Acme agent", ["client_credentials", TOKEN_EXCHANGE], "acme");
    const { mandate } = await server.issue.createMandate({
      tenant: "acme",
      mandate: { ...mandateOf(acmeAgent), mayAct: [] },
    });
    const otherTenant = await refused(await exchange(agentA, ofMandate(mandate?.id as string)));
    expect(otherTenant.error).toBe("invalid_request");
    // A token of acme's issuer presented at demo's.
    const acmeResponse = await fetch(`${server.base}/t/acme/oauth2/token`, {
      method: "POST",
      headers: {
        "content-type": "application/x-www-form-urlencoded",
        authorization: `Basic ${Buffer.from(`${acmeAgent.clientId}:${acmeAgent.secret}`).toString("base64")}`,
        dpop: await new SignJWT({ htm: "POST", htu: `${server.base}/t/acme/oauth2/token`, jti: randomUUID() })
          .setProtectedHeader({ alg: "ES256", typ: "dpop+jwt", jwk: await exportJWK(acmeAgent.keys.publicKey) })
          .setIssuedAt()
          .sign(acmeAgent.keys.privateKey),
      },
      body: new URLSearchParams({ grant_type: TOKEN_EXCHANGE, ...ofMandate(mandate?.id as string) }),
    });
    let acmeToken: string;
    if (acmeResponse.status === 200) {
      acmeToken = ((await acmeResponse.json()) as { access_token: string }).access_token;
    } else {
      // The nonce round trip, by hand.
      const nonce = acmeResponse.headers.get("dpop-nonce") as string;
      const retry = await fetch(`${server.base}/t/acme/oauth2/token`, {
        method: "POST",
        headers: {
          "content-type": "application/x-www-form-urlencoded",
          authorization: `Basic ${Buffer.from(`${acmeAgent.clientId}:${acmeAgent.secret}`).toString("base64")}`,
          dpop: await new SignJWT({ htm: "POST", htu: `${server.base}/t/acme/oauth2/token`, jti: randomUUID(), nonce })
            .setProtectedHeader({ alg: "ES256", typ: "dpop+jwt", jwk: await exportJWK(acmeAgent.keys.publicKey) })
            .setIssuedAt()
            .sign(acmeAgent.keys.privateKey),
        },
        body: new URLSearchParams({ grant_type: TOKEN_EXCHANGE, ...ofMandate(mandate?.id as string) }),
      });
      expect(retry.status, await retry.clone().text()).toBe(200);
      acmeToken = ((await retry.json()) as { access_token: string }).access_token;
    }
    const foreign = await refused(
      await exchange(agentA, { subject_token: acmeToken, subject_token_type: ACCESS_TYPE, mandate_id: mandateId }),
    );
    expect(foreign).toMatchObject({
      error: "invalid_request",
      error_description: "the subject token was not issued by this tenant's issuer",
    });
  });

  it("refuses an expired, a not yet valid, a revoked mandate and one whose parent is revoked", async () => {
    const ending = await grant(agentA, { expireTime: timestampFromMs(Date.now() + 1500) });
    const later = await grant(agentA, { notBefore: timestampFromMs(Date.now() + 3_600_000) });
    const notYet = await refused(await exchange(agentA, ofMandate(later)));
    expect(notYet.error).toBe("invalid_request");
    expect(notYet.error_description).toContain("not valid before");

    const parent = await grant(agentA);
    const sub = await subDelegate(agentA, parent, agentB);
    await server.issue.revokeMandate({ tenant: "demo", mandateId: parent, reason: "test" });
    const revoked = await refused(await exchange(agentA, ofMandate(parent)));
    expect(revoked).toMatchObject({
      error: "invalid_request",
      error_description: `mandate ${parent} has been revoked`,
    });
    const revokedParent = await refused(await exchange(agentB, ofMandate(sub.mandateId)));
    expect(revokedParent.error).toBe("invalid_request");
    expect(revokedParent.error_description).toContain("revoked");

    await new Promise((resolve) => setTimeout(resolve, 1600));
    const expired = await refused(await exchange(agentA, ofMandate(ending)));
    expect(expired.error).toBe("invalid_request");
    expect(expired.error_description).toContain("expired");
  });

  it("revokes and refuses a mandate granted to end with the account once its principal's account is gone", async () => {
    // "ghost" is no dev user: the provider reports the account deleted (as after a deletion).
    const ending = await grant(agentA, {
      principal: { id: "ghost", kind: PartyKind.HUMAN },
      revocationPolicy: { revokeOnAccountEnd: true },
    });
    const kept = await grant(agentA, { principal: { id: "ghost", kind: PartyKind.HUMAN } });
    const refusal = await refused(await exchange(agentA, ofMandate(ending)));
    expect(refusal).toMatchObject({
      error: "invalid_request",
      error_description: `mandate ${ending} has been revoked: its principal's account was deleted (revoke_on_account_end)`,
    });
    const { mandate } = await server.issue.getMandate({ tenant: "demo", mandateId: ending });
    expect(mandate).toMatchObject({ state: MandateState.REVOKED, revokeReason: "the principal's account was deleted" });
    // Without the policy the mandate stays usable; an active principal's ending mandate too.
    expect((await exchanged(agentA, ofMandate(kept))).claims.sub).toBe("ghost");
    const alices = await grant(agentA, { revocationPolicy: { revokeOnAccountEnd: true } });
    expect((await exchanged(agentA, ofMandate(alices))).claims.sub).toBe(alice);
  });

  it("counts one `tokens` per issued token, atomically, and refuses past the limit", async () => {
    const mandateId = await grant(agentA, { usageLimits: [{ meter: "tokens", maximum: 3 }] });
    const results = await Promise.all([1, 2, 3, 4, 5].map(() => exchange(agentA, ofMandate(mandateId))));
    const statuses = results.map((r) => r.status).sort();
    expect(statuses).toEqual([200, 200, 200, 400, 400]);
    // Known used up once a count refused one: refused before anything is signed or counted.
    const answer = await refused(await exchange(agentA, ofMandate(mandateId)));
    expect(answer.error).toBe("invalid_request");
    expect(answer.error_description).toBe(`mandate ${mandateId} is exhausted: usage limit reached (3 tokens in all)`);
    const { mandate } = await server.issue.getMandate({ tenant: "demo", mandateId });
    expect(mandate?.usage.find((u) => u.meter === "tokens")?.used).toBe(3);
  });

  it("refuses unsupported token types naming them, and an agent not registered for the grant", async () => {
    const mandateId = await grant(agentA);
    // (saml2, jwt and id-jag subject tokens go to the federation gateway since issue 18: id_token does not.)
    const idToken = await refused(
      await exchange(agentA, { subject_token: "x", subject_token_type: "urn:ietf:params:oauth:token-type:id_token" }),
    );
    expect(idToken.error).toBe("invalid_request");
    expect(idToken.error_description).toContain('subject_token_type "urn:ietf:params:oauth:token-type:id_token"');
    const actorType = await refused(
      await exchange(
        agentA,
        ofMandate(mandateId, { actor_token: "x", actor_token_type: "urn:ietf:params:oauth:token-type:id_token" }),
      ),
    );
    expect(actorType.error).toBe("invalid_request");
    expect(actorType.error_description).toContain('actor_token_type "urn:ietf:params:oauth:token-type:id_token"');
    const requested = await refused(
      await exchange(
        agentA,
        ofMandate(mandateId, { requested_token_type: "urn:ietf:params:oauth:token-type:refresh_token" }),
      ),
    );
    expect(requested.error).toBe("invalid_request");
    expect(requested.error_description).toContain("requested_token_type");
    const noActorType = await refused(await exchange(agentA, ofMandate(mandateId, { actor_token: "x" })));
    expect(noActorType.error).toBe("invalid_request");
    const unregistered = await refused(await exchange(plain, ofMandate(mandateId)));
    expect(unregistered.error).toBe("unauthorized_client");
  });

  it("serves an agent registered by Dynamic Client Registration, token exchange among its grants", async () => {
    // RFC 7591 §3: agents register with an initial access token (a tenant administrator's API token).
    const { clientId, clientSecret } = await server.register({
      grantTypes: ["client_credentials"],
      scope: "mandate:tenant-admin",
      resources: [server.base],
    });
    const adminResponse = await fetch(`${server.issuer}/oauth2/token`, {
      method: "POST",
      headers: {
        "content-type": "application/x-www-form-urlencoded",
        authorization: `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString("base64")}`,
      },
      body: new URLSearchParams({
        grant_type: "client_credentials",
        scope: "mandate:tenant-admin",
        resource: server.base,
      }),
    });
    const { access_token: initialToken } = (await adminResponse.json()) as { access_token: string };
    const registered = await fetch(`${server.issuer}/oauth2/register`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${initialToken}` },
      body: JSON.stringify({
        kind: "agent",
        client_name: "Registered agent",
        owner: "dev-alice",
        dpop_jkt: agentC.jkt,
        scope: "orders.read",
        grant_types: [TOKEN_EXCHANGE, "refresh_token"],
      }),
    });
    expect(registered.status, await registered.clone().text()).toBe(201);
    const metadata = (await registered.json()) as { client_id: string; client_secret: string; grant_types: string[] };
    expect(metadata.grant_types).toEqual([TOKEN_EXCHANGE, "refresh_token"]);
    const dcrAgent: Agent = { ...agentC, clientId: metadata.client_id, secret: metadata.client_secret };
    const mandateId = await grant(dcrAgent, { scopes: ["orders.read"], resources: [], mayAct: [] });
    const { claims, raw } = await exchanged(dcrAgent, ofMandate(mandateId));
    expect(claims).toMatchObject({ sub: alice, act: { sub: dcrAgent.clientId }, scope: "orders.read" });
    expect(raw.refresh_token).toEqual(expect.any(String));
  });

  it("refuses a key-bound agent without a DPoP proof by its key", async () => {
    const mandateId = await grant(agentA);
    const bare = await refused(await exchange(agentA, ofMandate(mandateId), null));
    expect(bare.error).toBe("invalid_dpop_proof");
    expect(bare.error_description).toContain(`dpop_jkt ${agentA.jkt}`);
    const wrongKey = await refused(await exchange(agentA, ofMandate(mandateId), agentB.dpop()));
    expect(wrongKey.error).toBe("invalid_dpop_proof");
  });

  it("records one token.exchanged.v1 per exchange with the whole actor chain, found by mandate id", async () => {
    const parent = await grant(agentA);
    const sub = await subDelegate(agentA, parent, agentB);
    const audit = createClient(
      Audit,
      createGrpcTransport({
        baseUrl: `http://${server.process.summary.grpc as string}`,
        interceptors: [await server.caller("mandate:audit.read")],
      }),
    );
    let events: Array<AuditEvent | undefined> = [];
    for (let i = 0; i < 100 && events.length === 0; i++) {
      const { entries } = await audit.query({ tenant: "demo", mandateId: sub.mandateId });
      events = entries.map((e) => e.event).filter((e) => e?.type === "token.exchanged.v1");
      if (events.length === 0) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(events).toHaveLength(1);
    const event = events[0];
    expect(event?.mandateId).toBe(sub.mandateId);
    expect(event?.details).toMatchObject({
      mandate_id: sub.mandateId,
      mandate_chain: [parent, sub.mandateId],
      actors: [agentA.clientId, agentB.clientId],
      sub_mandate_granted: true,
      jti: sub.claims.jti,
      cnf_jkt: agentB.jkt,
    });
    // The human is a party (a salted reference), never in the details.
    expect(event?.subject?.id).toBeTruthy();
    expect(JSON.stringify(event?.details)).not.toContain(alice);
    expect(event?.actors.map((a) => a.id)).toEqual([agentA.clientId, agentB.clientId]);
  });
});

/** Agent `from` sub-delegates its mandate's token to `to` (the actor token: `to`'s own token). */
async function subDelegate(from: Agent, mandateId: string, to: Agent, extra: Record<string, string> = {}) {
  const mine = await exchanged(from, ofMandate(mandateId));
  const actor = await ownToken(to);
  const { raw, claims, tokens } = await exchanged(from, {
    subject_token: mine.tokens.access_token,
    subject_token_type: ACCESS_TYPE,
    actor_token: actor,
    actor_token_type: ACCESS_TYPE,
    ...extra,
  });
  return { mandateId: raw.mandate_id as string, claims, tokens, subjectToken: mine.tokens.access_token, actor };
}

describe("sub-delegation (an actor token)", () => {
  it("grants the sub-agent a sub-mandate and a token acting for the human through both agents", async () => {
    const parent = await grant(agentA, { usageLimits: [{ meter: "tokens", maximum: 10 }] });
    const sub = await subDelegate(agentA, parent, agentB, { scope: "orders.read", resource: API });
    expect(sub.mandateId).toMatch(/^mdt_/);
    expect(sub.mandateId).not.toBe(parent);
    expect(sub.tokens.token_type).toBe("dpop");
    expect(sub.claims).toMatchObject({
      sub: alice,
      act: { sub: agentB.clientId, act: { sub: agentA.clientId } },
      client_id: agentB.clientId,
      mandate_id: sub.mandateId,
      aud: API,
      scope: "orders.read",
      cnf: { jkt: agentB.jkt },
    });
    const { mandate } = await server.issue.getMandate({ tenant: "demo", mandateId: sub.mandateId });
    expect(mandate).toMatchObject({
      parentMandateId: parent,
      agent: { id: agentB.clientId },
      principal: { id: alice },
      scopes: ["orders.read"],
      resources: [API],
      maxDelegationDepth: 1,
    });
    // The sub-agent exchanges its sub-mandate itself; the chain stays in act. It counts against the parent.
    const own = await exchanged(agentB, ofMandate(sub.mandateId));
    expect(own.claims).toMatchObject({ act: { sub: agentB.clientId, act: { sub: agentA.clientId } } });
    const { mandate: after } = await server.issue.getMandate({ tenant: "demo", mandateId: parent });
    expect(after?.usage.find((u) => u.meter === "tokens")?.used).toBe(3);
  });

  it("refuses an actor its may_act does not name, exhausted depth, widening and a token that is not the actor's own", async () => {
    const parent = await grant(agentA);
    const notNamed = await subDelegateRefused(agentA, parent, agentC);
    expect(notNamed.error).toBe("invalid_request");
    expect(notNamed.error_description).toContain("may_act");

    const flat = await grant(agentA, { maxDelegationDepth: 0 });
    const depth = await subDelegateRefused(agentA, flat, agentB);
    expect(depth.error).toBe("invalid_request");
    expect(depth.error_description).toContain("max_delegation_depth");

    const narrow = await grant(agentA, { scopes: ["orders.read"] });
    const wider = await subDelegateRefused(agentA, narrow, agentB, { scope: "orders.write" });
    expect(wider.error).toBe("invalid_scope");
    expect(wider.error_description).toContain("scopes");

    // Depth 1 → B's sub-mandate has depth 0: B cannot sub-delegate further.
    const once = await grant(agentA, { maxDelegationDepth: 1, mayAct: [] });
    const sub = await subDelegate(agentA, once, agentB);
    const again = await refused(
      await exchange(agentB, {
        subject_token: sub.tokens.access_token,
        subject_token_type: ACCESS_TYPE,
        actor_token: await ownToken(agentC),
        actor_token_type: ACCESS_TYPE,
      }),
    );
    expect(again.error).toBe("invalid_request");
    expect(again.error_description).toContain("max_delegation_depth");

    // A mandate's token as actor token (not the sub-agent's own): refused.
    const mine = await exchanged(agentA, ofMandate(parent));
    const notOwn = await refused(
      await exchange(agentA, {
        subject_token: mine.tokens.access_token,
        subject_token_type: ACCESS_TYPE,
        actor_token: sub.tokens.access_token,
        actor_token_type: ACCESS_TYPE,
      }),
    );
    expect(notOwn.error).toBe("invalid_request");
    expect(notOwn.error_description).toContain("actor token");
  });
});

async function subDelegateRefused(from: Agent, mandateId: string, to: Agent, extra: Record<string, string> = {}) {
  const mine = await exchanged(from, ofMandate(mandateId));
  return refused(
    await exchange(from, {
      subject_token: mine.tokens.access_token,
      subject_token_type: ACCESS_TYPE,
      actor_token: await ownToken(to),
      actor_token_type: ACCESS_TYPE,
      ...extra,
    }),
  );
}

describe("refresh tokens of an agent's exchange", () => {
  it("issues one bound to the DPoP key and the mandate; refreshing keeps sub, act, mandate_id, cnf", async () => {
    const mandateId = await grant(agentR, { usageLimits: [{ meter: "tokens", maximum: 5 }] });
    const { raw, claims } = await exchanged(agentR, ofMandate(mandateId, { scope: "orders.read" }));
    expect(raw.refresh_token).toEqual(expect.any(String));
    const refreshed = await post(agentR, "refresh_token", { refresh_token: raw.refresh_token as string });
    expect(refreshed.status, await refreshed.clone().text()).toBe(200);
    const body = (await refreshed.json()) as { access_token: string; refresh_token: string };
    expect(claimsOf(body.access_token)).toMatchObject({
      sub: alice,
      act: { sub: agentR.clientId },
      client_id: agentR.clientId,
      mandate_id: mandateId,
      scope: "orders.read",
      aud: claims.aud,
      authorization_details: [PAYMENT, ORDERS],
      cnf: { jkt: agentR.jkt },
    });
    // Bound to the key: another key's proof is refused.
    const otherKey = await refused(
      await post(agentR, "refresh_token", { refresh_token: body.refresh_token }, agentB.dpop()),
    );
    expect(otherKey.error).toBe("invalid_dpop_proof");
    // Refreshing counts too.
    const { mandate } = await server.issue.getMandate({ tenant: "demo", mandateId });
    expect(mandate?.usage.find((u) => u.meter === "tokens")?.used).toBe(2);
  });

  it("refuses the refresh once the mandate is revoked, or its tokens are used up", async () => {
    const mandateId = await grant(agentR);
    const { raw } = await exchanged(agentR, ofMandate(mandateId));
    await server.issue.revokeMandate({ tenant: "demo", mandateId, reason: "test" });
    const answer = await refused(await post(agentR, "refresh_token", { refresh_token: raw.refresh_token as string }));
    expect(answer.error).toBe("invalid_grant");
    expect(answer.error_description).toContain("revoked");

    const once = await grant(agentR, { usageLimits: [{ meter: "tokens", maximum: 1 }] });
    const first = await exchanged(agentR, ofMandate(once));
    const exhausted = await refused(
      await post(agentR, "refresh_token", { refresh_token: first.raw.refresh_token as string }),
    );
    expect(exhausted.error).toBe("invalid_grant");
    expect(exhausted.error_description).toContain("usage limit reached");
  });

  it("issues none without DPoP binding or to agents not registered for refresh_token", async () => {
    const mandateId = await grant(agentA);
    expect((await exchanged(agentA, ofMandate(mandateId))).raw.refresh_token).toBeUndefined();
  });
});

describe("Issue.ExchangeToken over gRPC", () => {
  const grpcIssue = () =>
    createClient(Issue, createGrpcTransport({ baseUrl: `http://${server.process.summary.grpc as string}` }));

  const target = () => ({ grpc: server.process.summary.grpc as string, issuer: server.issuer, tenant: "demo" });
  const rpcExchange = (agent: Agent, fields: Record<string, unknown>, bind = true) =>
    exchangeByRpc(target(), agent, fields, bind);

  it("exchanges a mandate with the same claims, bound to the key of the proof in binding.dpop", async () => {
    const mandateId = await grant(agentA);
    const response = await rpcExchange(agentA, {
      subjectToken: mandateId,
      subjectTokenType: MANDATE_TYPE,
      scopes: ["orders.read"],
      resources: [API],
      authorizationDetails: [{ type: "payment_initiation", max_amount: 5, currency: "EUR" }],
    });
    expect(response.mandateId).toBe(mandateId);
    expect(response.tokens).toMatchObject({ tokenType: "DPoP", issuedTokenType: ACCESS_TYPE, scopes: ["orders.read"] });
    expect(response.authorizationDetails).toEqual([{ type: "payment_initiation", max_amount: 5, currency: "EUR" }]);
    expect(claimsOf(response.tokens?.accessToken as string)).toMatchObject({
      sub: alice,
      act: { sub: agentA.clientId },
      mandate_id: mandateId,
      aud: API,
      cnf: { jkt: agentA.jkt },
    });
  });

  it("sub-delegates over gRPC too, answering the new mandate id", async () => {
    const parent = await grant(agentA);
    const mine = await rpcExchange(agentA, { subjectToken: parent, subjectTokenType: MANDATE_TYPE });
    const response = await rpcExchange(agentA, {
      subjectToken: mine.tokens?.accessToken,
      subjectTokenType: ACCESS_TYPE,
      actorToken: await ownToken(agentB),
      actorTokenType: ACCESS_TYPE,
    });
    expect(response.mandateId).not.toBe(parent);
    expect(claimsOf(response.tokens?.accessToken as string)).toMatchObject({
      act: { sub: agentB.clientId, act: { sub: agentA.clientId } },
      client_id: agentB.clientId,
      mandate_id: response.mandateId,
      cnf: { jkt: agentB.jkt },
    });
  });

  it("answers refusals as RPC statuses carrying the OAuth error", async () => {
    const mandateId = await grant(agentA, { scopes: ["orders.read"] });
    const wider = await rpcRefusal(
      rpcExchange(agentA, { subjectToken: mandateId, subjectTokenType: MANDATE_TYPE, scopes: ["orders.write"] }),
    );
    expect(wider).toMatchObject({ code: Code.InvalidArgument, reason: "INVALID_SCOPE" });
    expect(wider.message).toContain("scopes");
    const unbound = await rpcRefusal(
      rpcExchange(agentA, { subjectToken: mandateId, subjectTokenType: MANDATE_TYPE }, false),
    );
    expect(unbound).toMatchObject({ code: Code.Unauthenticated, reason: "INVALID_DPOP_PROOF" });
    const wrongAgent = await rpcRefusal(
      rpcExchange(agentB, { subjectToken: mandateId, subjectTokenType: MANDATE_TYPE }),
    );
    // RFC 8693 §2.2.2: invalid_request; the mandate's state or the policy refuses it: FAILED_PRECONDITION.
    expect(wrongAgent).toMatchObject({
      code: Code.FailedPrecondition,
      reason: "INVALID_REQUEST",
      metadata: { error: "invalid_request", condition: "other_agent", subject: `mandate:${mandateId}` },
      precondition: { type: "other_agent", subject: `mandate:${mandateId}` },
    });
    await server.issue.revokeMandate({ tenant: "demo", mandateId, reason: "test" });
    const revoked = await rpcRefusal(rpcExchange(agentA, { subjectToken: mandateId, subjectTokenType: MANDATE_TYPE }));
    expect(revoked).toMatchObject({
      code: Code.FailedPrecondition,
      reason: "INVALID_REQUEST",
      message: `mandate ${mandateId} has been revoked`,
      metadata: { error: "invalid_request", condition: "revoked", subject: `mandate:${mandateId}` },
      precondition: { type: "revoked", subject: `mandate:${mandateId}` },
    });
    // A malformed request, or a token that is none of this issuer's: INVALID_ARGUMENT, no precondition.
    const malformed = await rpcRefusal(
      rpcExchange(agentA, { subjectToken: mandateId, subjectTokenType: "urn:example:unknown" }),
    );
    expect(malformed).toMatchObject({ code: Code.InvalidArgument, reason: "INVALID_REQUEST", precondition: undefined });
    const garbled = await rpcRefusal(
      rpcExchange(agentA, { subjectToken: "not.a.token", subjectTokenType: ACCESS_TYPE, mandateId }),
    );
    expect(garbled).toMatchObject({
      code: Code.InvalidArgument,
      reason: "INVALID_REQUEST",
      metadata: { condition: "invalid_token", subject: "subject_token" },
    });
    const badSecret = await rpcRefusal(
      grpcIssue().exchangeToken({
        tenant: "demo",
        client: { clientId: agentA.clientId, method: "client_secret_basic", clientSecret: "wrong" },
        subjectToken: mandateId,
        subjectTokenType: MANDATE_TYPE,
      }),
    );
    expect(badSecret.code).toBe(Code.Unauthenticated);
    const unregistered = await rpcRefusal(
      rpcExchange(plain, { subjectToken: mandateId, subjectTokenType: MANDATE_TYPE }),
    );
    expect(unregistered).toMatchObject({ code: Code.PermissionDenied, reason: "UNAUTHORIZED_CLIENT" });
  });
});
