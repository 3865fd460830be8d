// RFC 8705 at the authorization server, end to end: a running `mandate dev` with its mTLS listener,
// real TLS (node:https) with certificates made by openssl (test/helpers/openssl-pki.ts) and by
// Mandate's own agent CA (enrollment), oauth4webapi as an independent client. Covers both methods
// (tls_client_auth §2.1, self_signed_tls_client_auth §2.2), every refusal, certificate-bound tokens
// (§3: cnf.x5t#S256, token_type Bearer) from client credentials, token exchange and refresh,
// discovery (§3.3, §5), and the proxy-header mode accepted only from the configured proxy (RFC 9440).
import { createPublicKey, randomUUID } from "node:crypto";
import { request as httpRequest } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT } from "jose";
import * as oauth from "oauth4webapi";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClientKind } from "../../gen/mandate/v1/clients_pb.js";
import { PartyKind } from "../../gen/mandate/v1/common_pb.js";
import { Issue } from "../../gen/mandate/v1/issue_pb.js";
import { Tenants } from "../../gen/mandate/v1/tenants_pb.js";
import { adminClient } from "../helpers/admin.ts";
import { claimsOf, MANDATE_TOKEN_TYPE, TOKEN_EXCHANGE } from "../helpers/agents.ts";
import { auditDetails } from "../helpers/audit-log.ts";
import { runMandate } from "../helpers/mandate-process.ts";
import { Browser, type MtlsOAuthServer, startMtlsOAuthServer } from "../helpers/oauth-server.ts";
import {
  csr,
  leafCertificate,
  opensslThumbprint,
  type PkiCertificate,
  privateKey,
  rootCa,
  selfSignedLeaf,
} from "../helpers/openssl-pki.ts";

const API = "https://api.example.com/";
const DAY = 86_400_000;
/** The address whose certificate header the server believes (a loopback alias of the test's own). */
const PROXY = "127.0.0.2";

interface ClientCertificate {
  keyPem: string;
  /** The leaf, then any intermediates, PEM. */
  certPem: string;
  der: Uint8Array;
}

interface Answer {
  status: number;
  body: Record<string, unknown>;
  headers: import("node:http").IncomingHttpHeaders;
}

let server: MtlsOAuthServer;
let mtlsBase: string;
let serverCa: PkiCertificate;

beforeAll(async () => {
  server = await startMtlsOAuthServer({
    MANDATE_HTTP_CLIENT_CERTIFICATE_HEADER: "client-cert",
    MANDATE_HTTP_CLIENT_CERTIFICATE_PROXIES: PROXY,
  });
  ({ mtlsBase, serverCa } = server);
}, 60_000);

afterAll(async () => {
  await server?.stop();
});

/** A form POST over mutual TLS (a new connection each time), presenting `certificate` when given. */
function mtlsPost(
  path: string,
  form: Record<string, string>,
  certificate?: ClientCertificate,
  headers: Record<string, string> = {},
): Promise<Answer> {
  const body = new URLSearchParams(form).toString();
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      `${mtlsBase}${path}`,
      {
        method: "POST",
        ca: serverCa.pem,
        ...(certificate ? { key: certificate.keyPem, cert: certificate.certPem } : {}),
        agent: false,
        headers: { "content-type": "application/x-www-form-urlencoded", ...headers },
      },
      (res) => collect(res, resolve, reject),
    );
    req.on("error", reject);
    req.end(body);
  });
}

/** A form POST over plain HTTP from `localAddress`, with extra headers (a proxy's Client-Cert). */
function plainPost(
  path: string,
  form: Record<string, string>,
  headers: Record<string, string>,
  localAddress = "127.0.0.1",
): Promise<Answer> {
  const body = new URLSearchParams(form).toString();
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      `${server.base}${path}`,
      { method: "POST", localAddress, headers: { "content-type": "application/x-www-form-urlencoded", ...headers } },
      (res) => collect(res, resolve, reject),
    );
    req.on("error", reject);
    req.end(body);
  });
}

function collect(
  res: import("node:http").IncomingMessage,
  resolve: (answer: Answer) => void,
  reject: (error: Error) => void,
): void {
  const chunks: Buffer[] = [];
  res.on("data", (chunk: Buffer) => chunks.push(chunk));
  res.on("error", reject);
  res.on("end", () => {
    const text = Buffer.concat(chunks).toString("utf8");
    resolve({
      status: res.statusCode ?? 0,
      body: text ? (JSON.parse(text) as Record<string, unknown>) : {},
      headers: res.headers,
    });
  });
}

const TOKEN_PATH = "/t/demo/oauth2/token";

function fromPki(certificate: PkiCertificate, ...chain: PkiCertificate[]): ClientCertificate {
  return {
    keyPem: certificate.keyPem,
    certPem: [certificate, ...chain].map((c) => c.pem).join(""),
    der: certificate.der,
  };
}

/** The first PEM certificate of a bundle. */
function firstPem(pem: string): string {
  return (/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/.exec(pem) as RegExpExecArray)[0];
}

/** RFC 9440 §2: the Client-Cert header value, an RFC 8941 Byte Sequence of the DER. */
function clientCertHeader(der: Uint8Array): string {
  return `:${Buffer.from(der).toString("base64")}:`;
}

async function selfSignedClient(jwk: Record<string, unknown>, extra: Record<string, unknown> = {}): Promise<string> {
  const { clientId } = await server.register({
    clientName: "self-signed client",
    tokenEndpointAuthMethod: "self_signed_tls_client_auth",
    grantTypes: ["client_credentials"],
    scope: "orders.read",
    jwks: { keys: [jwk] },
    ...extra,
  } as never);
  return clientId;
}

/** A JWK of a certificate's public key, with the certificate as x5c when `withX5c`. */
function jwkOf(certificate: PkiCertificate, withX5c: boolean): Record<string, unknown> {
  const jwk = createPublicKey(certificate.pem).export({ format: "jwk" }) as Record<string, unknown>;
  return withX5c ? { ...jwk, x5c: [Buffer.from(certificate.der).toString("base64")] } : jwk;
}

describe("discovery (RFC 8705 §3.3, §5)", () => {
  it("announces both methods, certificate-bound tokens and the mTLS endpoint aliases", async () => {
    const metadata = (await (
      await fetch(`${server.base}/.well-known/oauth-authorization-server/t/demo`)
    ).json()) as Record<string, unknown>;
    expect(metadata.tls_client_certificate_bound_access_tokens).toBe(true);
    for (const member of [
      "token_endpoint_auth_methods_supported",
      "revocation_endpoint_auth_methods_supported",
      "introspection_endpoint_auth_methods_supported",
    ]) {
      expect(metadata[member]).toEqual(expect.arrayContaining(["tls_client_auth", "self_signed_tls_client_auth"]));
    }
    expect(metadata.mtls_endpoint_aliases).toMatchObject({
      token_endpoint: `${mtlsBase}/t/demo/oauth2/token`,
      introspection_endpoint: `${mtlsBase}/t/demo/oauth2/introspect`,
      revocation_endpoint: `${mtlsBase}/t/demo/oauth2/revoke`,
      pushed_authorization_request_endpoint: `${mtlsBase}/t/demo/oauth2/par`,
      userinfo_endpoint: `${mtlsBase}/t/demo/oauth2/userinfo`,
    });
  });

  it("serves the same endpoints on the mTLS listener, with or without a client certificate", async () => {
    const answer = await mtlsPost("/t/demo/oauth2/token", { grant_type: "client_credentials", client_id: "nobody" });
    expect(answer.status).toBe(401);
    expect(answer.body.error).toBe("invalid_client");
  });
});

describe("self_signed_tls_client_auth (RFC 8705 §2.2)", () => {
  it("issues a certificate-bound Bearer token to a client whose certificate is registered (x5c), through oauth4webapi", async () => {
    const certificate = selfSignedLeaf();
    const clientId = await selfSignedClient(jwkOf(certificate, true));
    const agent = new HttpsAgent({ ca: serverCa.pem, key: certificate.keyPem, cert: certificate.pem });
    const as = await oauth.processDiscoveryResponse(
      new URL(server.issuer),
      await oauth.discoveryRequest(new URL(server.issuer), {
        algorithm: "oauth2",
        [oauth.allowInsecureRequests]: true,
      }),
    );
    const client: oauth.Client = { client_id: clientId, use_mtls_endpoint_aliases: true };
    const response = await oauth.clientCredentialsGrantRequest(
      as,
      client,
      oauth.TlsClientAuth(),
      new URLSearchParams({ scope: "orders.read" }),
      { [oauth.customFetch]: httpsFetch(agent) },
    );
    const result = await oauth.processClientCredentialsResponse(as, client, response);
    expect(result.token_type).toBe("bearer");
    expect(claimsOf(result.access_token).cnf).toEqual({ "x5t#S256": opensslThumbprint(certificate.pem) });
  });

  it("binds the tokens of a code flow and of its refreshes to the certificate (oauth4webapi over mTLS)", async () => {
    const certificate = selfSignedLeaf();
    const redirect = "https://app.example.com/callback";
    const clientId = await selfSignedClient(jwkOf(certificate, true), {
      grantTypes: ["authorization_code", "refresh_token"],
      redirectUris: [redirect],
    });
    const as = await oauth.processDiscoveryResponse(
      new URL(server.issuer),
      await oauth.discoveryRequest(new URL(server.issuer), {
        algorithm: "oauth2",
        [oauth.allowInsecureRequests]: true,
      }),
    );
    const client: oauth.Client = { client_id: clientId, use_mtls_endpoint_aliases: true };
    const verifier = oauth.generateRandomCodeVerifier();
    const url = new URL(as.authorization_endpoint as string);
    url.search = new URLSearchParams({
      client_id: clientId,
      redirect_uri: redirect,
      response_type: "code",
      scope: "orders.read",
      code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
      code_challenge_method: "S256",
    }).toString();
    const callback = await new Browser().authorize(url.toString(), redirect);
    const fetchOverMtls = {
      [oauth.customFetch]: httpsFetch(
        new HttpsAgent({ ca: serverCa.pem, key: certificate.keyPem, cert: certificate.pem }),
      ),
    };
    const tokens = await oauth.processAuthorizationCodeResponse(
      as,
      client,
      await oauth.authorizationCodeGrantRequest(
        as,
        client,
        oauth.TlsClientAuth(),
        oauth.validateAuthResponse(as, client, callback, oauth.expectNoState),
        redirect,
        verifier,
        fetchOverMtls,
      ),
    );
    const bound = { "x5t#S256": opensslThumbprint(certificate.pem) };
    expect(tokens.token_type).toBe("bearer");
    expect(claimsOf(tokens.access_token).cnf).toEqual(bound);
    const refreshed = await oauth.processRefreshTokenResponse(
      as,
      client,
      await oauth.refreshTokenGrantRequest(
        as,
        client,
        oauth.TlsClientAuth(),
        tokens.refresh_token as string,
        fetchOverMtls,
      ),
    );
    expect(claimsOf(refreshed.access_token).cnf).toEqual(bound);
    // The refresh token alone, with another certificate, is worth nothing.
    const stranger = await mtlsPost(
      TOKEN_PATH,
      { grant_type: "refresh_token", client_id: clientId, refresh_token: refreshed.refresh_token as string },
      fromPki(selfSignedLeaf()),
    );
    expect(stranger.status).toBe(401);
  });

  it("accepts a certificate of a registered key (no x5c) within its validity", async () => {
    const certificate = selfSignedLeaf();
    const clientId = await selfSignedClient(jwkOf(certificate, false));
    const answer = await mtlsPost(
      TOKEN_PATH,
      { grant_type: "client_credentials", client_id: clientId },
      fromPki(certificate),
    );
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    expect(claimsOf(answer.body.access_token as string).cnf).toEqual({
      "x5t#S256": opensslThumbprint(certificate.pem),
    });
  });

  it("refuses a certificate that is not registered, an expired one, a not yet valid one, and none", async () => {
    const registered = selfSignedLeaf();
    const clientId = await selfSignedClient(jwkOf(registered, true));
    const form = { grant_type: "client_credentials", client_id: clientId };
    const other = selfSignedLeaf();
    const expired = selfSignedLeaf({
      key: registered,
      notBefore: new Date(Date.now() - 3 * DAY),
      notAfter: new Date(Date.now() - DAY),
    });
    const keyOnly = await selfSignedClient(jwkOf(registered, false));
    const future = selfSignedLeaf({ key: registered, notBefore: new Date(Date.now() + DAY) });
    for (const [formOf, certificate] of [
      [form, fromPki(other)],
      [form, undefined],
      [{ ...form, client_id: keyOnly }, fromPki(expired)],
      [{ ...form, client_id: keyOnly }, fromPki(future)],
    ] as const) {
      const answer = await mtlsPost(TOKEN_PATH, formOf, certificate);
      expect(answer.status).toBe(401);
      expect(answer.body.error).toBe("invalid_client");
    }
  });

  it("refuses a second method in the same request (RFC 6749 §2.3)", async () => {
    const certificate = selfSignedLeaf();
    const clientId = await selfSignedClient(jwkOf(certificate, true));
    const keys = await generateKeyPair("ES256");
    const assertion = await new SignJWT({ jti: randomUUID() })
      .setProtectedHeader({ alg: "ES256" })
      .setIssuer(clientId)
      .setSubject(clientId)
      .setAudience(server.issuer)
      .setIssuedAt()
      .setExpirationTime("1m")
      .sign(keys.privateKey);
    const second: Array<Record<string, string>> = [
      { client_secret: "also-a-secret" },
      { client_assertion_type: "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", client_assertion: assertion },
    ];
    for (const credentials of second) {
      const answer = await mtlsPost(
        TOKEN_PATH,
        { grant_type: "client_credentials", client_id: clientId, ...credentials },
        fromPki(certificate),
      );
      expect(answer.status, JSON.stringify(answer.body)).toBe(400);
      expect(answer.body.error).toBe("invalid_request");
    }
  });

  it("refuses a registration without jwks", async () => {
    await expect(
      server.register({ tokenEndpointAuthMethod: "self_signed_tls_client_auth", grantTypes: ["client_credentials"] }),
    ).rejects.toThrow(/self_signed_tls_client_auth needs/);
  });
});

describe("certificate-bound tokens of a client that authenticates with a secret (RFC 8705 §3, §3.4)", () => {
  it("binds them to the certificate it presents, and refuses it tokens without one", async () => {
    const { clientId, clientSecret } = await server.register({
      clientName: "secret client with bound tokens",
      grantTypes: ["client_credentials"],
      tlsClientCertificateBoundAccessTokens: true,
    } as never);
    const basic = { authorization: `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString("base64")}` };
    const certificate = selfSignedLeaf();
    const bound = await mtlsPost(TOKEN_PATH, { grant_type: "client_credentials" }, fromPki(certificate), basic);
    expect(bound.status, JSON.stringify(bound.body)).toBe(200);
    expect(bound.body.token_type).toBe("Bearer");
    expect(claimsOf(bound.body.access_token as string).cnf).toEqual({ "x5t#S256": opensslThumbprint(certificate.pem) });
    const unbound = await mtlsPost(TOKEN_PATH, { grant_type: "client_credentials" }, undefined, basic);
    expect(unbound.status).toBe(400);
    expect(unbound.body.error).toBe("invalid_request");
  });
});

describe("tls_client_auth (RFC 8705 §2.1) with certificates of the tenant's agent CA", () => {
  let agent: { clientId: string; certificate: ClientCertificate; serial: string; spiffeId: string };
  const tenantOfServer = "demo";

  /** Registers an agent for tls_client_auth and enrolls it: a key made by openssl, its certificate by Mandate's CA. */
  async function enrolledAgent(extra: Record<string, unknown> = {}, tenant = tenantOfServer) {
    const { clientId } = await server.register(
      {
        clientName: "mTLS agent",
        kind: ClientKind.AGENT,
        owner: "dev-alice",
        tokenEndpointAuthMethod: "tls_client_auth",
        grantTypes: ["client_credentials", TOKEN_EXCHANGE, "refresh_token"],
        scope: "orders.read",
        resources: [API],
        ...extra,
      } as never,
      tenant,
    );
    const { token } = await server.issue.createAgentEnrollmentToken({ tenant, clientId });
    const key = privateKey("ec");
    const request = csr(key.keyPem, "/CN=agent");
    const response = await fetch(`${server.base}/t/${tenant}/agents/enroll`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ csr: request.pem, enrollment_token: token }),
    });
    const enrolled = (await response.json()) as Record<string, string>;
    expect(response.status, JSON.stringify(enrolled)).toBe(200);
    const leafPem = enrolled.certificate as string;
    return {
      clientId,
      serial: enrolled.serial as string,
      spiffeId: enrolled.spiffe_id as string,
      certificate: {
        keyPem: key.keyPem,
        certPem: `${leafPem}${enrolled.chain}`,
        der: new Uint8Array(Buffer.from(firstPem(leafPem).replace(/-----[A-Z ]+-----|\s/g, ""), "base64")),
      },
    };
  }

  /** A mandate of dev-alice for `agentId`: orders.read on API for a day. */
  async function mandateFor(agentId: string) {
    const { mandate } = await server.issue.createMandate({
      tenant: tenantOfServer,
      mandate: {
        principal: { id: "dev-alice", kind: PartyKind.HUMAN },
        agent: { id: agentId, kind: PartyKind.AGENT },
        scopes: ["orders.read"],
        resources: [API],
        expireTime: timestampFromMs(Date.now() + DAY),
      },
    });
    return mandate;
  }

  beforeAll(async () => {
    agent = await enrolledAgent();
  }, 60_000);

  it("authenticates an agent by its SPIFFE ID and binds its token to the certificate; the audit records the proof", async () => {
    const answer = await mtlsPost(
      TOKEN_PATH,
      { grant_type: "client_credentials", client_id: agent.clientId },
      agent.certificate,
    );
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    expect(answer.body.token_type).toBe("Bearer");
    const claims = claimsOf(answer.body.access_token as string);
    expect(claims.cnf).toEqual({ "x5t#S256": opensslThumbprint(agent.certificate.certPem) });
    expect(await auditDetails(server.database, "token.issued.v1", claims.jti as string)).toMatchObject({
      client_auth_method: "tls_client_auth",
      certificate_serial: agent.serial,
      spiffe_id: agent.spiffeId,
      cnf_x5t_s256: opensslThumbprint(agent.certificate.certPem),
    });
  });

  it("refuses the agent without its certificate, with another client's, with a wrong SAN, from a foreign CA", async () => {
    const other = await enrolledAgent();
    const foreignCa = rootCa();
    const foreign = leafCertificate(foreignCa, { uris: [agent.spiffeId] });
    const { clientId: wrongSan } = await server.register({
      clientName: "an application named by DNS",
      tokenEndpointAuthMethod: "tls_client_auth",
      tlsClientAuthSanDns: "app.example.com",
      grantTypes: ["client_credentials"],
    } as never);
    const { clientId: wrongSubject } = await server.register({
      clientName: "an application named by its subject",
      tokenEndpointAuthMethod: "tls_client_auth",
      tlsClientAuthSubjectDn: "CN=someone else,O=Example",
      grantTypes: ["client_credentials"],
    } as never);
    const cases: Array<[string, ClientCertificate | undefined]> = [
      [agent.clientId, undefined],
      [agent.clientId, other.certificate],
      [wrongSan, agent.certificate],
      [wrongSubject, agent.certificate],
      [agent.clientId, fromPki(foreign, foreignCa)],
    ];
    for (const [clientId, certificate] of cases) {
      const answer = await mtlsPost(TOKEN_PATH, { grant_type: "client_credentials", client_id: clientId }, certificate);
      expect(answer.status, `${clientId}: ${JSON.stringify(answer.body)}`).toBe(401);
      expect(answer.body.error).toBe("invalid_client");
    }
  });

  it("binds to the DPoP key instead when the request also carries a proof (one binding per token)", async () => {
    const keys = await generateKeyPair("ES256");
    const jwk = await exportJWK(keys.publicKey);
    // RFC 9449 §4.3: htu is the URL called, the token endpoint's mTLS alias (RFC 8705 §5).
    const proof = (nonce?: string) =>
      new SignJWT({ htm: "POST", htu: `${mtlsBase}${TOKEN_PATH}`, jti: randomUUID(), ...(nonce ? { nonce } : {}) })
        .setProtectedHeader({ alg: "ES256", typ: "dpop+jwt", jwk })
        .setIssuedAt()
        .sign(keys.privateKey);
    const form = { grant_type: "client_credentials", client_id: agent.clientId };
    let answer = await mtlsPost(TOKEN_PATH, form, agent.certificate, { dpop: await proof() });
    if (answer.body.error === "use_dpop_nonce") {
      answer = await mtlsPost(TOKEN_PATH, form, agent.certificate, {
        dpop: await proof(answer.headers["dpop-nonce"] as string),
      });
    }
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    expect(answer.body.token_type).toBe("DPoP");
    expect(claimsOf(answer.body.access_token as string).cnf).toEqual({
      jkt: await calculateJwkThumbprint(jwk, "sha256"),
    });
  });

  it("refuses a certificate of another tenant's agent CA, even for a client registered with its SPIFFE ID", async () => {
    await adminClient(Tenants, server.process.summary.grpc as string, server.process.adminFile).createTenant({
      tenant: "other",
      displayName: "Other",
    });
    const foreign = await enrolledAgent({}, "other");
    const { clientId: namesForeign } = await server.register({
      clientName: "names the other tenant's agent",
      tokenEndpointAuthMethod: "tls_client_auth",
      tlsClientAuthSanUri: foreign.spiffeId,
      grantTypes: ["client_credentials"],
    } as never);
    for (const clientId of [agent.clientId, namesForeign]) {
      const answer = await mtlsPost(
        TOKEN_PATH,
        { grant_type: "client_credentials", client_id: clientId },
        foreign.certificate,
      );
      expect(answer.status).toBe(401);
      expect(answer.body.error).toBe("invalid_client");
    }
    // In its own tenant the same certificate authenticates its agent.
    const home = await mtlsPost(
      "/t/other/oauth2/token",
      { grant_type: "client_credentials", client_id: foreign.clientId },
      foreign.certificate,
    );
    expect(home.status, JSON.stringify(home.body)).toBe(200);
  });

  it("authenticates the agent at the introspection and revocation endpoints' mTLS aliases too", async () => {
    const issued = await mtlsPost(
      TOKEN_PATH,
      { grant_type: "client_credentials", client_id: agent.clientId },
      agent.certificate,
    );
    const token = issued.body.access_token as string;
    // RFC 8705 §3.2: introspection shows the binding.
    const introspected = await mtlsPost(
      "/t/demo/oauth2/introspect",
      { token, client_id: agent.clientId },
      agent.certificate,
    );
    expect(introspected.body).toMatchObject({
      active: true,
      token_type: "Bearer",
      cnf: { "x5t#S256": opensslThumbprint(agent.certificate.certPem) },
    });
    const revoked = await mtlsPost("/t/demo/oauth2/revoke", { token, client_id: agent.clientId }, agent.certificate);
    expect(revoked.status, JSON.stringify(revoked.body)).toBe(200);
    const anonymous = await mtlsPost("/t/demo/oauth2/revoke", { token, client_id: agent.clientId });
    expect(anonymous.status).toBe(401);
  });

  it("refuses a revoked certificate", async () => {
    const revoked = await enrolledAgent();
    await server.issue.revokeAgentCertificates({ tenant: tenantOfServer, clientId: revoked.clientId });
    const answer = await mtlsPost(
      TOKEN_PATH,
      { grant_type: "client_credentials", client_id: revoked.clientId },
      revoked.certificate,
    );
    expect(answer.status).toBe(401);
    expect(answer.body.error).toBe("invalid_client");
  });

  it("exchanges a mandate for a certificate-bound token, refreshes it over mTLS and keeps the binding", async () => {
    const mandate = await mandateFor(agent.clientId);
    const exchanged = await mtlsPost(
      TOKEN_PATH,
      {
        grant_type: TOKEN_EXCHANGE,
        client_id: agent.clientId,
        subject_token: mandate?.id as string,
        subject_token_type: MANDATE_TOKEN_TYPE,
      },
      agent.certificate,
    );
    expect(exchanged.status, JSON.stringify(exchanged.body)).toBe(200);
    expect(exchanged.body.token_type).toBe("Bearer");
    const thumbprint = opensslThumbprint(agent.certificate.certPem);
    expect(claimsOf(exchanged.body.access_token as string)).toMatchObject({
      cnf: { "x5t#S256": thumbprint },
      mandate_id: mandate?.id,
      client_id: agent.clientId,
    });
    expect(exchanged.body.refresh_token).toBeTypeOf("string");
    const refreshed = await mtlsPost(
      TOKEN_PATH,
      { grant_type: "refresh_token", client_id: agent.clientId, refresh_token: exchanged.body.refresh_token as string },
      agent.certificate,
    );
    expect(refreshed.status, JSON.stringify(refreshed.body)).toBe(200);
    expect(claimsOf(refreshed.body.access_token as string).cnf).toEqual({ "x5t#S256": thumbprint });
    // Without the certificate the refresh token is worth nothing: the client cannot authenticate.
    const without = await mtlsPost(TOKEN_PATH, {
      grant_type: "refresh_token",
      client_id: agent.clientId,
      refresh_token: refreshed.body.refresh_token as string,
    });
    expect(without.status).toBe(401);
  });

  it("Issue.ExchangeToken over the mTLS listener: tls_client_auth by the connection's certificate, the token bound to it", async () => {
    const mandate = await mandateFor(agent.clientId);
    const request = {
      tenant: tenantOfServer,
      client: { clientId: agent.clientId, method: "tls_client_auth" },
      subjectToken: mandate?.id as string,
      subjectTokenType: MANDATE_TOKEN_TYPE,
    };
    const over = (certificate?: ClientCertificate) =>
      createClient(
        Issue,
        createConnectTransport({
          baseUrl: mtlsBase,
          httpVersion: "1.1",
          nodeOptions: {
            ca: serverCa.pem,
            ...(certificate ? { key: certificate.keyPem, cert: certificate.certPem } : {}),
          },
        }),
      );
    const response = await over(agent.certificate).exchangeToken(request);
    const claims = claimsOf(response.tokens?.accessToken as string);
    expect(response.tokens?.tokenType).toBe("Bearer");
    expect(claims.cnf).toEqual({ "x5t#S256": opensslThumbprint(agent.certificate.certPem) });
    expect(await auditDetails(server.database, "token.exchanged.v1", claims.jti as string)).toMatchObject({
      client_auth_method: "tls_client_auth",
      certificate_serial: agent.serial,
      spiffe_id: agent.spiffeId,
    });
    const refused = await over()
      .exchangeToken(request)
      .then(
        () => undefined,
        (error: unknown) => ConnectError.from(error),
      );
    expect(refused?.code).toBe(Code.Unauthenticated);
  });

  it("takes the certificate from a configured proxy's Client-Cert header, and only from that proxy", async () => {
    const form = { grant_type: "client_credentials", client_id: agent.clientId };
    const chain = agent.certificate.certPem
      .match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)
      ?.slice(1)
      .map((pem) => `:${pem.replace(/-----[A-Z ]+-----|\s/g, "")}:`)
      .join(", ");
    const headers = { "client-cert": clientCertHeader(agent.certificate.der), "client-cert-chain": chain ?? "" };
    const viaProxy = await plainPost(TOKEN_PATH, form, headers, PROXY);
    expect(viaProxy.status, JSON.stringify(viaProxy.body)).toBe(200);
    expect(claimsOf(viaProxy.body.access_token as string).cnf).toEqual({
      "x5t#S256": opensslThumbprint(agent.certificate.certPem),
    });
    const notProxy = await plainPost(TOKEN_PATH, form, headers, "127.0.0.1");
    expect(notProxy.status).toBe(401);
    expect(notProxy.body.error).toBe("invalid_client");
  });
});

/** fetch over node:https with `agent` (its client certificate), for oauth4webapi's customFetch. */
function httpsFetch(
  agent: HttpsAgent,
): (url: string, options: oauth.CustomFetchOptions<string, unknown>) => Promise<Response> {
  return (url, options) =>
    new Promise((resolve, reject) => {
      const req = httpsRequest(
        url,
        { method: options.method, headers: Object.fromEntries(new Headers(options.headers as HeadersInit)), agent },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (chunk: Buffer) => chunks.push(chunk));
          res.on("end", () => {
            const headers = new Headers();
            for (const [name, value] of Object.entries(res.headers)) {
              if (typeof value === "string") headers.set(name, value);
            }
            resolve(new Response(Buffer.concat(chunks), { status: res.statusCode ?? 0, headers }));
          });
          res.on("error", reject);
        },
      );
      req.on("error", reject);
      req.end(options.body === undefined ? undefined : String(options.body));
    });
}

describe("registering mutual-TLS clients from the CLI", () => {
  const cli = (args: string[]) =>
    runMandate([...args, "--json", "--address", server.process.summary.grpc as string], {
      MANDATE_ADMIN_FILE: server.process.adminFile,
    });

  it("registers an agent for tls_client_auth (no other key) and a client named by a DNS SAN with certificate-bound tokens", async () => {
    const agent = await cli([
      ...["agents", "create", "-t", "demo", "--name", "cert agent", "--owner", "dev-alice"],
      ...["--auth-method", "tls_client_auth"],
    ]);
    expect(agent.code, agent.stderr).toBe(0);
    expect(JSON.parse(agent.stdout)).toMatchObject({
      tokenEndpointAuthMethod: "tls_client_auth",
      kind: "CLIENT_KIND_AGENT",
    });
    const client = await cli([
      ...["clients", "create", "-t", "demo", "--name", "cert app", "--grant-type", "client_credentials"],
      ...["--auth-method", "tls_client_auth", "--tls-san-dns", "app.example.com", "--tls-bound-tokens"],
    ]);
    expect(client.code, client.stderr).toBe(0);
    expect(JSON.parse(client.stdout)).toMatchObject({
      tokenEndpointAuthMethod: "tls_client_auth",
      tlsClientAuthSanDns: "app.example.com",
      tlsClientCertificateBoundAccessTokens: true,
    });
    const ambiguous = await cli([
      ...["clients", "create", "-t", "demo", "--grant-type", "client_credentials", "--auth-method", "tls_client_auth"],
      ...["--tls-san-dns", "a.example.com", "--tls-san-uri", "https://a.example.com/"],
    ]);
    expect(ambiguous.code).not.toBe(0);
    expect(ambiguous.stderr).toContain("give exactly one of");
  });
});
