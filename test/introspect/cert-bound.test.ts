// Certificate-bound access tokens (RFC 8705 §3, `cnf.x5t#S256`) at Introspect, at Authorize in
// access-token mode and at the RPC gate, against Mandate running in this process with native gRPC
// over mutual TLS (TLS 1.3, certificates made by `openssl`). Tokens are signed by the tenant's own
// keys through the Signer, as the token endpoint signs them. A bound token is good only with its
// certificate: without one, or with another, Introspect answers UNAUTHENTICATED, Authorize denies
// with `token_certificate_required` / `token_certificate_mismatch`, and the gate refuses the call.

import { Code, ConnectError, createClient } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { Authorize } from "../../gen/mandate/v1/authorize_pb.js";
import { Introspect } from "../../gen/mandate/v1/introspect_pb.js";
import { AuthorizeClient } from "../../services/authorize/client.ts";
import { AgentTrust } from "../../services/issue/agents/agent-trust.ts";
import { systemClock } from "../../services/shared/clock.ts";
import { createLogger } from "../../services/shared/logger.ts";
import { issuerUrl } from "../../services/shared/oauth/issuer.ts";
import { ResourceServer, ResourceServerError } from "../../services/shared/oauth/resource-server.ts";
import type { Store } from "../../services/shared/store/store.ts";
import { x5tS256 } from "../../services/shared/x509/thumbprint.ts";
import { CertificateRefused } from "../../services/shared/x509/types.ts";
import {
  agentCaCertificate,
  type ClientCertificate,
  clientCertificateOf,
  type MtlsMandate,
  startMtlsMandate,
} from "../helpers/mtls-mandate.ts";
import { leafCertificate, rootCa } from "../helpers/openssl-pki.ts";

const TENANT = "acme";
/** A second tenant, with its own agent CA. */
const OTHER_TENANT = "globex";
const RESOURCE = "https://orders.example/";
let mandate: MtlsMandate;
/** Agents' certificates: two of the deployment's CA (verified at TLS, names no service), one of an unknown CA. */
let agent: ClientCertificate;
let otherAgent: ClientCertificate;
let stranger: ClientCertificate;

beforeAll(async () => {
  mandate = await startMtlsMandate({
    tenants: [TENANT, OTHER_TENANT],
    // The HTTP edge behind a TLS-terminating proxy on this machine: RFC 9440 Client-Cert from it only.
    http: { clientCertificate: { header: "client-cert", proxies: ["127.0.0.1"] } },
  });
  const agentId = (client: string) => `spiffe://${TENANT}.agents.mandate.local/agent/${client}`;
  agent = clientCertificateOf(leafCertificate(mandate.deployment, { uris: [agentId("rs-1")] }));
  otherAgent = clientCertificateOf(leafCertificate(mandate.deployment, { uris: [agentId("rs-2")] }));
  stranger = clientCertificateOf(leafCertificate(rootCa(), { uris: [agentId("rs-1")] }));
}, 60_000);

afterAll(async () => {
  await mandate?.stop();
});

/** An access token of the tenant, signed by its current key through the Signer (as the token endpoint signs). */
const accessToken = (claims: Record<string, unknown>) =>
  mandate.accessToken(TENANT, { sub: "rs-1", client_id: "rs-1", ...claims });

/** A caller's token for Mandate's API (the gate), bound to `certificate` when given. */
const callerToken = (certificate?: ClientCertificate) =>
  accessToken({
    aud: mandate.config.api.audience,
    scope: "mandate:introspect mandate:authorize",
    ...(certificate ? { cnf: { "x5t#S256": x5tS256(certificate.der) } } : {}),
  });

/** A token for the orders API, bound to `certificate` (or with the given `cnf`). */
const ordersToken = (cnf?: Record<string, unknown>) =>
  accessToken({ aud: RESOURCE, scope: "orders.read", ...(cnf ? { cnf } : {}) });

/** Native gRPC over TLS 1.3, presenting `certificate` when given, with `token` as the caller's credential. */
const transport = (token: string, certificate?: ClientCertificate) => mandate.transport({ token, certificate });

async function refusal(promise: Promise<unknown>): Promise<{ code: string; reason: string; message: string }> {
  try {
    await promise;
  } catch (error) {
    const connect = ConnectError.from(error);
    const reason = connect.findDetails(ErrorInfoSchema)[0]?.reason ?? "";
    return { code: Code[connect.code], reason, message: connect.rawMessage };
  }
  throw new Error("expected the call to fail");
}

const bound = (certificate: ClientCertificate) => ({ "x5t#S256": x5tS256(certificate.der) });

describe("Introspect with a certificate-bound token (RFC 8705 §3)", () => {
  let introspect: ReturnType<typeof createClient<typeof Introspect>>;
  beforeAll(async () => {
    introspect = createClient(Introspect, transport(await callerToken()));
  });

  it("reports it active, with its cnf, when given the certificate it is bound to", async () => {
    const token = await ordersToken(bound(agent));
    const answer = await introspect.introspect({ tenant: TENANT, token, clientCertificate: agent.der });
    expect(answer).toMatchObject({
      active: true,
      tokenType: "Bearer",
      confirmation: { "x5t#S256": x5tS256(agent.der) },
      clientCertificateVerified: true,
      dpopVerified: false,
    });
  });

  it("is UNAUTHENTICATED without the certificate, or with another", async () => {
    const token = await ordersToken(bound(agent));
    const none = await refusal(introspect.introspect({ tenant: TENANT, token }));
    expect(none).toMatchObject({ code: "Unauthenticated", reason: "CLIENT_CERTIFICATE_REQUIRED" });
    const other = await refusal(introspect.introspect({ tenant: TENANT, token, clientCertificate: otherAgent.der }));
    expect(other).toMatchObject({ code: "Unauthenticated", reason: "CLIENT_CERTIFICATE_MISMATCH" });
  });

  it("needs no certificate for an unbound token, and reports one confirmed by an unknown method inactive", async () => {
    const unbound = await introspect.introspect({
      tenant: TENANT,
      token: await ordersToken(),
      clientCertificate: agent.der,
    });
    expect(unbound).toMatchObject({ active: true, clientCertificateVerified: false });
    const unknown = await ordersToken({ "x5t#S512": "A".repeat(86) });
    expect(await introspect.introspect({ tenant: TENANT, token: unknown, clientCertificate: agent.der })).toMatchObject(
      {
        active: false,
      },
    );
  });

  it("answers an inactive token inactive, whatever certificate comes with it", async () => {
    const foreign = await ordersToken(bound(agent));
    const answer = await introspect.introspect({
      tenant: TENANT,
      token: `${foreign}x`,
      clientCertificate: otherAgent.der,
    });
    expect(answer.active).toBe(false);
    // Meant for another audience: inactive before any certificate is looked at.
    const elsewhere = await introspect.introspect({
      tenant: TENANT,
      token: foreign,
      expectedAudience: "https://other.example/",
    });
    expect(elsewhere.active).toBe(false);
  });
});

describe("Authorize in access-token mode with a certificate-bound token", () => {
  let authorize: ReturnType<typeof createClient<typeof Authorize>>;
  beforeAll(async () => {
    authorize = createClient(Authorize, transport(await callerToken()));
  });

  const codes = async (accessToken: string, clientCertificate?: Uint8Array) => {
    const { decision } = await authorize.check({
      tenant: TENANT,
      action: "orders.read",
      resource: { type: "order", id: "o-1" },
      accessToken,
      expectedAudience: RESOURCE,
      ...(clientCertificate ? { clientCertificate } : {}),
    });
    return { allow: decision?.allow, codes: decision?.reasons.map((reason) => reason.code) ?? [] };
  };

  it("denies without the certificate (token_certificate_required) or with another (token_certificate_mismatch)", async () => {
    const token = await ordersToken(bound(agent));
    expect(await codes(token)).toEqual({ allow: false, codes: ["token_certificate_required"] });
    expect(await codes(token, otherAgent.der)).toEqual({ allow: false, codes: ["token_certificate_mismatch"] });
  });

  it("decides over the token's claims when its certificate comes with it", async () => {
    const token = await ordersToken(bound(agent));
    const decided = await codes(token, agent.der);
    expect(decided.codes.filter((code) => code.startsWith("token_"))).toEqual([]);
    // The same question asked with an unbound token gets the same answer: the binding was the only difference.
    expect(decided).toEqual(await codes(await ordersToken(), agent.der));
  });
});

describe("the resource-server library's authorize() with a certificate-bound token", () => {
  it("passes the request's certificate to Authorize: without it the token is refused as verify() refuses it", async () => {
    // The resource server calls Authorize over mTLS with its own certificate, its caller token bound to it.
    const credentials = grpc.credentials.createSsl(
      Buffer.from(mandate.deployment.pem),
      Buffer.from(otherAgent.keyPem),
      Buffer.from(otherAgent.certPem),
    );
    const client = new AuthorizeClient({
      address: mandate.address,
      credentials,
      token: await callerToken(otherAgent),
      deadlineMs: 5000,
    });
    const resourceServer = new ResourceServer({
      issuer: issuerUrl(mandate.config.publicBaseUrl, TENANT),
      audience: RESOURCE,
      keys: async () => {
        throw new Error("authorize() verifies through Authorize, not locally");
      },
      authorizer: { client, tenant: TENANT },
    });
    const token = await ordersToken(bound(agent));
    const request = { method: "GET", url: `${RESOURCE}orders/o-1`, authorization: `Bearer ${token}`, dpop: undefined };
    const question = { action: "orders.read", resource: { type: "order", id: "o-1" } };
    const withCertificate = await resourceServer.authorize({ ...request, clientCertificate: agent.der }, question);
    expect(withCertificate.decision.reasons.map((reason) => reason.code)).not.toContain("token_certificate_required");
    for (const clientCertificate of [undefined, otherAgent.der]) {
      const refused = await resourceServer.authorize({ ...request, clientCertificate }, question).catch((e) => e);
      expect(refused).toBeInstanceOf(ResourceServerError);
      expect((refused as ResourceServerError).wwwAuthenticate).toMatch(/^Bearer error="invalid_token"/);
    }
    client.close();
  });
});

describe("the RPC gate with a caller token bound to a certificate", () => {
  const introspectWith = (token: string, certificate?: ClientCertificate) =>
    createClient(Introspect, transport(token, certificate)).introspect({ tenant: TENANT, token: "not-a-token" });

  it("admits the caller that presents the token's certificate on the TLS connection", async () => {
    expect(await introspectWith(await callerToken(agent), agent)).toMatchObject({ active: false });
  });

  it("refuses it without a certificate, with another, or with one of a CA the server does not trust", async () => {
    const token = await callerToken(agent);
    const none = await refusal(introspectWith(token));
    expect(none).toMatchObject({ code: "Unauthenticated", reason: "INVALID_TOKEN" });
    expect(none.message).toMatch(/bound to a client certificate/);
    const other = await refusal(introspectWith(token, otherAgent));
    expect(other).toMatchObject({ code: "Unauthenticated", reason: "INVALID_TOKEN" });
    expect(other.message).toMatch(/not the one the access token is bound to/);
    // A certificate no trusted CA issued does not reach the gate (grpc-js hands over verified ones only).
    const unknown = await refusal(introspectWith(await callerToken(stranger), stranger));
    expect(unknown.message).toMatch(/bound to a client certificate/);
  });
});

describe("the AuthZEN API with a caller token bound to a certificate", () => {
  /** POST access/v1/evaluation as the proxy forwards it: the caller's certificate in RFC 9440 Client-Cert. */
  const evaluate = (token: string, certificate?: ClientCertificate) =>
    fetch(`http://127.0.0.1:${mandate.running.httpPort}/t/${TENANT}/access/v1/evaluation`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${token}`,
        "content-type": "application/json",
        ...(certificate ? { "client-cert": `:${Buffer.from(certificate.der).toString("base64")}:` } : {}),
      },
      body: JSON.stringify({
        subject: { type: "user", id: "alice" },
        action: { name: "orders.read" },
        resource: { type: "order", id: "o-1" },
      }),
    });

  it("admits the caller whose proxy forwards the token's certificate, and no other", async () => {
    const token = await callerToken(agent);
    expect((await evaluate(token, agent)).status).toBe(200);
    const none = await evaluate(token);
    expect(none.status).toBe(401);
    expect(none.headers.get("www-authenticate")).toMatch(/invalid_token/);
    expect((await evaluate(token, otherAgent)).status).toBe(401);
  });
});

describe("agent certificates of a tenant's own CA on native gRPC", () => {
  it("reach the gate from the TLS handshake; another tenant's agent trust refuses them (unknown CA)", async () => {
    const { ca, issued, certificate } = await eventually(() => agentCaCertificate(mandate, OTHER_TENANT, "g1"));
    // The gate sees the certificate (a token bound to it is admitted) once native gRPC trusts globex's CA.
    const token = await callerToken(certificate);
    const introspect = () =>
      createClient(Introspect, transport(token, certificate)).introspect({ tenant: TENANT, token: "not-a-token" });
    expect(await eventually(introspect)).toMatchObject({ active: false });
    // TLS let it through, but it authenticates no one of acme: acme's agent trust refuses it.
    const { running, config } = mandate;
    const trust = new AgentTrust(running.store as Store, ca, config, systemClock, createLogger("silent"));
    const presented = { leaf: issued.certificateDer, chain: issued.chainDer, source: "tls" as const };
    const refused = await trust.verify(TENANT, presented).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(CertificateRefused);
    expect((refused as CertificateRefused).reason).toBe("unknown_ca");
  });
});

/** `attempt` until it succeeds, for up to 10 s (a CA made on first use, bundles read in the background). */
async function eventually<T>(attempt: () => Promise<T>): Promise<T> {
  const until = Date.now() + 10_000;
  for (;;) {
    try {
      return await attempt();
    } catch (error) {
      if (Date.now() > until) throw error;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}
