// The agent identity HTTP surface of a tenant's authorization server (issue 17):
//   POST /t/{tenant}/agents/enroll            CSR + one-time token or attestation JWT → certificate
//   POST /t/{tenant}/agents/renew             CSR over mTLS with the current certificate → certificate
//   GET  /t/{tenant}/agents/trust-bundle.pem  the CA's roots then intermediates (anonymous, like JWKS)
//   GET  /t/{tenant}/agents/trust-bundle.json the SPIFFE bundle (a JWK Set of x509-svid keys)
//   GET  /t/{tenant}/agents/crl/{kid}.crl     the CRL (RFC 5280 §5) of one intermediate
// Errors are RFC 6749 §5.2-style JSON: invalid_request (body, CSR), invalid_grant (token,
// attestation), access_denied (certificate refused, agent revoked or gone), temporarily_unavailable.
import { X509Certificate } from "node:crypto";
import type { ServerResponse } from "node:http";
import type { Clock } from "../../shared/clock.ts";
import type { Config } from "../../shared/config.ts";
import type { Logger } from "../../shared/logger.ts";
import type { AgentCaClient, RevokedAgentCertificate } from "../../shared/signing.ts";
import type { Store } from "../../shared/store/store.ts";
import { presentedCertificate } from "../../shared/x509/presented-certificate.ts";
import { CertificateRefused } from "../../shared/x509/types.ts";
import type { Visit } from "../oauth/browser.ts";
import { AccessDenied, InvalidGrant, InvalidRequest, TemporarilyUnavailable } from "../oauth/errors.ts";
import { readJson, sendJson } from "../oauth/http.ts";
import { mtlsBaseUrl } from "../oauth/rfc8705.ts";
import { AttestationRefused } from "./attestation.ts";
import { AgentCertificates } from "./certificates.ts";
import { type CheckedCsr, CsrRefused, checkCsr } from "./csr.ts";
import { type AgentAttestor, AgentEnrollment, type EnrolledCertificate } from "./enrollment.ts";
import { TrustBundles } from "./trust-bundles.ts";

/** A CRL is signed for this long; served from cache at most CRL_REUSE_MS, and re-signed at once after a revocation. */
const CRL_VALIDITY_MS = 3_600_000;
const CRL_REUSE_MS = 600_000;
const CRL_MAX_AGE_SECONDS = 60;
/** /agents/crl/<issuer kid>.crl */
const AGENT_CRL_PATH = /^\/agents\/crl\/[A-Za-z0-9_-]{1,128}\.crl$/;

/** The route of a CRL's path below the issuer ("/agents/crl/*"), or undefined when it is not one. */
export function agentCrlRoute(path: string): string | undefined {
  return AGENT_CRL_PATH.test(path) ? "/agents/crl/*" : undefined;
}

export interface AgentEndpointDeps {
  store: Store;
  clock: Clock;
  config: Config;
  logger: Logger;
  agentCa: AgentCaClient;
  /** Workload attestation (attestation.ts); absent: enrollment by token only. */
  attestor?: AgentAttestor | undefined;
}

type Handler = (visit: Visit) => Promise<void>;

interface CachedCrls {
  revoked: string;
  signedAt: number;
  crls: Map<string, Uint8Array>;
}

/** The agent routes, keyed by their path below the tenant's issuer ("/agents/crl/*" for every CRL). */
export function agentRoutes(deps: AgentEndpointDeps): Record<string, Partial<Record<string, Handler>>> {
  const enrollment = new AgentEnrollment(deps);
  const certificates = new AgentCertificates(deps.store);
  const crlCache = new Map<string, CachedCrls>();
  const bundles = new TrustBundles(deps.agentCa, deps.clock);

  const enroll: Handler = async (visit) => {
    const body = await jsonObject(visit);
    const csr = await requestCsr(body);
    const token = optionalString(body, "enrollment_token");
    const attestation = optionalString(body, "attestation");
    if ((token === undefined) === (attestation === undefined)) {
      throw new InvalidRequest('give exactly one of "enrollment_token" and "attestation"');
    }
    const { tenant } = visit.urls;
    const enrolled =
      token !== undefined
        ? await withFailureLimit(visit, () => enrollment.enrollWithToken(tenant, token, csr))
        : await withFailureLimit(visit, async () =>
            enrollment.enrollWithAttestation(tenant, await attest(deps, tenant, attestation as string), csr),
          );
    sendEnrolled(visit, deps.config, enrolled);
  };

  const renew: Handler = async (visit) => {
    const { tenant } = visit.urls;
    const current = await withFailureLimit(visit, () => currentCertificate(visit, deps.config));
    const csr = await requestCsr(await jsonObject(visit));
    sendEnrolled(visit, deps.config, await enrollment.renew(tenant, current, csr));
  };

  const bundlePem: Handler = async ({ res, urls }) => {
    const bundle = await trustBundle(deps, bundles, urls.tenant);
    // Roots first (the anchors), then the intermediates (RFC 8555 §9.1's PEM chain type).
    const pem = [...bundle.roots, ...bundle.intermediates].map((der) => new X509Certificate(der).toString()).join("");
    sendPublic(res, "application/pem-certificate-chain", pem, bundle.maxAgeSeconds);
  };

  const bundleJson: Handler = async ({ res, urls }) => {
    const bundle = await trustBundle(deps, bundles, urls.tenant);
    sendPublic(res, "application/json", JSON.stringify(bundle.spiffeBundle), bundle.maxAgeSeconds);
  };

  const crl: Handler = async ({ req, res, urls }) => {
    const path = (req.url ?? "").split("?")[0] as string;
    const kid = path.slice(path.lastIndexOf("/") + 1, -".crl".length);
    const crls = await currentCrls(urls.tenant);
    const der = crls.get(kid);
    if (!der) {
      sendJson(res, 404, { error: "invalid_request", error_description: `no agent CA intermediate "${kid}"` });
      return;
    }
    sendPublic(res, "application/pkix-crl", Buffer.from(der), CRL_MAX_AGE_SECONDS);
  };

  /** The tenant's CRLs: re-signed when the revoked set changed (a revocation) or the last ones aged. */
  const currentCrls = async (tenant: string): Promise<Map<string, Uint8Array>> => {
    const now = deps.clock.now();
    const revoked = await certificates.revokedUnexpired(tenant, now);
    const key = revokedKey(revoked);
    const cached = crlCache.get(tenant);
    if (cached && cached.revoked === key && now - cached.signedAt < CRL_REUSE_MS) return cached.crls;
    let signed: Array<{ issuerKid: string; der: Uint8Array }>;
    try {
      signed = await deps.agentCa.signCrls(tenant, revoked, now + CRL_VALIDITY_MS);
    } catch (error) {
      deps.logger.warn({ err: error, tenant }, "the agent CA could not sign CRLs");
      throw new TemporarilyUnavailable("the certificate authority is unavailable; retry shortly");
    }
    const crls = new Map(signed.map((c) => [c.issuerKid, c.der]));
    crlCache.set(tenant, { revoked: key, signedAt: now, crls });
    return crls;
  };

  return {
    "/agents/enroll": { POST: enroll },
    "/agents/renew": { POST: renew },
    "/agents/trust-bundle.pem": { GET: bundlePem },
    "/agents/trust-bundle.json": { GET: bundleJson },
    "/agents/crl/*": { GET: crl },
  };
}

async function jsonObject({ req }: Visit): Promise<Record<string, unknown>> {
  const body = await readJson(req);
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new InvalidRequest("the request body must be a JSON object");
  }
  return body as Record<string, unknown>;
}

function optionalString(body: Record<string, unknown>, name: string): string | undefined {
  const value = body[name];
  if (value === undefined || value === null || value === "") return undefined;
  if (typeof value !== "string") throw new InvalidRequest(`"${name}" must be a string`);
  return value;
}

/** The body's "csr" (PEM), checked (csr.ts): invalid_request naming the problem. */
async function requestCsr(body: Record<string, unknown>): Promise<CheckedCsr> {
  const pem = optionalString(body, "csr");
  if (pem === undefined) throw new InvalidRequest('"csr" is required: a PEM PKCS#10 certification request');
  try {
    return await checkCsr(pem);
  } catch (error) {
    if (error instanceof CsrRefused) throw new InvalidRequest(`bad CSR: ${error.message}`);
    throw error;
  }
}

/**
 * Counts failed proofs (a wrong, used or expired token; a refused attestation or certificate) against
 * the client address, like failed client authentications, and refuses while it has failed too often.
 */
async function withFailureLimit<T>(visit: Visit, run: () => Promise<T>): Promise<T> {
  const { limits } = visit.services;
  await limits.beforeClientAuthentication(visit.urls.tenant, undefined, visit.req);
  try {
    return await run();
  } catch (error) {
    if (error instanceof InvalidGrant || error instanceof AccessDenied)
      await limits.clientAuthenticationFailed(visit.urls.tenant, undefined, visit.req);
    throw error;
  }
}

/** The agent an attestation JWT proves; invalid_grant when the attestor refuses it. */
async function attest(
  deps: AgentEndpointDeps,
  tenant: string,
  jwt: string,
): Promise<{ clientId: string; attestor: string }> {
  if (!deps.attestor) throw new InvalidRequest("this server does not accept attestations; use an enrollment token");
  try {
    return await deps.attestor.attest(tenant, jwt);
  } catch (error) {
    if (!(error instanceof AttestationRefused)) throw error;
    deps.logger.info({ tenant, reason: error.reason, detail: error.message }, "agent attestation refused");
    if (error.reason === "jwks_unavailable") {
      throw new TemporarilyUnavailable("the attestor's keys are unavailable; retry shortly");
    }
    throw new InvalidGrant(`the attestation was refused (${error.reason}): ${error.message}`);
  }
}

/** The agent's current certificate, presented over mTLS (or by a configured proxy), verified. */
async function currentCertificate(visit: Visit, config: Config) {
  let presented: ReturnType<typeof presentedCertificate>;
  try {
    presented = presentedCertificate(visit.req, config.http.clientCertificate);
  } catch (error) {
    if (error instanceof CertificateRefused) throw new InvalidRequest(`the client certificate: ${error.message}`);
    throw error;
  }
  if (!presented) {
    throw new InvalidRequest("renewal needs the current certificate: connect over mutual TLS with it");
  }
  try {
    return await visit.services.agentCertificates.verify(visit.urls.tenant, presented);
  } catch (error) {
    if (error instanceof CertificateRefused) {
      throw new AccessDenied(`the current certificate was refused (${error.reason}): ${error.message}`);
    }
    throw error;
  }
}

async function trustBundle(deps: AgentEndpointDeps, bundles: TrustBundles, tenant: string) {
  try {
    return (await bundles.of(tenant)).bundle;
  } catch (error) {
    deps.logger.warn({ err: error, tenant }, "the agent CA's trust bundle is unavailable");
    throw new TemporarilyUnavailable("the certificate authority is unavailable; retry shortly");
  }
}

function sendEnrolled({ res, urls }: Visit, config: Config, enrolled: EnrolledCertificate): void {
  const { certificate } = enrolled;
  const mtlsBase = mtlsBaseUrl(config);
  sendJson(res, 200, {
    spiffe_id: enrolled.spiffeId,
    client_id: enrolled.clientId,
    serial: certificate.serial,
    not_before: new Date(certificate.notBefore).toISOString(),
    not_after: new Date(certificate.notAfter).toISOString(),
    "x5t#S256": enrolled.x5tS256,
    certificate: new X509Certificate(certificate.certificateDer).toString(),
    chain: certificate.chainDer.map((der) => new X509Certificate(der).toString()).join(""),
    // Renewal presents the current certificate: over the mTLS listener when there is one.
    renewal_endpoint: mtlsBase
      ? `${mtlsBase.replace(/\/$/, "")}/t/${urls.tenant}/agents/renew`
      : `${urls.issuer}/agents/renew`,
    trust_bundle: `${urls.issuer}/agents/trust-bundle.pem`,
  });
}

/** Public, cacheable responses (the bundle and CRLs are for anyone, like JWKS). */
function sendPublic(res: ServerResponse, type: string, body: string | Buffer, maxAgeSeconds: number): void {
  res.writeHead(200, {
    "content-type": type,
    "content-length": Buffer.byteLength(body),
    "cache-control": `public, max-age=${Math.max(0, Math.floor(maxAgeSeconds))}`,
    "access-control-allow-origin": "*",
  });
  res.end(body);
}

function revokedKey(revoked: readonly RevokedAgentCertificate[]): string {
  return revoked.map((r) => `${r.serial}:${r.revokedAt}:${r.reason ?? ""}`).join(",");
}
