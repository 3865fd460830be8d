// An agent on native gRPC over mutual TLS, end to end in one Mandate process (TLS 1.3): enrolled
// with a key `openssl` made and a certificate of its tenant's agent CA, it calls Issue.ExchangeToken
// authenticating by that certificate (tls_client_auth: its SPIFFE ID names its client), gets a token
// bound to it (cnf.x5t#S256), which Introspect then accepts with that certificate only. A
// certificate of another tenant's agent CA, or of another agent of the same tenant, passes TLS but
// authenticates no one as this agent.
import { X509Certificate } from "node:crypto";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClientKind } from "../../gen/mandate/v1/clients_pb.js";
import { PartyKind } from "../../gen/mandate/v1/common_pb.js";
import { Introspect } from "../../gen/mandate/v1/introspect_pb.js";
import { Issue } from "../../gen/mandate/v1/issue_pb.js";
import { issuerUrl } from "../../services/shared/oauth/issuer.ts";
import { x5tS256 } from "../../services/shared/x509/thumbprint.ts";
import { MANDATE_TOKEN_TYPE, TOKEN_EXCHANGE } from "../helpers/agents.ts";
import {
  agentCaCertificate,
  type ClientCertificate,
  clientCertificateOfDer,
  type MtlsMandate,
  startMtlsMandate,
} from "../helpers/mtls-mandate.ts";
import { csr, privateKey } from "../helpers/openssl-pki.ts";

const TENANT = "acme";
const OTHER_TENANT = "globex";
const RESOURCE = "https://orders.example/";

let mandate: MtlsMandate;

beforeAll(async () => {
  mandate = await startMtlsMandate({ tenants: [TENANT, OTHER_TENANT] });
}, 60_000);

afterAll(async () => {
  await mandate?.stop();
});

/** A token of Mandate's API for the tenant, signed by the tenant's key through the Signer. */
const apiToken = (scope: string) =>
  mandate.accessToken(TENANT, { sub: "operator", client_id: "operator", aud: mandate.config.api.audience, scope });

/** Registers a tls_client_auth agent and enrolls it over HTTP: its key by openssl, its certificate by the tenant's CA. */
async function enrolledAgent(issue: ReturnType<typeof createClient<typeof Issue>>) {
  const created = await issue.createClient({
    tenant: TENANT,
    metadata: {
      clientName: "mTLS agent",
      kind: ClientKind.AGENT,
      owner: "alice",
      tokenEndpointAuthMethod: "tls_client_auth",
      grantTypes: [TOKEN_EXCHANGE],
      scope: "orders.read",
      resources: [RESOURCE],
    } as never,
  });
  const clientId = created.client?.clientId as string;
  const { token } = await issue.createAgentEnrollmentToken({ tenant: TENANT, clientId });
  const key = privateKey("ec");
  const response = await fetch(`${issuerUrl(`http://127.0.0.1:${mandate.running.httpPort}`, TENANT)}/agents/enroll`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ csr: csr(key.keyPem, "/CN=agent").pem, enrollment_token: token }),
  });
  const enrolled = (await response.json()) as Record<string, string>;
  expect(response.status, JSON.stringify(enrolled)).toBe(200);
  const chain = (enrolled.chain ?? "").match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  const leaf = new X509Certificate(enrolled.certificate as string).raw;
  return {
    clientId,
    spiffeId: enrolled.spiffe_id as string,
    certificate: clientCertificateOfDer(
      key.keyPem,
      leaf,
      chain.map((pem) => new X509Certificate(pem).raw),
    ),
  };
}

async function failure(promise: Promise<unknown>): Promise<ConnectError> {
  try {
    await promise;
  } catch (error) {
    return ConnectError.from(error);
  }
  throw new Error("expected the call to fail");
}

describe("an agent's token over native gRPC with mutual TLS (RFC 8705)", () => {
  let issue: ReturnType<typeof createClient<typeof Issue>>;
  let agent: Awaited<ReturnType<typeof enrolledAgent>>;
  let mandateId: string;
  const exchange = (certificate: ClientCertificate | undefined, clientId = agent.clientId) =>
    createClient(Issue, mandate.transport({ certificate })).exchangeToken({
      tenant: TENANT,
      client: { clientId, method: "tls_client_auth" },
      subjectToken: mandateId,
      subjectTokenType: MANDATE_TOKEN_TYPE,
      resources: [RESOURCE],
    });

  beforeAll(async () => {
    issue = createClient(Issue, mandate.transport({ token: await apiToken("mandate:tenant-admin") }));
    agent = await enrolledAgent(issue);
    const { mandate: granted } = await issue.createMandate({
      tenant: TENANT,
      mandate: {
        principal: { id: "alice", kind: PartyKind.HUMAN },
        agent: { id: agent.clientId, kind: PartyKind.AGENT },
        scopes: ["orders.read"],
        resources: [RESOURCE],
        expireTime: timestampFromMs(Date.now() + 86_400_000),
      },
    });
    mandateId = granted?.id as string;
  }, 60_000);

  it("authenticates the agent by the certificate of the TLS handshake and binds the token to it; Introspect wants it", async () => {
    const response = await exchange(agent.certificate);
    const accessToken = response.tokens?.accessToken as string;
    const claims = JSON.parse(Buffer.from(accessToken.split(".")[1] as string, "base64url").toString("utf8"));
    expect(claims).toMatchObject({ client_id: agent.clientId, cnf: { "x5t#S256": x5tS256(agent.certificate.der) } });
    const introspect = createClient(Introspect, mandate.transport({ token: await apiToken("mandate:introspect") }));
    const answer = await introspect.introspect({
      tenant: TENANT,
      token: accessToken,
      clientCertificate: agent.certificate.der,
    });
    expect(answer).toMatchObject({ active: true, clientId: agent.clientId, clientCertificateVerified: true });
    const without = await failure(introspect.introspect({ tenant: TENANT, token: accessToken }));
    expect(without.code).toBe(Code.Unauthenticated);
  });

  it("refuses the agent's client with no certificate, another tenant's CA's, or another agent's", async () => {
    // Each certificate below passes TLS (a CA native gRPC trusts): what it proves is the client's concern.
    const { certificate: otherTenant } = await agentCaCertificate(mandate, OTHER_TENANT, agent.clientId);
    const sameTenantOtherAgent = (await enrolledAgent(issue)).certificate;
    const cases: Array<[ClientCertificate | undefined, RegExp]> = [
      [undefined, /tls_client_auth needs a client certificate/],
      [otherTenant, /the client certificate was refused/],
      [sameTenantOtherAgent, /the client certificate was refused/],
    ];
    for (const [certificate, message] of cases) {
      const refused = await failure(exchange(certificate));
      expect(refused.code, refused.rawMessage).toBe(Code.Unauthenticated);
      expect(refused.rawMessage).toMatch(message);
    }
  });
});
