// The gateway's x509_ca source end to end: a running `mandate dev` with its mTLS listener (real TLS,
// node:https), an EXTERNAL CA and its client certificates made by openssl, the certificate named by
// RFC 8693 token exchange and the token bound to it (RFC 8705 §3.1 cnf.x5t#S256, checked against
// openssl's own SHA-256 fingerprint). Refusals: a certificate of a CA no trust names, no certificate,
// a subject_token naming another certificate, an expired certificate, a certificate without
// clientAuth, an unmapped name, a revoked trust.
import { request as httpsRequest } from "node:https";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { claimsOf, TOKEN_EXCHANGE } from "../helpers/agents.ts";
import { auditDetails } from "../helpers/audit-log.ts";
import { type MtlsOAuthServer, registerCertificateAgent, startMtlsOAuthServer } from "../helpers/oauth-server.ts";
import { leafCertificate, opensslThumbprint, type PkiCertificate, rootCa } from "../helpers/openssl-pki.ts";

const MTLS_CERTIFICATE = "urn:mandate:params:oauth:token-type:mtls-client-certificate";
const PARTNER_AGENT = "spiffe://partner.example/agent/orders";
const RESOURCE = "https://orders.example";

let server: MtlsOAuthServer;
let mtlsBase: string;
let serverCa: PkiCertificate;
let partnerCa: PkiCertificate;
let partnerLeaf: PkiCertificate;
let agentId: string;
let trustId: string;

interface Answer {
  status: number;
  body: Record<string, unknown>;
}

function mtlsPost(form: Record<string, string>, certificate?: PkiCertificate): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      `${mtlsBase}/t/demo/oauth2/token`,
      {
        method: "POST",
        ca: serverCa.pem,
        ...(certificate ? { key: certificate.keyPem, cert: certificate.pem } : {}),
        agent: false,
        headers: { "content-type": "application/x-www-form-urlencoded" },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString("utf8")) }),
        );
      },
    );
    req.on("error", reject);
    req.end(new URLSearchParams(form).toString());
  });
}

function exchange(
  certificate: PkiCertificate | undefined,
  subjectToken = certificate ? opensslThumbprint(certificate.pem) : "x",
) {
  return mtlsPost(
    {
      grant_type: TOKEN_EXCHANGE,
      subject_token_type: MTLS_CERTIFICATE,
      subject_token: subjectToken,
      resource: RESOURCE,
    },
    certificate,
  );
}

beforeAll(async () => {
  server = await startMtlsOAuthServer();
  ({ mtlsBase, serverCa } = server);
  partnerCa = rootCa({ subject: "/CN=Partner Agents CA" });
  partnerLeaf = leafCertificate(partnerCa, { uris: [PARTNER_AGENT], extendedKeyUsage: ["clientAuth"] });
  agentId = await registerCertificateAgent(server);
  const { trust } = await server.issue.createFederationTrust({
    tenant: "demo",
    kind: "x509_ca",
    issuer: "Partner Agents CA",
    certificates: [partnerCa.pem],
    mappingClaim: "san_uri",
    mappingClients: { [PARTNER_AGENT]: agentId },
    allowedScopes: ["orders:read"],
    allowedResources: [RESOURCE],
  });
  trustId = trust?.id as string;
}, 120_000);

afterAll(async () => {
  await server?.stop();
});

describe("x509_ca: a certificate of a trusted external CA", () => {
  it("issues a token bound to the certificate whose act names it, audited", async () => {
    const answer = await exchange(partnerLeaf);
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    expect(answer.body.token_type).toBe("Bearer");
    const claims = claimsOf(answer.body.access_token as string);
    expect(claims).toMatchObject({
      sub: agentId,
      client_id: agentId,
      aud: RESOURCE,
      scope: "orders:read",
      cnf: { "x5t#S256": opensslThumbprint(partnerLeaf.pem) },
      act: {
        sub: PARTNER_AGENT,
        iss: "Partner Agents CA",
        mandate_federation: { protocol: "x509_ca", trust: trustId },
      },
    });
    const entry = await auditDetails(server.database, "token.federated.v1", claims.jti as string);
    expect(entry).toMatchObject({
      protocol: "x509_ca",
      issuer: "Partner Agents CA",
      external_subject: PARTNER_AGENT,
      trust_id: trustId,
      cnf_x5t_s256: opensslThumbprint(partnerLeaf.pem),
    });
  });

  it("refuses a certificate of a CA no trust names (foreign CA)", async () => {
    const foreign = rootCa({ subject: "/CN=Partner Agents CA" });
    const answer = await exchange(
      leafCertificate(foreign, { uris: [PARTNER_AGENT], extendedKeyUsage: ["clientAuth"] }),
    );
    expect(answer).toMatchObject({ status: 400, body: { error: "invalid_grant" } });
    expect(answer.body.error_description).toMatch(/does not chain/);
  });

  it("refuses without a certificate, or with a subject_token naming another certificate", async () => {
    expect(await exchange(undefined)).toMatchObject({ status: 400, body: { error: "invalid_grant" } });
    const other = leafCertificate(partnerCa, { uris: [PARTNER_AGENT], extendedKeyUsage: ["clientAuth"] });
    const mismatch = await exchange(partnerLeaf, opensslThumbprint(other.pem));
    expect(mismatch).toMatchObject({ status: 400, body: { error: "invalid_request" } });
  });

  it("refuses an expired certificate, one without clientAuth, and an unmapped name", async () => {
    const day = 86_400_000;
    const expired = leafCertificate(partnerCa, {
      uris: [PARTNER_AGENT],
      extendedKeyUsage: ["clientAuth"],
      notBefore: new Date(Date.now() - 3 * day),
      notAfter: new Date(Date.now() - day),
    });
    const serverOnly = leafCertificate(partnerCa, { uris: [PARTNER_AGENT], extendedKeyUsage: ["serverAuth"] });
    const unmapped = leafCertificate(partnerCa, {
      uris: ["spiffe://partner.example/agent/other"],
      extendedKeyUsage: ["clientAuth"],
    });
    const answers = [await exchange(expired), await exchange(serverOnly), await exchange(unmapped)];
    for (const answer of answers) expect(answer).toMatchObject({ status: 400, body: { error: "invalid_grant" } });
    expect(answers.map((a) => a.body.error_description)).toEqual([
      expect.stringMatching(/expired/),
      expect.stringMatching(/clientAuth/),
      expect.stringMatching(/maps to no agent/),
    ]);
  });

  it("refuses once the trust is revoked", async () => {
    await server.issue.revokeFederationTrust({ tenant: "demo", id: trustId });
    const answer = await exchange(partnerLeaf);
    expect(answer).toMatchObject({ status: 400, body: { error: "invalid_grant" } });
  });
});
