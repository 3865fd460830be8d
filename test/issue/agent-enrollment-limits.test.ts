// Agent enrollment behind a TLS-terminating proxy: renewal with the current certificate in the
// RFC 9440 Client-Cert header, believed only from the configured proxy address; and failed
// enrollment proofs counted against the client's address like failed client authentications
// (rateLimits.failedClientAuth.perIp): once the bucket is empty, even a valid token waits (429).
import { X509Certificate } from "node:crypto";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type OAuthServer, registerKeylessAgent, startOAuthServer } from "../helpers/oauth-server.ts";
import { csr, privateKey } from "../helpers/openssl-pki.ts";

let server: OAuthServer;

function post(path: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${server.issuer}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
}

beforeAll(async () => {
  server = await startOAuthServer({
    MANDATE_RATE_LIMITS_ENABLED: "true",
    MANDATE_RATE_LIMITS_FAILED_CLIENT_AUTH_PER_IP: "0.001:3",
    // This test is the proxy: it connects from 127.0.0.1.
    MANDATE_HTTP_CLIENT_CERTIFICATE_HEADER: "client-cert",
    MANDATE_HTTP_CLIENT_CERTIFICATE_PROXIES: "127.0.0.1",
  });
}, 120_000);

afterAll(async () => {
  await server?.stop();
});

it("renews with the certificate a configured proxy forwards in Client-Cert (RFC 9440)", async () => {
  const clientId = await registerKeylessAgent(server, { clientName: "proxied agent" });
  const { token } = await server.issue.createAgentEnrollmentToken({ tenant: "demo", clientId });
  const key = privateKey("ec");
  const enrolled = (await (
    await post("/agents/enroll", { csr: csr(key.keyPem).pem, enrollment_token: token })
  ).json()) as { certificate: string; chain: string; serial: string };
  const sfBinary = (pem: string) => `:${Buffer.from(new X509Certificate(pem).raw).toString("base64")}:`;
  const renewal = await post(
    "/agents/renew",
    { csr: csr(key.keyPem).pem },
    { "client-cert": sfBinary(enrolled.certificate), "client-cert-chain": sfBinary(enrolled.chain) },
  );
  expect(renewal.status).toBe(200);
  const renewed = (await renewal.json()) as { serial: string; spiffe_id: string };
  expect(renewed.spiffe_id).toBe(`spiffe://demo.agents.mandate.local/agent/${clientId}`);
  expect(renewed.serial).not.toBe(enrolled.serial);
  // Without the header nothing was presented.
  const without = await post("/agents/renew", { csr: csr(key.keyPem).pem });
  expect(without.status).toBe(400);
});

it("refuses enrollment from an address after too many wrong tokens or refused renewals (slow_down, Retry-After)", async () => {
  // Made before the failures: the admin's own client authentication shares the address's bucket.
  const clientId = await registerKeylessAgent(server, { clientName: "limited agent" });
  const { token } = await server.issue.createAgentEnrollmentToken({ tenant: "demo", clientId });
  const revokedAgent = await registerKeylessAgent(server, { clientName: "revoked agent" });
  const first = await server.issue.createAgentEnrollmentToken({ tenant: "demo", clientId: revokedAgent });
  const key = privateKey("ec");
  const revoked = (await (
    await post("/agents/enroll", { csr: csr(key.keyPem).pem, enrollment_token: first.token })
  ).json()) as { certificate: string };
  await server.issue.revokeAgentCertificates({ tenant: "demo", clientId: revokedAgent, reason: "keyCompromise" });

  const pem = csr(privateKey("ec").keyPem).pem;
  const enroll = (enrollmentToken: string) => post("/agents/enroll", { csr: pem, enrollment_token: enrollmentToken });
  for (let i = 0; i < 2; i++) {
    const wrong = await enroll(`mandate_enroll_${"x".repeat(42)}${i}`);
    expect(wrong.status).toBe(400);
    expect(((await wrong.json()) as { error: string }).error).toBe("invalid_grant");
  }
  // A renewal with a revoked certificate is a failed proof too.
  const sfBinary = (certificate: string) => `:${Buffer.from(new X509Certificate(certificate).raw).toString("base64")}:`;
  const refused = await post(
    "/agents/renew",
    { csr: csr(key.keyPem).pem },
    { "client-cert": sfBinary(revoked.certificate) },
  );
  expect(refused.status).toBe(403);
  expect(((await refused.json()) as { error: string }).error).toBe("access_denied");
  const limited = await enroll(token);
  expect(limited.status).toBe(429);
  expect(limited.headers.get("retry-after")).toMatch(/^\d+$/);
  expect(((await limited.json()) as { error: string }).error).toBe("slow_down");
});
