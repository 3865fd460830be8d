// Agent enrollment, renewal and revocation (issue 17) against a running `mandate dev`: the agent's
// key and CSR made by openssl, enrollment over HTTP, renewal over the real mTLS listener with the
// certificate the CA issued, revocation through the admin RPC, and the published trust bundle and
// CRL checked by openssl (`openssl verify`, `openssl crl -verify`).
import { execFileSync } from "node:child_process";
import { randomUUID, X509Certificate } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Issue } from "../../gen/mandate/v1/issue_pb.js";
import { Tenants } from "../../gen/mandate/v1/tenants_pb.js";
import { adminClient } from "../helpers/admin.ts";
import { freePort, type OAuthServer, registerKeylessAgent, startOAuthServer } from "../helpers/oauth-server.ts";
import {
  csr,
  intermediateCa,
  type KeyType,
  leafCertificate,
  type PkiKey,
  privateKey,
  rootCa,
} from "../helpers/openssl-pki.ts";
import { rpcError } from "../helpers/rpc-error.ts";
import { selfSignedCertificate } from "../helpers/tls.ts";

const TRUST_DOMAIN = "demo.agents.mandate.local";

let server: OAuthServer;
let mtlsPort: number;
let serverCa: string;

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Record<string, unknown>;
}

interface Enrolled {
  spiffe_id: string;
  serial: string;
  certificate: string;
  chain: string;
  not_after: string;
  renewal_endpoint: string;
  "x5t#S256": string;
}

beforeAll(async () => {
  const tls = selfSignedCertificate();
  const keyFile = join(mkdtempSync(join(tmpdir(), "mandate-mtls-")), "key.pem");
  writeFileSync(keyFile, tls.key, { mode: 0o600 });
  serverCa = tls.cert;
  mtlsPort = await freePort();
  server = await startOAuthServer({
    MANDATE_HTTP_MTLS_PORT: String(mtlsPort),
    MANDATE_HTTP_MTLS_CERT_FILE: tls.certFile,
    MANDATE_HTTP_MTLS_KEY_FILE: keyFile,
  });
  await adminClient(Tenants, server.process.summary.grpc as string, server.process.adminFile).createTenant({
    tenant: "other",
    displayName: "Other",
  });
}, 120_000);

afterAll(async () => {
  await server?.stop();
});

async function post(path: string, body: unknown, tenant = "demo"): Promise<Answer> {
  const response = await fetch(`${server.base}/t/${tenant}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return {
    status: response.status,
    headers: Object.fromEntries(response.headers),
    body: (await response.json()) as Record<string, unknown>,
  };
}

/** A POST over the mTLS listener, presenting `client` (certificate PEM with its chain, and key). */
function mtlsPost(path: string, body: unknown, client?: { cert: string; key: string }, tenant = "demo") {
  return new Promise<Answer>((resolve, reject) => {
    const payload = JSON.stringify(body);
    const req = request(
      {
        host: "127.0.0.1",
        port: mtlsPort,
        path: `/t/${tenant}${path}`,
        method: "POST",
        ca: serverCa,
        ...(client ?? {}),
        headers: { "content-type": "application/json", "content-length": Buffer.byteLength(payload) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: JSON.parse(Buffer.concat(chunks).toString("utf8")) as Record<string, unknown>,
          }),
        );
      },
    );
    req.on("error", reject);
    req.end(payload);
  });
}

async function get(path: string, tenant = "demo"): Promise<Response> {
  return fetch(`${server.base}/t/${tenant}${path}`);
}

async function newAgent(tenant = "demo"): Promise<string> {
  return registerKeylessAgent(server, { clientName: "enrolling agent" }, tenant);
}

async function enrollmentToken(clientId: string, tenant = "demo"): Promise<string> {
  return (await server.issue.createAgentEnrollmentToken({ tenant, clientId })).token;
}

/** Enrolls a new key of `type` for the agent with a fresh token: the key and the answer. */
async function enroll(clientId: string, type: KeyType = "ec", tenant = "demo") {
  const key = privateKey(type);
  const answer = await post(
    "/agents/enroll",
    { csr: csr(key.keyPem).pem, enrollment_token: await enrollmentToken(clientId, tenant) },
    tenant,
  );
  return { key, answer, enrolled: answer.body as unknown as Enrolled };
}

function tlsClient(enrolled: Enrolled, key: PkiKey) {
  return { cert: enrolled.certificate + enrolled.chain, key: key.keyPem };
}

function uris(pem: string): string[] {
  const san = new X509Certificate(pem).subjectAltName ?? "";
  return san
    .split(", ")
    .filter((s) => s.startsWith("URI:"))
    .map((s) => s.slice(4));
}

function tempFile(name: string, content: string | Uint8Array): string {
  const file = join(mkdtempSync(join(tmpdir(), "mandate-agent-")), name);
  writeFileSync(file, content);
  return file;
}

async function trustBundlePem(tenant = "demo"): Promise<string> {
  return (await get("/agents/trust-bundle.pem", tenant)).text();
}

/** `openssl verify` of an issued certificate against the published bundle (roots trusted, intermediates not). */
async function opensslVerify(enrolled: Enrolled): Promise<string> {
  const bundle = await trustBundlePem();
  const certificates = bundle.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----\n?/g) ?? [];
  const roots = certificates.filter((pem) => new X509Certificate(pem).checkIssued(new X509Certificate(pem)));
  return execFileSync(
    "openssl",
    [
      "verify",
      "-purpose",
      "sslclient",
      "-CAfile",
      tempFile("roots.pem", roots.join("")),
      "-untrusted",
      tempFile("chain.pem", enrolled.chain),
      tempFile("cert.pem", enrolled.certificate),
    ],
    { encoding: "utf8" },
  );
}

describe("enrollment with a one-time token", () => {
  it("issues an X.509-SVID naming only the agent's SPIFFE ID, verifiable by openssl against the bundle", async () => {
    const clientId = await newAgent();
    const { answer, enrolled } = await enroll(clientId);
    expect(answer.status).toBe(200);
    expect(answer.headers["cache-control"]).toBe("no-store");
    expect(enrolled.spiffe_id).toBe(`spiffe://${TRUST_DOMAIN}/agent/${clientId}`);
    expect(uris(enrolled.certificate)).toEqual([enrolled.spiffe_id]);
    const certificate = new X509Certificate(enrolled.certificate);
    expect(certificate.serialNumber.toUpperCase()).toBe(enrolled.serial);
    expect(certificate.ca).toBe(false);
    expect(new Date(enrolled.not_after).getTime() - Date.now()).toBeLessThanOrEqual(3_600_000 + 1000);
    expect(enrolled.renewal_endpoint).toContain("/t/demo/agents/renew");
    expect(await opensslVerify(enrolled)).toContain("OK");

    const { certificates } = await server.issue.listAgentCertificates({ tenant: "demo", clientId });
    expect(certificates.map((c) => [c.serial, c.proof, c.spiffeId, c.x5tS256])).toEqual([
      [enrolled.serial, "enrollment_token", enrolled.spiffe_id, enrolled["x5t#S256"]],
    ]);
  });

  it("accepts P-384, Ed25519 and RSA keys", async () => {
    const clientId = await newAgent();
    for (const type of ["ec-p384", "ed25519", "rsa-3072"] as const) {
      const { answer, enrolled } = await enroll(clientId, type);
      expect(answer.status, type).toBe(200);
      expect(uris(enrolled.certificate)).toEqual([`spiffe://${TRUST_DOMAIN}/agent/${clientId}`]);
    }
  });

  it("refuses a second use of the token, a token of another tenant and an unknown token (invalid_grant)", async () => {
    const clientId = await newAgent();
    const token = await enrollmentToken(clientId);
    const key = privateKey("ec");
    expect((await post("/agents/enroll", { csr: csr(key.keyPem).pem, enrollment_token: token })).status).toBe(200);
    const again = await post("/agents/enroll", { csr: csr(key.keyPem).pem, enrollment_token: token });
    expect(again.status).toBe(400);
    expect(again.body).toEqual({
      error: "invalid_grant",
      error_description: "the enrollment token was already used; ask for a new one",
    });

    const otherToken = await enrollmentToken(await newAgent("other"), "other");
    const crossTenant = await post("/agents/enroll", { csr: csr(key.keyPem).pem, enrollment_token: otherToken });
    expect(crossTenant.status).toBe(400);
    expect(crossTenant.body.error).toBe("invalid_grant");
    expect(crossTenant.body.error_description).toBe("the enrollment token is not valid for this tenant");

    const unknown = await post("/agents/enroll", {
      csr: csr(key.keyPem).pem,
      enrollment_token: `mandate_enroll_${"A".repeat(43)}`,
    });
    expect(unknown.body.error).toBe("invalid_grant");
  });

  it("refuses each CSR problem precisely (invalid_request) and spends no token on it", async () => {
    const clientId = await newAgent();
    const token = await enrollmentToken(clientId);
    const refused = async (csrPem: unknown) => {
      const answer = await post("/agents/enroll", { csr: csrPem, enrollment_token: token });
      expect(answer.status).toBe(400);
      expect(answer.body.error).toBe("invalid_request");
      return answer.body.error_description as string;
    };
    expect(await refused(csr(privateKey("rsa-1024").keyPem).pem)).toBe(
      "bad CSR: RSA keys must have 2048 to 8192 bits, not 1024",
    );
    expect(await refused(csr(privateKey("ec-secp256k1").keyPem).pem)).toBe(
      "bad CSR: EC keys must be on P-256 or P-384, not secp256k1",
    );
    expect(await refused(csr(privateKey("ed448").keyPem).pem)).toContain("ed448 keys are not accepted");
    expect(await refused(dsaCsr())).toContain("dsa keys are not accepted");
    expect(await refused(tamperedCsr())).toBe(
      "bad CSR: the CSR's signature does not verify with its public key (RFC 2986 §3)",
    );
    expect(await refused("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n")).toBe(
      "bad CSR: the CSR is not a PKCS#10 certification request (RFC 2986)",
    );
    expect(await refused("not pem")).toContain("the CSR must be PEM");
    expect(await refused(42)).toBe('"csr" must be a string');
    expect(await refused(undefined)).toContain('"csr" is required');
    // None of these spent the token.
    const key = privateKey("ec");
    expect((await post("/agents/enroll", { csr: csr(key.keyPem).pem, enrollment_token: token })).status).toBe(200);
  });

  it("refuses bodies that are not a JSON object with exactly one proof", async () => {
    const key = privateKey("ec");
    const pem = csr(key.keyPem).pem;
    const both = await post("/agents/enroll", { csr: pem, enrollment_token: "x", attestation: "y" });
    expect(both.body).toEqual({
      error: "invalid_request",
      error_description: 'give exactly one of "enrollment_token" and "attestation"',
    });
    expect((await post("/agents/enroll", { csr: pem })).body.error).toBe("invalid_request");
    expect((await post("/agents/enroll", [pem])).body.error).toBe("invalid_request");
    const form = await fetch(`${server.issuer}/agents/enroll`, { method: "POST", body: "csr=x" });
    expect(form.status).toBe(400);
    const huge = await post("/agents/enroll", { csr: "x".repeat(100_000), enrollment_token: "y" });
    expect(huge.status).toBe(400);
    expect((await fetch(`${server.issuer}/agents/enroll`)).status).toBe(405);
  });

  it("gives a CSR that asks for another SPIFFE ID, CA:TRUE and extra SANs only its own SPIFFE ID", async () => {
    const clientId = await newAgent();
    const other = await newAgent();
    const key = privateKey("ec");
    const greedy = opensslCsr(key, [
      "-subj",
      "/CN=root of everything/O=Mandate",
      "-addext",
      `subjectAltName=URI:spiffe://${TRUST_DOMAIN}/agent/${other},DNS:mandate.example,URI:spiffe://${TRUST_DOMAIN}/admin`,
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    const answer = await post("/agents/enroll", { csr: greedy, enrollment_token: await enrollmentToken(clientId) });
    expect(answer.status).toBe(200);
    const issued = new X509Certificate((answer.body as unknown as Enrolled).certificate);
    expect(issued.subjectAltName).toBe(`URI:spiffe://${TRUST_DOMAIN}/agent/${clientId}`);
    expect(issued.ca).toBe(false);
    expect(issued.subject).not.toContain("root of everything");
    expect(issued.keyUsage ?? []).not.toContain("Certificate Sign");
  });

  it("voids the outstanding tokens of an agent that is deleted", async () => {
    const clientId = await newAgent();
    const token = await enrollmentToken(clientId);
    await server.issue.deleteClient({ tenant: "demo", clientId });
    const key = privateKey("ec");
    const answer = await post("/agents/enroll", { csr: csr(key.keyPem).pem, enrollment_token: token });
    expect(answer.status).toBe(400);
    expect(answer.body).toEqual({
      error: "invalid_grant",
      error_description: "the enrollment token has expired; ask for a new one",
    });
  });
});

describe("enrollment with a workload attestation", () => {
  it("issues to the agent its attested workload is bound to, once per attestation; refuses a forged one", async () => {
    const clientId = await newAgent();
    const platform = await generateKeyPair("ES256");
    const jwk = { ...(await exportJWK(platform.publicKey)), kid: "cluster-1", alg: "ES256", use: "sig" };
    const name = `k8s-${randomUUID().slice(0, 8)}`;
    const issuer = `https://${name}.cluster.example`;
    await server.issue.createAgentAttestor({
      tenant: "demo",
      name,
      issuer,
      audience: "mandate",
      keys: { case: "jwks", value: { keys: [jwk] } },
    });
    const subject = "system:serviceaccount:agents:bot";
    await server.issue.bindAgentWorkload({ tenant: "demo", attestor: name, subject, clientId });
    const attestation = (key: CryptoKey) =>
      new SignJWT({})
        .setProtectedHeader({ alg: "ES256", kid: "cluster-1" })
        .setIssuer(issuer)
        .setAudience("mandate")
        .setSubject(subject)
        .setIssuedAt()
        .setExpirationTime("10m")
        .setJti(randomUUID())
        .sign(key);
    const key = privateKey("ec");
    const jwt = await attestation(platform.privateKey);
    const answer = await post("/agents/enroll", { csr: csr(key.keyPem).pem, attestation: jwt });
    expect(answer.status).toBe(200);
    expect((answer.body as unknown as Enrolled).spiffe_id).toBe(`spiffe://${TRUST_DOMAIN}/agent/${clientId}`);
    const { certificates } = await server.issue.listAgentCertificates({ tenant: "demo", clientId });
    expect(certificates.map((c) => c.proof)).toEqual([`attestation:${name}`]);

    const replayed = await post("/agents/enroll", { csr: csr(key.keyPem).pem, attestation: jwt });
    expect(replayed.status).toBe(400);
    expect(replayed.body.error).toBe("invalid_grant");
    expect(replayed.body.error_description).toContain("(replayed)");
    const forged = await post("/agents/enroll", {
      csr: csr(key.keyPem).pem,
      attestation: await attestation((await generateKeyPair("ES256")).privateKey),
    });
    expect(forged.body.error).toBe("invalid_grant");
    expect(forged.body.error_description).toContain("(bad_signature)");
  });
});

describe("renewal over mTLS", () => {
  it("renews with the current certificate (same or new key) and records the renewal", async () => {
    const clientId = await newAgent();
    const { key, enrolled } = await enroll(clientId);
    const sameKey = await mtlsPost("/agents/renew", { csr: csr(key.keyPem).pem }, tlsClient(enrolled, key));
    expect(sameKey.status).toBe(200);
    const renewed = sameKey.body as unknown as Enrolled;
    expect(renewed.spiffe_id).toBe(enrolled.spiffe_id);
    expect(renewed.serial).not.toBe(enrolled.serial);

    const newKey = privateKey("ed25519");
    const rotated = await mtlsPost("/agents/renew", { csr: csr(newKey.keyPem).pem }, tlsClient(renewed, key));
    expect(rotated.status).toBe(200);
    const { certificates } = await server.issue.listAgentCertificates({ tenant: "demo", clientId });
    expect(certificates.map((c) => [c.proof, c.renewedFrom])).toEqual(
      expect.arrayContaining([
        ["renewal", renewed.serial],
        ["renewal", enrolled.serial],
        ["enrollment_token", ""],
      ]),
    );
  });

  it("refuses a renewal without a certificate (invalid_request) or with one openssl's own CA made (unknown_ca)", async () => {
    const key = privateKey("ec");
    const without = await mtlsPost("/agents/renew", { csr: csr(key.keyPem).pem });
    expect(without.status).toBe(400);
    expect(without.body.error_description).toContain("connect over mutual TLS");

    const clientId = await newAgent();
    const root = rootCa();
    const intermediate = intermediateCa(root);
    const forged = leafCertificate(intermediate, { key, uris: [`spiffe://${TRUST_DOMAIN}/agent/${clientId}`] });
    const answer = await mtlsPost(
      "/agents/renew",
      { csr: csr(key.keyPem).pem },
      { cert: forged.pem + intermediate.pem, key: key.keyPem },
    );
    expect(answer.status).toBe(403);
    expect(answer.body.error).toBe("access_denied");
    expect(answer.body.error_description).toContain("(unknown_ca)");
  });

  it("refuses another tenant's agent certificate", async () => {
    const { key, enrolled } = await enroll(await newAgent("other"), "ec", "other");
    expect(enrolled.spiffe_id).toContain("spiffe://other.agents.mandate.local/agent/");
    const answer = await mtlsPost("/agents/renew", { csr: csr(key.keyPem).pem }, tlsClient(enrolled, key));
    expect(answer.status).toBe(403);
    expect(answer.body.error_description).toMatch(/\((unknown_ca|unknown_intermediate|trust_domain)\)/);
  });
});

describe("revocation", () => {
  it("denies a revoked serial at once, lists it on a CRL that openssl verifies, and stops renewal", async () => {
    const clientId = await newAgent();
    const first = await enroll(clientId);
    const second = await enroll(clientId);
    const { revokedCount } = await server.issue.revokeAgentCertificates({
      tenant: "demo",
      clientId,
      serial: first.enrolled.serial,
      reason: "keyCompromise",
    });
    expect(revokedCount).toBe(1);
    const refused = await mtlsPost(
      "/agents/renew",
      { csr: csr(first.key.keyPem).pem },
      tlsClient(first.enrolled, first.key),
    );
    expect(refused.status).toBe(403);
    expect(refused.body.error_description).toContain("(revoked)");
    // The other certificate still renews.
    const ok = await mtlsPost(
      "/agents/renew",
      { csr: csr(second.key.keyPem).pem },
      tlsClient(second.enrolled, second.key),
    );
    expect(ok.status).toBe(200);

    const crlUrl = crlUrlOf(first.enrolled.certificate);
    const response = await fetch(crlUrl);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("application/pkix-crl");
    expect(response.headers.get("cache-control")).toMatch(/^public, max-age=\d+$/);
    const crlFile = tempFile("agents.crl", new Uint8Array(await response.arrayBuffer()));
    const text = execFileSync(
      "openssl",
      [
        "crl",
        "-inform",
        "DER",
        "-in",
        crlFile,
        "-CAfile",
        tempFile("ca.pem", await trustBundlePem()),
        "-noout",
        "-text",
      ],
      { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] },
    );
    expect(text).toContain(first.enrolled.serial);
    expect(text).not.toContain(second.enrolled.serial);
    expect(text).toContain("Key Compromise");
    const verified = execFileSync(
      "openssl",
      ["crl", "-inform", "DER", "-in", crlFile, "-CAfile", tempFile("ca.pem", await trustBundlePem()), "-noout"],
      { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] },
    );
    expect(verified).toBe("");
    // Revoking everything: the second is denied too, and the agent's outstanding token is spent.
    const token = await enrollmentToken(clientId);
    expect((await server.issue.revokeAgentCertificates({ tenant: "demo", clientId })).revokedCount).toBe(2);
    const after = await mtlsPost(
      "/agents/renew",
      { csr: csr(second.key.keyPem).pem },
      tlsClient(ok.body as unknown as Enrolled, second.key),
    );
    expect(after.status).toBe(403);
    const tokenAfter = await post("/agents/enroll", { csr: csr(second.key.keyPem).pem, enrollment_token: token });
    expect(tokenAfter.body.error).toBe("invalid_grant");
    const listed = await server.issue.listAgentCertificates({ tenant: "demo", clientId });
    expect(listed.certificates.every((c) => c.revokeTime !== undefined)).toBe(true);
  });

  it("revokes an agent's certificates when the agent is deleted", async () => {
    const clientId = await newAgent();
    const { key, enrolled } = await enroll(clientId);
    await server.issue.deleteClient({ tenant: "demo", clientId });
    const answer = await mtlsPost("/agents/renew", { csr: csr(key.keyPem).pem }, tlsClient(enrolled, key));
    expect(answer.status).toBe(403);
    const crl = new Uint8Array(await (await fetch(crlUrlOf(enrolled.certificate))).arrayBuffer());
    const text = execFileSync("openssl", ["crl", "-inform", "DER", "-in", tempFile("a.crl", crl), "-noout", "-text"], {
      encoding: "utf8",
    });
    expect(text).toContain(enrolled.serial);
    expect(text).toContain("Cessation Of Operation");
  });
});

describe("trust bundle", () => {
  it("publishes roots then intermediates as PEM, and the SPIFFE bundle as a JWK Set", async () => {
    const pemResponse = await get("/agents/trust-bundle.pem");
    expect(pemResponse.status).toBe(200);
    expect(pemResponse.headers.get("content-type")).toBe("application/pem-certificate-chain");
    expect(pemResponse.headers.get("cache-control")).toMatch(/^public, max-age=\d+$/);
    const certificates = ((await pemResponse.text()).match(
      /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g,
    ) ?? []) as string[];
    expect(certificates.length).toBeGreaterThanOrEqual(2);
    const first = new X509Certificate(certificates[0] as string);
    expect(first.checkIssued(first)).toBe(true); // a root first
    const json = await get("/agents/trust-bundle.json");
    expect(json.headers.get("content-type")).toBe("application/json");
    const bundle = (await json.json()) as { keys: Array<{ use: string; x5c: string[] }>; spiffe_sequence: number };
    expect(bundle.keys.length).toBeGreaterThanOrEqual(1);
    expect(bundle.keys[0]?.use).toBe("x509-svid");
    expect(new X509Certificate(Buffer.from(bundle.keys[0]?.x5c[0] as string, "base64")).raw).toEqual(first.raw);
    expect((await get("/agents/crl/nosuchkid.crl")).status).toBe(404);
  });
});

describe("admin RPCs", () => {
  const grpc = (interceptors: Parameters<typeof createGrpcTransport>[0]["interceptors"] = []) =>
    createClient(Issue, createGrpcTransport({ baseUrl: `http://${server.process.summary.grpc}`, interceptors }));

  it("answer a tenant admin, refuse an unauthenticated caller and another tenant's admin", async () => {
    const clientId = await newAgent();
    const admin = grpc([await server.caller("mandate:tenant-admin")]);
    const created = await admin.createAgentEnrollmentToken({ tenant: "demo", clientId, ttl: { seconds: 600n } });
    expect(created.token).toMatch(/^mandate_enroll_[A-Za-z0-9_-]{43}$/);
    const expiry = Number(created.expireTime?.seconds) * 1000;
    expect(expiry).toBeGreaterThan(Date.now() + 590_000);
    expect(expiry).toBeLessThan(Date.now() + 610_000);

    expect((await rpcError(grpc().createAgentEnrollmentToken({ tenant: "demo", clientId }))).code).toBe(
      Code.Unauthenticated,
    );
    const otherAdmin = grpc([await server.caller("mandate:tenant-admin", "other")]);
    for (const call of [
      () => otherAdmin.createAgentEnrollmentToken({ tenant: "demo", clientId }),
      () => otherAdmin.listAgentCertificates({ tenant: "demo", clientId }),
      () => otherAdmin.revokeAgentCertificates({ tenant: "demo", clientId }),
    ]) {
      expect((await rpcError(call())).code).toBe(Code.PermissionDenied);
    }
  });

  it("answer NOT_FOUND for an unknown client or serial and FAILED_PRECONDITION for a client that is not an agent", async () => {
    const { clientId: application } = await server.register({ grantTypes: ["client_credentials"] });
    const notAgent = await rpcError(server.issue.createAgentEnrollmentToken({ tenant: "demo", clientId: application }));
    expect(notAgent.code).toBe(Code.FailedPrecondition);
    expect((await rpcError(server.issue.listAgentCertificates({ tenant: "demo", clientId: "nobody" }))).code).toBe(
      Code.NotFound,
    );
    const clientId = await newAgent();
    expect(
      (await rpcError(server.issue.revokeAgentCertificates({ tenant: "demo", clientId, serial: "ABCDEF" }))).code,
    ).toBe(Code.NotFound);
    expect(
      (await rpcError(server.issue.revokeAgentCertificates({ tenant: "demo", clientId, reason: "whim" }))).code,
    ).toBe(Code.InvalidArgument);
  });
});

/** The CRL distribution point the CA put in the certificate (RFC 5280 §4.2.1.13). */
function crlUrlOf(pem: string): string {
  const text = execFileSync("openssl", ["x509", "-noout", "-ext", "crlDistributionPoints"], {
    input: pem,
    encoding: "utf8",
  });
  const url = /URI:(\S+)/.exec(text)?.[1];
  if (!url) throw new Error(`no CRL distribution point in the certificate: ${text}`);
  return url;
}

/** A CSR made by `openssl req` with extra arguments (extensions an agent should not get). */
function opensslCsr(key: PkiKey, args: string[]): string {
  return execFileSync("openssl", ["req", "-new", "-key", key.keyFile, ...args], { encoding: "utf8" });
}

/** A CSR of a DSA key (openssl), which no agent certificate may have. */
function dsaCsr(): string {
  const dir = mkdtempSync(join(tmpdir(), "mandate-dsa-"));
  const quiet = { stdio: "ignore" } as const;
  const params = ["-genparam", "-algorithm", "DSA", "-pkeyopt", "dsa_paramgen_bits:2048", "-out", join(dir, "p.pem")];
  execFileSync("openssl", ["genpkey", ...params], quiet);
  execFileSync("openssl", ["genpkey", "-paramfile", join(dir, "p.pem"), "-out", join(dir, "k.pem")], quiet);
  return execFileSync("openssl", ["req", "-new", "-key", join(dir, "k.pem"), "-subj", "/CN=dsa"], { encoding: "utf8" });
}

/** A valid CSR whose signature's last byte was changed: no proof of possession. */
function tamperedCsr(): string {
  const { der } = csr(privateKey("rsa").keyPem);
  const bytes = Buffer.from(der);
  bytes[bytes.length - 1] = (bytes[bytes.length - 1] as number) ^ 0x01;
  const body = bytes.toString("base64").replace(/(.{64})/g, "$1\n");
  return `-----BEGIN CERTIFICATE REQUEST-----\n${body}\n-----END CERTIFICATE REQUEST-----\n`;
}
