// The agent federation gateway (issue 18 item 2) against a running `mandate dev` over real HTTP: an
// external issuer (node:https, a certificate made by openssl, trusted by the Mandate process through
// NODE_EXTRA_CA_CERTS) publishes OpenID discovery and a JWK Set of keys generated here, and signs
// JWTs and ID-JAGs with jose. Agents are real clients; oauth4webapi sends the grants with DPoP.
// Every check has its refusal: unknown issuer, replayed jti, expired, a key the issuer withdrew,
// wrong aud, alg none and HS256 keyed with the public key, revoked trust, unmapped subject, a client
// that is not an agent, scope/resource outside the trust, no sender constraint, another client.
import { randomUUID } from "node:crypto";
import { createServer, type Server } from "node:https";
import { exportJWK, generateKeyPair, type JWK, type JWTPayload, SignJWT } from "jose";
import * as oauth from "oauth4webapi";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTrust, type NewFederationTrust, revokeTrust } from "../../services/issue/federation/gateway/trusts.ts";
import { Store } from "../../services/shared/store/store.ts";
import {
  type Agent,
  claimsOf,
  discover,
  registerAgent,
  TOKEN_EXCHANGE,
  type TokenEndpoint,
} from "../helpers/agents.ts";
import { auditDetails } from "../helpers/audit-log.ts";
import { type OAuthServer, registerCertificateAgent, startOAuthServer } from "../helpers/oauth-server.ts";
import {
  type AssertionOptions,
  assertionXml,
  type SamlTestIdp,
  samlTestIdp,
  signAssertion,
} from "../helpers/saml-idp.ts";
import { listen, selfSignedCertificate } from "../helpers/tls.ts";

const JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt";
const ID_JAG_TYPE = "urn:ietf:params:oauth:token-type:id-jag";
const RESOURCE = "https://orders.example";
const OTHER_RESOURCE = "https://billing.example";
const ADMIN = { role: "test administrator" };
const insecure = { [oauth.allowInsecureRequests]: true };

let server: OAuthServer;
let endpoint: TokenEndpoint;
let store: Store;
let upstream: Server;
/** The external issuer (discovery at its root) and a second one whose keys were rotated. */
let issuer: string;
let rotatedIssuer: string;
let idpIssuer: string;
let signingKey: CryptoKey;
let publicJwk: JWK;
let kid: string;
let rotatedKey: JWK;
let agent: Agent;
let otherAgent: Agent;
let application: { clientId: string; clientSecret: string };
/** An agent with no registered DPoP key (it authenticates with certificates of the tenant's CA). */
let keylessAgent: string;
let jwtTrust: string;
let idJagTrust: string;

async function trust(fields: Partial<NewFederationTrust> & Pick<NewFederationTrust, "kind" | "issuer">) {
  return createTrust(
    store,
    "demo",
    {
      verification: { discovery: true },
      mapping: { claim: "sub", clients: {} },
      allowedScopes: ["orders:read", "orders:write"],
      allowedResources: [RESOURCE],
      ...fields,
    },
    Date.now(),
    ADMIN,
  );
}

async function externalJwt(
  changes: {
    claims?: JWTPayload;
    header?: Record<string, unknown>;
    key?: CryptoKey | Uint8Array;
    lifetimeS?: number;
  } = {},
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const claims: JWTPayload = {
    iss: issuer,
    sub: "svc-orders@partner",
    aud: server.issuer,
    exp: now + (changes.lifetimeS ?? 300),
    iat: now,
    jti: randomUUID(),
    ...changes.claims,
  };
  return new SignJWT(claims)
    .setProtectedHeader({ alg: "ES256", kid, ...changes.header })
    .sign(changes.key ?? signingKey);
}

/** An ID-JAG exactly as draft-ietf-oauth-identity-assertion-authz-grant §3 shapes it. */
async function idJag(changes: { claims?: JWTPayload; header?: Record<string, unknown> } = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({
    iss: idpIssuer,
    sub: "00u1alice",
    aud: server.issuer,
    client_id: agent.clientId,
    jti: randomUUID(),
    exp: now + 300,
    iat: now,
    resource: RESOURCE,
    scope: "orders:read",
    ...changes.claims,
  })
    .setProtectedHeader({ alg: "ES256", kid, typ: "oauth-id-jag+jwt", ...changes.header })
    .sign(signingKey);
}

/** A token request without client authentication and without DPoP (refusals happen before either matters). */
async function post(body: Record<string, string | string[]>, headers: Record<string, string> = {}) {
  const form = new URLSearchParams();
  for (const [name, value] of Object.entries(body)) for (const v of [value].flat()) form.append(name, v);
  const response = await fetch(`${server.issuer}/oauth2/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", ...headers },
    body: form,
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

async function refused(assertion: string, extra: Record<string, string | string[]> = {}) {
  return post({ grant_type: JWT_BEARER, assertion, ...extra });
}

/** The grant as an agent sends it with oauth4webapi: DPoP by its registered key, nonce retried. */
async function federated(
  who: Agent,
  grantType: string,
  parameters: Record<string, string>,
  auth: oauth.ClientAuth = oauth.None(),
): Promise<{ response: oauth.TokenEndpointResponse; claims: Record<string, unknown> }> {
  const send = () =>
    oauth.genericTokenEndpointRequest(
      endpoint.as,
      { client_id: who.clientId },
      auth,
      grantType,
      new URLSearchParams(parameters),
      { ...insecure, DPoP: who.dpop },
    );
  const process = async () =>
    oauth.processGenericTokenEndpointResponse(endpoint.as, { client_id: who.clientId }, await send());
  const response = await process().catch((error) => {
    if (!oauth.isDPoPNonceError(error)) throw error;
    return process();
  });
  return { response, claims: claimsOf(response.access_token) };
}

function auditEntry(jti: string): Promise<Record<string, unknown>> {
  return auditDetails(server.database, "token.federated.v1", jti);
}

beforeAll(async () => {
  const keys = await generateKeyPair("ES256", { extractable: true });
  signingKey = keys.privateKey;
  kid = randomUUID();
  publicJwk = { ...(await exportJWK(keys.publicKey)), kid, alg: "ES256", use: "sig" };
  const replacement = await generateKeyPair("ES256", { extractable: true });
  rotatedKey = { ...(await exportJWK(replacement.publicKey)), kid: randomUUID(), alg: "ES256", use: "sig" };
  const tls = selfSignedCertificate();
  upstream = createServer({ key: tls.key, cert: tls.cert }, (req, res) => {
    const rotated = req.url?.startsWith("/rotated") === true;
    const idp = req.url?.startsWith("/idp") === true;
    const self = rotated ? rotatedIssuer : idp ? idpIssuer : issuer;
    const path = (req.url ?? "").replace(/^\/(rotated|idp)/, "");
    if (path === "/.well-known/openid-configuration") {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ issuer: self, jwks_uri: `${self}/jwks` }));
    } else if (path === "/jwks") {
      res.writeHead(200, { "content-type": "application/jwk-set+json" });
      // The rotated issuer withdrew the key tokens are signed with and publishes only its replacement.
      res.end(JSON.stringify({ keys: [rotated ? rotatedKey : publicJwk] }));
    } else {
      res.writeHead(404).end();
    }
  });
  const port = await listen(upstream);
  issuer = `https://127.0.0.1:${port}`;
  rotatedIssuer = `${issuer}/rotated`;
  idpIssuer = `${issuer}/idp`;
  server = await startOAuthServer({
    MANDATE_OAUTH_ALLOW_PRIVATE_METADATA_HOSTS: "true",
    NODE_EXTRA_CA_CERTS: tls.certFile,
  });
  store = Store.open({ url: server.database, poolSize: 1 });
  endpoint = await discover(server.issuer);
  agent = await registerAgent(server.issue, { scope: "orders:read orders:write", resources: [RESOURCE] });
  otherAgent = await registerAgent(server.issue, { scope: "orders:read", resources: [RESOURCE] });
  application = await server.register({ grantTypes: ["client_credentials"], scope: "orders:read" });
  keylessAgent = await registerCertificateAgent(server);
  jwtTrust = (
    await trust({
      kind: "jwt",
      issuer,
      mapping: {
        claim: "sub",
        clients: {
          "svc-orders@partner": agent.clientId,
          "svc-app@partner": application.clientId,
          "svc-keyless@partner": keylessAgent,
        },
      },
    })
  ).id;
  await trust({ kind: "jwt", issuer: rotatedIssuer, mapping: { client: agent.clientId } });
  idJagTrust = (await trust({ kind: "id_jag", issuer: idpIssuer, mapping: { clients: {} } })).id;
}, 120_000);

afterAll(async () => {
  await store?.close();
  await server?.stop();
  upstream?.close();
});

describe("JWT from a trusted external issuer (RFC 7523 jwt-bearer)", () => {
  it("issues a DPoP-bound token for the mapped agent whose act names the external identity, audited", async () => {
    const { response, claims } = await federated(agent, JWT_BEARER, {
      assertion: await externalJwt(),
      scope: "orders:read",
      resource: RESOURCE,
    });
    expect(response.token_type.toLowerCase()).toBe("dpop");
    expect(response.expires_in).toBeLessThanOrEqual(300);
    expect(claims).toMatchObject({
      iss: server.issuer,
      sub: agent.clientId,
      client_id: agent.clientId,
      aud: RESOURCE,
      scope: "orders:read",
      cnf: { jkt: agent.jkt },
      act: { sub: "svc-orders@partner", iss: issuer, mandate_federation: { protocol: "jwt", trust: jwtTrust } },
    });
    const entry = await auditEntry(claims.jti as string);
    expect(entry).toMatchObject({
      grant_type: JWT_BEARER,
      protocol: "jwt",
      issuer,
      external_subject: "svc-orders@partner",
      trust_id: jwtTrust,
      client_id: agent.clientId,
      scope: ["orders:read"],
      aud: [RESOURCE],
      cnf_jkt: agent.jkt,
    });
  });

  it("with nothing requested grants the trust's allowed scopes and resources", async () => {
    const { claims } = await federated(agent, JWT_BEARER, { assertion: await externalJwt() });
    expect(claims.scope).toBe("orders:read orders:write");
    expect(claims.aud).toBe(RESOURCE);
  });

  it("accepts the JWT as an RFC 8693 subject token, the agent authenticating, and keeps an act it carried", async () => {
    const inner = { sub: "user-42", iss: "https://upstream.example" };
    const { response, claims } = await federated(
      agent,
      TOKEN_EXCHANGE,
      {
        subject_token: await externalJwt({ claims: { act: inner } }),
        subject_token_type: JWT_TYPE,
        audience: RESOURCE,
      },
      oauth.ClientSecretBasic(agent.secret),
    );
    expect(response.issued_token_type).toBe("urn:ietf:params:oauth:token-type:access_token");
    expect(claims.act).toEqual({
      sub: "svc-orders@partner",
      iss: issuer,
      mandate_federation: { protocol: "jwt", trust: jwtTrust },
      act: inner,
    });
  });

  it("refuses a client that authenticates as another agent than the one the JWT maps to", async () => {
    const basic = `Basic ${Buffer.from(`${otherAgent.clientId}:${otherAgent.secret}`).toString("base64")}`;
    const answer = await post({ grant_type: JWT_BEARER, assertion: await externalJwt() }, { authorization: basic });
    expect(answer).toMatchObject({ status: 400, body: { error: "invalid_grant" } });
    expect(answer.body.error_description).toMatch(/another client/);
    const named = await refused(await externalJwt(), { client_id: otherAgent.clientId });
    expect(named).toMatchObject({ status: 400, body: { error: "invalid_grant" } });
  });

  it("refuses an unknown issuer", async () => {
    const answer = await refused(await externalJwt({ claims: { iss: "https://stranger.example" } }));
    expect(answer).toMatchObject({ status: 400, body: { error: "invalid_grant" } });
    expect(answer.body.error_description).toMatch(/no trust/);
  });

  it("refuses a replayed jti", async () => {
    const jwt = await externalJwt();
    await federated(agent, JWT_BEARER, { assertion: jwt });
    const answer = await refused(jwt);
    expect(answer).toMatchObject({ status: 400, body: { error: "invalid_grant" } });
    expect(answer.body.error_description).toMatch(/jti replay/);
  });

  it("refuses an expired JWT, one without exp, and one living longer than the trust accepts", async () => {
    const expired = await refused(await externalJwt({ claims: { exp: Math.floor(Date.now() / 1000) - 120 } }));
    expect(expired).toMatchObject({ status: 400, body: { error: "invalid_grant" } });
    expect(expired.body.error_description).toMatch(/expired/);
    const noExp = await refused(await externalJwt({ claims: { exp: undefined } }));
    expect(noExp).toMatchObject({ status: 400, body: { error: "invalid_grant" } });
    const long = await refused(await externalJwt({ lifetimeS: 86_400 }));
    expect(long).toMatchObject({ status: 400, body: { error: "invalid_grant" } });
    expect(long.body.error_description).toMatch(/longer/);
  });

  it("refuses a JWT signed by a key the issuer no longer publishes (rotated away)", async () => {
    const answer = await refused(await externalJwt({ claims: { iss: rotatedIssuer } }));
    expect(answer).toMatchObject({ status: 400, body: { error: "invalid_grant" } });
    expect(answer.body.error_description).toMatch(/no key/);
  });

  it("refuses a wrong aud (RFC 7523 §3: this server's issuer or token endpoint)", async () => {
    const answer = await refused(await externalJwt({ claims: { aud: "https://elsewhere.example" } }));
    expect(answer).toMatchObject({ status: 400, body: { error: "invalid_grant" } });
    expect(answer.body.error_description).toMatch(/aud/);
    const tokenEndpoint = await federated(agent, JWT_BEARER, {
      assertion: await externalJwt({ claims: { aud: `${server.issuer}/oauth2/token` } }),
    });
    expect(tokenEndpoint.claims.client_id).toBe(agent.clientId);
  });

  it("refuses alg none and HS256 keyed with the issuer's public key (alg confusion)", async () => {
    const none = [
      Buffer.from(JSON.stringify({ alg: "none", typ: "JWT" })).toString("base64url"),
      Buffer.from(
        JSON.stringify({
          iss: issuer,
          sub: "svc-orders@partner",
          aud: server.issuer,
          exp: Math.floor(Date.now() / 1000) + 60,
          jti: randomUUID(),
        }),
      ).toString("base64url"),
      "",
    ].join(".");
    const unsigned = await refused(none);
    expect(unsigned).toMatchObject({ status: 400, body: { error: "invalid_grant" } });
    expect(unsigned.body.error_description).toMatch(/alg "none"/);
    const hmac = await externalJwt({
      header: { alg: "HS256" },
      key: new TextEncoder().encode(JSON.stringify(publicJwk)),
    });
    const confused = await refused(hmac);
    expect(confused).toMatchObject({ status: 400, body: { error: "invalid_grant" } });
    expect(confused.body.error_description).toMatch(/alg "HS256"/);
  });

  it("refuses an unmapped subject and a subject mapped to a client that is not an agent", async () => {
    const unmapped = await refused(await externalJwt({ claims: { sub: "intruder@partner" } }));
    expect(unmapped).toMatchObject({ status: 400, body: { error: "invalid_grant" } });
    expect(unmapped.body.error_description).toMatch(/maps to no agent/);
    const app = await refused(await externalJwt({ claims: { sub: "svc-app@partner" } }));
    expect(app).toMatchObject({ status: 400, body: { error: "invalid_grant" } });
    expect(app.body.error_description).toMatch(/not an agent/);
  });

  it("refuses scope or resource outside the trust (invalid_scope / invalid_target)", async () => {
    const scope = await refused(await externalJwt(), { scope: "orders:read admin" });
    expect(scope).toMatchObject({ status: 400, body: { error: "invalid_scope" } });
    const target = await refused(await externalJwt(), { resource: OTHER_RESOURCE });
    expect(target).toMatchObject({ status: 400, body: { error: "invalid_target" } });
  });

  it("refuses to issue a bearer token: a DPoP proof or a client certificate is required", async () => {
    const answer = await refused(await externalJwt({ claims: { sub: "svc-keyless@partner" } }));
    expect(answer).toMatchObject({ status: 400, body: { error: "invalid_request" } });
    expect(answer.body.error_description).toMatch(/sender-constrained/);
  });

  it("refuses at once once the trust is revoked", async () => {
    const revocable = await trust({ kind: "jwt", issuer: `${issuer}/revocable`, mapping: { client: agent.clientId } });
    expect(await revokeTrust(store, "demo", revocable.id, Date.now(), ADMIN)).toBe(true);
    const answer = await refused(await externalJwt({ claims: { iss: `${issuer}/revocable` } }));
    expect(answer).toMatchObject({ status: 400, body: { error: "invalid_grant" } });
    expect(answer.body.error_description).toMatch(/no trust/);
    expect(await revokeTrust(store, "demo", revocable.id, Date.now(), ADMIN)).toBe(false);
  });

  it("answers temporarily_unavailable when the issuer's metadata cannot be discovered", async () => {
    await trust({ kind: "jwt", issuer: `${issuer}/no-metadata`, mapping: { client: agent.clientId } });
    const answer = await refused(await externalJwt({ claims: { iss: `${issuer}/no-metadata` } }));
    expect(answer.body).toMatchObject({ error: "temporarily_unavailable" });
    expect(answer.body.error_description).toMatch(/metadata/);
  });

  it("is advertised in the authorization server metadata", async () => {
    expect(endpoint.as.grant_types_supported).toContain(JWT_BEARER);
    expect(endpoint.as.grant_types_supported).toContain("urn:ietf:params:oauth:grant-type:saml2-bearer");
    expect(endpoint.as.authorization_grant_profiles_supported).toEqual(["urn:ietf:params:oauth:grant-profile:id-jag"]);
  });
});

describe("ID-JAG (draft-ietf-oauth-identity-assertion-authz-grant, Cross App Access)", () => {
  it("exchanges an ID-JAG with the jwt-bearer grant for the client it names, bounded by its scope and resource", async () => {
    const { claims } = await federated(
      agent,
      JWT_BEARER,
      { assertion: await idJag() },
      oauth.ClientSecretBasic(agent.secret),
    );
    expect(claims).toMatchObject({
      sub: agent.clientId,
      client_id: agent.clientId,
      aud: RESOURCE,
      scope: "orders:read",
      cnf: { jkt: agent.jkt },
      act: { sub: "00u1alice", iss: idpIssuer, mandate_federation: { protocol: "id_jag", trust: idJagTrust } },
    });
    expect(await auditEntry(claims.jti as string)).toMatchObject({
      protocol: "id_jag",
      issuer: idpIssuer,
      external_subject: "00u1alice",
      trust_id: idJagTrust,
    });
  });

  it("accepts it as an RFC 8693 subject token of type id-jag", async () => {
    const { claims } = await federated(agent, TOKEN_EXCHANGE, {
      subject_token: await idJag(),
      subject_token_type: ID_JAG_TYPE,
    });
    expect(claims.act).toMatchObject({ mandate_federation: { protocol: "id_jag" } });
  });

  it("refuses more scope than the ID-JAG carries", async () => {
    const answer = await refused(await idJag(), { scope: "orders:write" });
    expect(answer).toMatchObject({ status: 400, body: { error: "invalid_scope" } });
  });

  it("refuses an ID-JAG issued to another client than the one requesting", async () => {
    const answer = await refused(await idJag(), { client_id: otherAgent.clientId });
    expect(answer).toMatchObject({ status: 400, body: { error: "invalid_grant" } });
    const none = await refused(await idJag({ claims: { client_id: undefined } }));
    expect(none).toMatchObject({ status: 400, body: { error: "invalid_grant" } });
  });

  it("refuses an ID-JAG whose aud is not this server's issuer, or without its typ, or replayed", async () => {
    const aud = await refused(await idJag({ claims: { aud: `${server.issuer}/oauth2/token` } }));
    expect(aud).toMatchObject({ status: 400, body: { error: "invalid_grant" } });
    // Without typ oauth-id-jag+jwt it is no ID-JAG; and the IdP is no trusted issuer of plain JWTs.
    const plain = await refused(await idJag({ header: { typ: "JWT" } }));
    expect(plain).toMatchObject({ status: 400, body: { error: "invalid_grant" } });
    const jag = await idJag();
    await federated(agent, JWT_BEARER, { assertion: jag });
    expect(await refused(jag)).toMatchObject({ status: 400, body: { error: "invalid_grant" } });
  });
});

describe("SAML 2.0 bearer assertion (RFC 7522)", () => {
  const SAML2_BEARER = "urn:ietf:params:oauth:grant-type:saml2-bearer";
  let idp: SamlTestIdp;
  let stranger: SamlTestIdp;
  let samlTrust: string;

  beforeAll(async () => {
    idp = samlTestIdp();
    stranger = samlTestIdp();
    samlTrust = (
      await trust({
        kind: "saml",
        issuer: idp.entityId,
        verification: { certificates: [idp.cert.pem] },
        mapping: { claim: "sub", clients: { "agent-7": agent.clientId } },
      })
    ).id;
  });

  function assertion(options: Partial<AssertionOptions> = {}, signer: SamlTestIdp = idp): string {
    const xml = assertionXml({
      issuer: idp.entityId,
      audience: server.issuer,
      recipient: `${server.issuer}/oauth2/token`,
      nameId: "agent-7",
      ...options,
    });
    return Buffer.from(signAssertion(idp, xml, signer.cert)).toString("base64url");
  }

  it("issues a DPoP-bound token whose act names the IdP's subject, audited", async () => {
    const { claims } = await federated(agent, SAML2_BEARER, { assertion: assertion(), scope: "orders:read" });
    expect(claims).toMatchObject({
      sub: agent.clientId,
      client_id: agent.clientId,
      scope: "orders:read",
      cnf: { jkt: agent.jkt },
      act: { sub: "agent-7", iss: idp.entityId, mandate_federation: { protocol: "saml", trust: samlTrust } },
    });
    expect(await auditEntry(claims.jti as string)).toMatchObject({
      grant_type: SAML2_BEARER,
      protocol: "saml",
      issuer: idp.entityId,
      external_subject: "agent-7",
      trust_id: samlTrust,
    });
  });

  it("accepts it as an RFC 8693 subject token of type saml2", async () => {
    const { claims } = await federated(agent, TOKEN_EXCHANGE, {
      subject_token: assertion(),
      subject_token_type: "urn:ietf:params:oauth:token-type:saml2",
    });
    expect(claims.act).toMatchObject({ mandate_federation: { protocol: "saml" } });
  });

  it("refuses a replay, another key's signature, a wrong audience or recipient, an expired or unmapped assertion", async () => {
    const once = assertion();
    await federated(agent, SAML2_BEARER, { assertion: once });
    const cases = [
      once,
      assertion({}, stranger),
      assertion({ audience: "https://elsewhere.example" }),
      assertion({ recipient: "https://elsewhere.example/token" }),
      assertion({ notBefore: new Date(Date.now() - 20 * 60_000), notOnOrAfter: new Date(Date.now() - 10 * 60_000) }),
      assertion({ nameId: "intruder" }),
    ];
    for (const bad of cases) {
      expect(await post({ grant_type: SAML2_BEARER, assertion: bad })).toMatchObject({
        status: 400,
        body: { error: "invalid_grant" },
      });
    }
  });

  it("refuses an assertion of an IdP no trust names", async () => {
    const xml = assertionXml({
      issuer: stranger.entityId,
      audience: server.issuer,
      recipient: `${server.issuer}/oauth2/token`,
      nameId: "agent-7",
    });
    const foreign = Buffer.from(signAssertion(stranger, xml)).toString("base64url");
    const answer = await post({ grant_type: SAML2_BEARER, assertion: foreign });
    expect(answer).toMatchObject({ status: 400, body: { error: "invalid_grant" } });
    expect(answer.body.error_description).toMatch(/no trust/);
  });
});
