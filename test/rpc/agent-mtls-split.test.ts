// Split mode (the edge with Issue in one process, the other services in another, mTLS between
// them): an agent behind a TLS-terminating proxy gets a certificate-bound token for Mandate's API
// through the real token path (tls_client_auth, the certificate in the proxy's RFC 9440 Client-Cert
// header), then calls Introspect at the edge. The edge forwards the call — and the caller's
// certificate with it — to the services process, whose gate checks the binding: the token works
// with its certificate only.

import { X509Certificate } from "node:crypto";
import { request as httpRequest } from "node:http";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClientKind } from "../../gen/mandate/v1/clients_pb.js";
import { Introspect } from "../../gen/mandate/v1/introspect_pb.js";
import { Issue } from "../../gen/mandate/v1/issue_pb.js";
import { x5tS256 } from "../../services/shared/x509/thumbprint.ts";
import { adminClient } from "../helpers/admin.ts";
import { type Deployment, startSplit } from "../helpers/mandate-process.ts";
import { csr, privateKey } from "../helpers/openssl-pki.ts";

/** The TLS-terminating proxy: the only address whose Client-Cert header Mandate believes. */
const PROXY = "127.0.0.2";
const TENANT = "demo";

interface Enrolled {
  clientId: string;
  der: Uint8Array;
}

let deployment: Deployment;
let issue: ReturnType<typeof createClient<typeof Issue>>;

beforeAll(async () => {
  deployment = await startSplit({
    MANDATE_HTTP_CLIENT_CERTIFICATE_HEADER: "client-cert",
    MANDATE_HTTP_CLIENT_CERTIFICATE_PROXIES: PROXY,
  });
  issue = adminClient(Issue, deployment.grpcAddress, deployment.adminFile, deployment.caFile);
}, 120_000);

afterAll(async () => {
  await deployment?.stop();
});

/** An agent registered for tls_client_auth with Mandate's introspection scope, enrolled with the tenant's CA. */
async function enrolledAgent(): Promise<Enrolled> {
  const created = await issue.createClient({
    tenant: TENANT,
    metadata: {
      clientName: "resource server agent",
      kind: ClientKind.AGENT,
      owner: "alice",
      tokenEndpointAuthMethod: "tls_client_auth",
      grantTypes: ["client_credentials"],
      scope: "mandate:introspect",
      resources: [deployment.httpUrl],
    } as never,
  });
  const clientId = created.client?.clientId as string;
  const { token } = await issue.createAgentEnrollmentToken({ tenant: TENANT, clientId });
  const key = privateKey("ec");
  const response = await fetch(`${deployment.httpUrl}/t/${TENANT}/agents/enroll`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ csr: csr(key.keyPem, "/CN=agent").pem, enrollment_token: token }),
  });
  const enrolled = (await response.json()) as Record<string, string>;
  expect(response.status, JSON.stringify(enrolled)).toBe(200);
  return { clientId, der: new X509Certificate(enrolled.certificate as string).raw };
}

/** RFC 9440 §2: the Client-Cert header value, an RFC 8941 Byte Sequence of the DER. */
const clientCert = (der: Uint8Array) => `:${Buffer.from(der).toString("base64")}:`;

/** A client-credentials token for Mandate's API, asked for through the proxy with the agent's certificate. */
function apiToken(agent: Enrolled): Promise<string> {
  const body = new URLSearchParams({
    grant_type: "client_credentials",
    client_id: agent.clientId,
    scope: "mandate:introspect",
    resource: deployment.httpUrl,
  }).toString();
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      `${deployment.httpUrl}/t/${TENANT}/oauth2/token`,
      {
        method: "POST",
        localAddress: PROXY,
        headers: { "content-type": "application/x-www-form-urlencoded", "client-cert": clientCert(agent.der) },
      },
      (res) => {
        let text = "";
        res.on("data", (chunk) => {
          text += chunk;
        });
        res.on("end", () =>
          res.statusCode === 200
            ? resolve((JSON.parse(text) as { access_token: string }).access_token)
            : reject(new Error(`token: ${res.statusCode} ${text}`)),
        );
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

/** Introspect at the edge (Connect over HTTP/1.1) through the proxy, which sends `certificate` in Client-Cert. */
function introspectViaProxy(accessToken: string, certificate?: Uint8Array) {
  const transport = createConnectTransport({
    baseUrl: deployment.httpUrl,
    httpVersion: "1.1",
    nodeOptions: { localAddress: PROXY },
    interceptors: [
      (next) => (request) => {
        request.header.set("authorization", `Bearer ${accessToken}`);
        if (certificate) request.header.set("client-cert", clientCert(certificate));
        return next(request);
      },
    ],
  });
  return createClient(Introspect, transport).introspect({ tenant: TENANT, token: "not-a-token" });
}

describe("a certificate-bound token for Mandate's API, through the edge to another process", () => {
  it("is admitted with its certificate, and refused without it or with another agent's", async () => {
    const agent = await enrolledAgent();
    const token = await apiToken(agent);
    const claims = JSON.parse(Buffer.from(token.split(".")[1] as string, "base64url").toString("utf8"));
    expect(claims.cnf).toEqual({ "x5t#S256": x5tS256(agent.der) });
    expect(await introspectViaProxy(token, agent.der)).toMatchObject({ active: false });
    const other = await enrolledAgent();
    for (const certificate of [undefined, other.der]) {
      const refused = await introspectViaProxy(token, certificate).then(
        () => undefined,
        (error: unknown) => ConnectError.from(error),
      );
      expect(refused?.code, refused?.rawMessage).toBe(Code.Unauthenticated);
      expect(refused?.rawMessage).toMatch(/client certificate/);
    }
  });
});
