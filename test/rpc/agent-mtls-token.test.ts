// An agent on native gRPC over mutual TLS, end to end in one Mandate process (TLS 1.3): enrolled
// with a key `openssl` made and a certificate of its tenant's agent CA, it calls Issue.ExchangeToken
// authenticating by that certificate (tls_client_auth: its SPIFFE ID names its client), gets a token
// bound to it (cnf.x5t#S256), which Introspect then accepts with that certificate only. A
// certificate of another tenant's agent CA, or of another agent of the same tenant, passes TLS but
// authenticates no one as this agent.
import { createPublicKey, X509Certificate } from "node:crypto";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClientKind } from "../../gen/mandate/v1/clients_pb.js";
import { PartyKind } from "../../gen/mandate/v1/common_pb.js";
import { Introspect } from "../../gen/mandate/v1/introspect_pb.js";
import { Issue } from "../../gen/mandate/v1/issue_pb.js";
import { type Running, startMandate } from "../../services/runtime/start.ts";
import { systemClock } from "../../services/shared/clock.ts";
import { type Config, loadConfig, SERVICE_NAMES, withHttpPort } from "../../services/shared/config.ts";
import { createLogger } from "../../services/shared/logger.ts";
import { issuerUrl } from "../../services/shared/oauth/issuer.ts";
import { Store } from "../../services/shared/store/store.ts";
import { agentSpiffeId, agentTrustDomain } from "../../services/shared/x509/spiffe.ts";
import { x5tS256 } from "../../services/shared/x509/thumbprint.ts";
import { AgentCertificateAuthority } from "../../services/signer/ca/authority.ts";
import type { KeyManager } from "../../services/signer/keys.ts";
import { freePort, tempDatabaseUrl } from "../helpers/mandate-process.ts";
import { csr, leafCertificate, type PkiCertificate, privateKey, rootCa } from "../helpers/openssl-pki.ts";

const TENANT = "acme";
const OTHER_TENANT = "globex";
const RESOURCE = "https://orders.example/";
const MANDATE_TYPE = "urn:mandate:params:oauth:token-type:mandate";
const TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange";

/** A client certificate: the key, the leaf and what the client sends with it (PEM), the leaf's DER. */
interface AgentCertificate {
  keyPem: string;
  certPem: string;
  der: Uint8Array;
}

let running: Running;
let config: Config;
let address: string;
let deployment: PkiCertificate;

beforeAll(async () => {
  deployment = rootCa({ subject: "/CN=deployment CA" });
  const serverCertificate = leafCertificate(deployment, {
    uris: ["spiffe://mandate.test/mandate/issue"],
    dnsNames: ["localhost"],
  });
  const loaded = loadConfig({
    env: {},
    overrides: {
      database: { url: tempDatabaseUrl() },
      grpc: { host: "127.0.0.1", port: 0 },
      http: { host: "127.0.0.1", port: 0 },
      tls: {
        certFile: serverCertificate.certFile,
        keyFile: serverCertificate.keyFile,
        caFile: deployment.certFile,
        trustDomain: "mandate.test",
      },
    },
  });
  config = withHttpPort(loaded, await freePort("127.0.0.1"));
  // Both tenants exist before Mandate starts: native gRPC reads their agent CAs as it starts.
  const store = Store.open({ url: config.database.url });
  await store.migrate();
  for (const id of [TENANT, OTHER_TENANT]) {
    await store.db.insertInto("tenants").values({ id, display_name: id, created_at: 0 }).execute();
  }
  await store.close();
  running = await startMandate({
    config,
    logger: createLogger("silent"),
    services: SERVICE_NAMES,
    grpc: true,
    edge: true,
    migrate: true,
    dev: true,
  });
  address = `localhost:${running.grpcPort}`;
}, 60_000);

afterAll(async () => {
  await running?.stop();
});

/** A token of Mandate's API for `tenant`, signed by the tenant's key through the Signer. */
async function apiToken(tenant: string, scope: string): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    iss: issuerUrl(config.publicBaseUrl, tenant),
    sub: "operator",
    client_id: "operator",
    aud: config.api.audience,
    scope,
    jti: crypto.randomUUID(),
    iat: now,
    exp: now + 300,
  };
  return (await (running.keys as KeyManager).signJwt(tenant, claims, "at+jwt")).jwt;
}

/** Native gRPC over TLS 1.3, with a client certificate when given and a bearer token when given. */
function transport(options: { token?: string; certificate?: AgentCertificate | undefined }): Transport {
  const { token, certificate } = options;
  return createGrpcTransport({
    baseUrl: `https://${address}`,
    nodeOptions: {
      ca: deployment.pem,
      ...(certificate ? { key: certificate.keyPem, cert: certificate.certPem } : {}),
    },
    interceptors: token
      ? [
          (next) => (request) => {
            request.header.set("authorization", `Bearer ${token}`);
            return next(request);
          },
        ]
      : [],
  });
}

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
  const response = await fetch(`${issuerUrl(`http://127.0.0.1:${running.httpPort}`, TENANT)}/agents/enroll`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ csr: csr(key.keyPem, "/CN=agent").pem, enrollment_token: token }),
  });
  const enrolled = (await response.json()) as Record<string, string>;
  expect(response.status, JSON.stringify(enrolled)).toBe(200);
  const leaf = new X509Certificate(enrolled.certificate as string);
  const certificate = { keyPem: key.keyPem, certPem: `${enrolled.certificate}${enrolled.chain ?? ""}`, der: leaf.raw };
  return { clientId, spiffeId: enrolled.spiffe_id as string, certificate };
}

/** A certificate of `tenant`'s agent CA naming `clientId`, never recorded by enrollment. */
async function caCertificate(tenant: string, clientId: string): Promise<AgentCertificate> {
  const ca = new AgentCertificateAuthority({
    keys: running.keys as KeyManager,
    store: running.store as Store,
    clock: systemClock,
    logger: createLogger("silent"),
    trustDomainSuffix: config.agents.trustDomainSuffix,
    publicBaseUrl: config.publicBaseUrl,
  });
  const key = privateKey("ec");
  const publicKeySpki = new Uint8Array(createPublicKey(key.keyPem).export({ type: "spki", format: "der" }));
  const spiffeId = agentSpiffeId(agentTrustDomain(tenant, config.agents.trustDomainSuffix), clientId);
  const issued = await ca.issueAgentCertificate({ tenant, publicKeySpki, spiffeId, notAfter: Date.now() + 3_600_000 });
  const pems = [issued.certificateDer, ...issued.chainDer].map((der) => new X509Certificate(der).toString());
  return { keyPem: key.keyPem, certPem: pems.join(""), der: issued.certificateDer };
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
  const exchange = (certificate: AgentCertificate | undefined, clientId = agent.clientId) =>
    createClient(Issue, transport({ certificate })).exchangeToken({
      tenant: TENANT,
      client: { clientId, method: "tls_client_auth" },
      subjectToken: mandateId,
      subjectTokenType: MANDATE_TYPE,
      resources: [RESOURCE],
    });

  beforeAll(async () => {
    issue = createClient(Issue, transport({ token: await apiToken(TENANT, "mandate:tenant-admin") }));
    agent = await enrolledAgent(issue);
    const { mandate } = await issue.createMandate({
      tenant: TENANT,
      mandate: {
        principal: { id: "alice", kind: PartyKind.HUMAN },
        agent: { id: agent.clientId, kind: PartyKind.AGENT },
        scopes: ["orders.read"],
        resources: [RESOURCE],
        expireTime: timestampFromMs(Date.now() + 86_400_000),
      },
    });
    mandateId = mandate?.id as string;
  }, 60_000);

  it("authenticates the agent by the certificate of the TLS handshake and binds the token to it; Introspect wants it", async () => {
    const response = await exchange(agent.certificate);
    const accessToken = response.tokens?.accessToken as string;
    const claims = JSON.parse(Buffer.from(accessToken.split(".")[1] as string, "base64url").toString("utf8"));
    expect(claims).toMatchObject({ client_id: agent.clientId, cnf: { "x5t#S256": x5tS256(agent.certificate.der) } });
    const introspect = createClient(Introspect, transport({ token: await apiToken(TENANT, "mandate:introspect") }));
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
    const otherTenant = await caCertificate(OTHER_TENANT, agent.clientId);
    const sameTenantOtherAgent = (await enrolledAgent(issue)).certificate;
    const cases: Array<[AgentCertificate | undefined, RegExp]> = [
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
