// Source `x509_ca`: a client certificate presented over mutual TLS (or by the configured proxy)
// that chains to an EXTERNAL CA the tenant trusts (trust kind "x509_ca", its CA certificates in PEM;
// the tenant's own agent CA is tls_client_auth's, not this). The client proves possession by the TLS
// handshake; the request names the certificate (subject_token = its x5t#S256, RFC 8705 §3.1) so the
// exchange is explicit. The certificate's name (URI/DNS/email SAN or subject) maps to an agent and
// the token is bound to the certificate (cnf.x5t#S256) unless a DPoP proof binds it instead.
import { X509Certificate } from "node:crypto";
import type { Store } from "../../../../shared/store/store.ts";
import { allowsClientAuth, certificateProfile, isCa } from "../../../../shared/x509/svid-conformance.ts";
import { x5tS256 } from "../../../../shared/x509/thumbprint.ts";
import {
  type FederatedIdentity,
  FederationRefused,
  type FederationSource,
  type FederationVerifyContext,
} from "../source.ts";
import { activeTrusts, type FederationTrust } from "../trusts.ts";
import { mappedClient, trustedIdentity } from "./jwt-assertion.ts";

/** Mandate's subject_token_type for a certificate presented on the connection (RFC 8693 §3 allows URIs). */
export const TOKEN_TYPE_MTLS_CERTIFICATE = "urn:mandate:params:oauth:token-type:mtls-client-certificate";
const MAX_CHAIN = 4;
const SKEW_MS = 60_000;

export class X509CaSource implements FederationSource {
  readonly protocol = "x509_ca";
  readonly subjectTokenTypes = [TOKEN_TYPE_MTLS_CERTIFICATE] as const;
  readonly #store: Store;

  constructor(store: Store) {
    this.#store = store;
  }

  async verify(tenant: string, token: string, context: FederationVerifyContext): Promise<FederatedIdentity> {
    const presented = context.certificate;
    if (!presented) throw new FederationRefused("no client certificate was presented (connect over mutual TLS)");
    const thumbprint = x5tS256(presented.leaf);
    if (token !== thumbprint) {
      throw new FederationRefused("subject_token is not the x5t#S256 of the certificate presented", "invalid_request");
    }
    const leaf = parse(presented.leaf);
    const hints = presented.chain.map(parse);
    const trusts = await activeTrusts(this.#store, tenant, ["x509_ca"], undefined, context.now);
    const trust = trusts.find((candidate) => chainsTo(leaf, hints, anchors(candidate), context.now));
    if (!trust) throw new FederationRefused("the certificate does not chain to a trusted external CA");
    checkLeaf(leaf, presented.leaf, context.now);
    const names = certificateNames(leaf);
    const subject = names.san_uri ?? names.san_dns ?? names.san_email ?? names.subject ?? leaf.subject;
    return {
      ...trustedIdentity(this.protocol, trust, subject, mappedClient(trust, names), leaf.validToDate.getTime()),
      certificateThumbprint: thumbprint,
    };
  }
}

function parse(der: Uint8Array): X509Certificate {
  try {
    return new X509Certificate(der);
  } catch {
    throw new FederationRefused("the presented certificate is not DER X.509", "invalid_request");
  }
}

function anchors(trust: FederationTrust): X509Certificate[] {
  return (trust.verification.certificates ?? []).map((pem) => new X509Certificate(pem));
}

/**
 * RFC 5280 §6.1: a path from the leaf through the intermediates the client sent (each a CA, within
 * validity, checked in checkLeaf/validAt) to one of the trust's CA certificates, every signature verified.
 */
function chainsTo(leaf: X509Certificate, hints: X509Certificate[], roots: X509Certificate[], now: number): boolean {
  let current = leaf;
  for (let depth = 0; depth <= MAX_CHAIN; depth++) {
    const root = roots.find(
      (candidate) => validAt(candidate, now) && current.checkIssued(candidate) && current.verify(candidate.publicKey),
    );
    if (root) return true;
    const next = hints.find(
      (candidate) =>
        candidate !== current &&
        candidate.ca &&
        validAt(candidate, now) &&
        current.checkIssued(candidate) &&
        current.verify(candidate.publicKey),
    );
    if (!next) return false;
    current = next;
  }
  return false;
}

function validAt(certificate: X509Certificate, now: number): boolean {
  return certificate.validFromDate.getTime() - SKEW_MS <= now && now <= certificate.validToDate.getTime() + SKEW_MS;
}

/** RFC 5280 §4.1.2.5 validity, §4.2.1.9 not a CA, §4.2.1.12 EKU clientAuth when present. */
function checkLeaf(leaf: X509Certificate, der: Uint8Array, now: number): void {
  if (leaf.validFromDate.getTime() - SKEW_MS > now) throw new FederationRefused("the certificate is not yet valid");
  if (leaf.validToDate.getTime() + SKEW_MS < now) throw new FederationRefused("the certificate has expired");
  const profile = certificateProfile(der);
  if (isCa(profile)) throw new FederationRefused("a CA certificate cannot authenticate a client");
  if (!allowsClientAuth(profile)) throw new FederationRefused("the certificate's extendedKeyUsage excludes clientAuth");
  if (profile.unknownCriticalExtensions.length > 0) {
    throw new FederationRefused("the certificate has a critical extension Mandate does not process (RFC 5280 §4.2)");
  }
}

/** The names a mapping can read: the first URI, DNS and email SANs, and the subject DN. */
function certificateNames(leaf: X509Certificate): Record<string, string | undefined> {
  const sans = (leaf.subjectAltName ?? "").split(/,\s*/);
  const first = (prefix: string) => sans.find((name) => name.startsWith(prefix))?.slice(prefix.length);
  return {
    san_uri: first("URI:"),
    san_dns: first("DNS:"),
    san_email: first("email:"),
    subject: leaf.subject.replaceAll("\n", ","),
  };
}
