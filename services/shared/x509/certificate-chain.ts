// Verifying an agent's client certificate against its tenant's trust bundle (RFC 5280 §6 path
// validation, restricted to what agent certificates are) and the SPIFFE X509-SVID leaf rules (§5.2).
//
// The path is leaf → intermediate → root, or leaf → root. Only the bundle's certificates are ever
// trusted: intermediates the client sent along are hints that only make the refusal precise (an
// issuer the client sent but the bundle lacks is "unknown_intermediate"). Checks run in an order
// that trusts nothing the certificate says before its signature chains to a bundle root:
//   parse → path (unknown_ca / bad_signature / unknown_intermediate, the intermediate's CA flag and
//   keyCertSign) → validity of every certificate on the path → the leaf's profile (ca_certificate,
//   key_usage, extended_key_usage) → its SPIFFE ID (spiffe_id, trust_domain) → the deny list (revoked).
// Each refusal's message says exactly what was wrong: it is for logs; callers map the reason to a
// standard error.
import { X509Certificate } from "node:crypto";
import { agentOfSpiffeId, parseSpiffeId } from "./spiffe.ts";
import {
  allowsClientAuth,
  type CertificateProfile,
  certificateProfile,
  hasKeyUsage,
  isCa,
  KeyUsageFlags,
} from "./svid-conformance.ts";
import { x5tS256 } from "./thumbprint.ts";
import { CertificateRefused, type PresentedCertificate, type VerifiedAgentCertificate } from "./types.ts";

export interface AgentCertificateTrust {
  /** The tenant's agent CA roots (trust anchors). */
  roots: readonly X509Certificate[];
  /** The tenant's current intermediates (the only ones ever trusted). */
  intermediates: readonly X509Certificate[];
  /** The tenant's agent trust domain: leaves must name spiffe://<trustDomain>/agent/<client id>. */
  trustDomain: string;
  /** Current time, ms. */
  now: number;
  /** Clock skew tolerated on validity periods (default 60 s). */
  skewMs?: number;
  /** The deny list: whether the serial (hex, upper case) is revoked. */
  isRevoked(serialHexUpper: string): boolean | Promise<boolean>;
}

const DEFAULT_SKEW_MS = 60_000;

export async function verifyAgentCertificate(
  presented: PresentedCertificate,
  trust: AgentCertificateTrust,
): Promise<VerifiedAgentCertificate> {
  const leaf = parse(presented.leaf, "the leaf");
  const hints = presented.chain.map((der, i) => parse(der, `certificate ${i + 1} of the chain the client sent`));
  const leafProfile = certificateProfile(presented.leaf);
  const path = certificationPath(leaf, leafProfile, hints, trust);
  for (const certificate of [leaf, ...path]) checkValidity(certificate, certificate === leaf, trust);
  checkLeafProfile(leafProfile);
  const { spiffeId, clientId } = agentIdentity(leafProfile, trust.trustDomain);
  const serial = leaf.serialNumber.toUpperCase();
  if (await trust.isRevoked(serial)) {
    throw new CertificateRefused("revoked", `the certificate (serial ${serial}, ${spiffeId}) is revoked`);
  }
  return {
    spiffeId,
    trustDomain: trust.trustDomain,
    clientId,
    serial,
    x5tS256: x5tS256(presented.leaf),
    notBefore: leaf.validFromDate.getTime(),
    notAfter: leaf.validToDate.getTime(),
  };
}

function parse(der: Uint8Array, what: string): X509Certificate {
  try {
    return new X509Certificate(der);
  } catch (error) {
    throw new CertificateRefused("malformed", `${what} is not a DER X.509 certificate: ${(error as Error).message}`);
  }
}

/** RFC 5280 §6.1.3 (a)(1), (a)(4): the bundle certificates above the leaf, leaf excluded, root last. */
function certificationPath(
  leaf: X509Certificate,
  leafProfile: CertificateProfile,
  hints: readonly X509Certificate[],
  trust: AgentCertificateTrust,
): X509Certificate[] {
  const named = [...trust.roots, ...trust.intermediates].filter((ca) => ca.subject === leaf.issuer);
  if (named.length === 0) throw unknownIssuer(leaf, hints, trust);
  // Rotated intermediates may share a name: the one whose key verifies the signature is the issuer.
  const issuer = named.find((ca) => signedBy(leaf, ca));
  if (!issuer) throw signatureRefusal(leaf, leafProfile, named, trust);
  if (trust.roots.includes(issuer)) return [issuer];
  return [issuer, rootOf(issuer, trust)];
}

/**
 * The refusal for a leaf named after bundle CAs whose keys do not verify it. RFC 5280 §4.2.1.1: its
 * authorityKeyIdentifier names the key that signed it; when no CA of that name has that key, another
 * CA of the same name issued it (another tenant's, or an intermediate newer than this bundle: callers
 * refresh a cached bundle on unknown_*). Otherwise the signature is bad.
 */
function signatureRefusal(
  leaf: X509Certificate,
  leafProfile: CertificateProfile,
  named: readonly X509Certificate[],
  trust: AgentCertificateTrust,
): CertificateRefused {
  const keyId = leafProfile.authorityKeyId;
  if (keyId && !named.some((ca) => bundleProfile(ca).subjectKeyId === keyId)) {
    const intermediate = named.some((ca) => !trust.roots.includes(ca));
    return new CertificateRefused(
      intermediate ? "unknown_intermediate" : "unknown_ca",
      `the leaf's issuer "${leaf.issuer}" is named like a CA of the tenant's trust bundle, but its key (authorityKeyIdentifier ${keyId}) is none the bundle holds`,
    );
  }
  return new CertificateRefused(
    "bad_signature",
    `the leaf names the bundle CA "${leaf.issuer}" as its issuer, but its signature does not verify with that CA's key`,
  );
}

/** Bundle certificates are long-lived objects: their profiles are read once. */
const bundleProfiles = new WeakMap<X509Certificate, CertificateProfile>();

function bundleProfile(certificate: X509Certificate): CertificateProfile {
  let profile = bundleProfiles.get(certificate);
  if (!profile) {
    profile = certificateProfile(new Uint8Array(certificate.raw));
    bundleProfiles.set(certificate, profile);
  }
  return profile;
}

/**
 * The refusal for a leaf whose issuer is not in the bundle: an intermediate the client sent that one
 * of our roots signed (retired, or never published) is "unknown_intermediate"; anything else (another
 * tenant's or a foreign CA, with or without its intermediates) chains to none of our roots.
 */
function unknownIssuer(
  leaf: X509Certificate,
  hints: readonly X509Certificate[],
  trust: AgentCertificateTrust,
): CertificateRefused {
  const sent = hints.find((hint) => hint.subject === leaf.issuer);
  if (sent && trust.roots.some((root) => root.subject === sent.issuer && signedBy(sent, root))) {
    return new CertificateRefused(
      "unknown_intermediate",
      `the leaf's issuer "${leaf.issuer}" is an intermediate the client sent that is not in the tenant's trust bundle`,
    );
  }
  return new CertificateRefused(
    "unknown_ca",
    `the leaf's issuer "${leaf.issuer}" chains to no CA of the tenant's trust bundle${sent ? " (the client sent it as an intermediate)" : ""}`,
  );
}

/** Whether `ca`'s key verifies `certificate`'s signature; a signature that does not even parse does not. */
function signedBy(certificate: X509Certificate, ca: X509Certificate): boolean {
  try {
    return certificate.verify(ca.publicKey);
  } catch {
    return false;
  }
}

/** The bundle root that signed a bundle intermediate, which must be a CA allowed to sign certificates. */
function rootOf(intermediate: X509Certificate, trust: AgentCertificateTrust): X509Certificate {
  const root = trust.roots.find((r) => r.subject === intermediate.issuer && signedBy(intermediate, r));
  if (!root) {
    throw new CertificateRefused(
      "unknown_intermediate",
      `the bundle intermediate "${intermediate.subject}" does not verify against any root of the tenant's trust bundle`,
    );
  }
  const profile = bundleProfile(intermediate);
  // RFC 5280 §6.1.4 (k): an intermediate is a CA certificate.
  if (!isCa(profile)) {
    throw new CertificateRefused(
      "unknown_intermediate",
      `the bundle intermediate "${intermediate.subject}" is not a CA certificate (basicConstraints cA is not true)`,
    );
  }
  // RFC 5280 §6.1.4 (n), X509-SVID §3.2: when keyUsage is present, keyCertSign is set.
  if (profile.keyUsage && !hasKeyUsage(profile, KeyUsageFlags.keyCertSign)) {
    throw new CertificateRefused(
      "key_usage",
      `the bundle intermediate "${intermediate.subject}" may not sign certificates (keyUsage lacks keyCertSign)`,
    );
  }
  // RFC 5280 §6.1.4 (l)-(m): a root limited to path length 0 signs no intermediate.
  if (bundleProfile(root).basicConstraints?.pathLength === 0) {
    throw new CertificateRefused(
      "unknown_intermediate",
      `the root "${root.subject}" has pathLenConstraint 0 and cannot have signed the intermediate "${intermediate.subject}"`,
    );
  }
  return root;
}

/** RFC 5280 §6.1.3 (a)(2): the current time is within each certificate's validity, give or take the skew. */
function checkValidity(certificate: X509Certificate, isLeaf: boolean, trust: AgentCertificateTrust): void {
  const skew = trust.skewMs ?? DEFAULT_SKEW_MS;
  const which = isLeaf ? "the certificate" : `the CA certificate "${certificate.subject}"`;
  if (trust.now + skew < certificate.validFromDate.getTime()) {
    throw new CertificateRefused(
      "not_yet_valid",
      `${which} is not valid before ${certificate.validFromDate.toISOString()}`,
    );
  }
  if (trust.now - skew > certificate.validToDate.getTime()) {
    throw new CertificateRefused("expired", `${which} expired at ${certificate.validToDate.toISOString()}`);
  }
}

/** X509-SVID §5.2 and §4.3-4.4, RFC 5280 §4.2: what lets a certificate authenticate an agent. */
function checkLeafProfile(profile: CertificateProfile): void {
  if (isCa(profile)) {
    throw new CertificateRefused(
      "ca_certificate",
      "the certificate is a CA certificate (basicConstraints cA true), not a leaf",
    );
  }
  const [unknownCritical] = profile.unknownCriticalExtensions;
  if (unknownCritical) {
    throw new CertificateRefused(
      "malformed",
      `the certificate has an unrecognized critical extension ${unknownCritical}`,
    );
  }
  if (!hasKeyUsage(profile, KeyUsageFlags.digitalSignature)) {
    throw new CertificateRefused(
      "key_usage",
      profile.keyUsage ? "keyUsage lacks digitalSignature" : "the certificate has no keyUsage extension",
    );
  }
  if (profile.keyUsage && profile.keyUsage.flags & (KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign)) {
    throw new CertificateRefused("key_usage", "keyUsage of a leaf sets keyCertSign or cRLSign");
  }
  // We require clientAuth itself: anyExtendedKeyUsage is not what the SVID profile issues.
  if (!allowsClientAuth(profile)) {
    throw new CertificateRefused(
      "extended_key_usage",
      `extendedKeyUsage (${profile.extendedKeyUsage?.join(", ")}) does not allow TLS client authentication`,
    );
  }
}

/** X509-SVID §2/§5.2 and the SPIFFE ID spec: one URI SAN, an agent SPIFFE ID in the tenant's trust domain. */
function agentIdentity(profile: CertificateProfile, trustDomain: string): { spiffeId: string; clientId: string } {
  if (profile.uris.length !== 1) {
    throw new CertificateRefused(
      "spiffe_id",
      `the certificate has ${profile.uris.length} URI SANs; exactly one is allowed`,
    );
  }
  const spiffeId = profile.uris[0] as string;
  const id = parseSpiffeId(spiffeId);
  if (typeof id === "string") {
    throw new CertificateRefused("spiffe_id", `the URI SAN ${JSON.stringify(spiffeId)} is not a SPIFFE ID: ${id}`);
  }
  if (id.trustDomain !== trustDomain) {
    throw new CertificateRefused(
      "trust_domain",
      `the SPIFFE ID ${spiffeId} is in the trust domain "${id.trustDomain}", not the tenant's "${trustDomain}"`,
    );
  }
  const clientId = agentOfSpiffeId(spiffeId, trustDomain);
  if (!clientId) {
    throw new CertificateRefused(
      "spiffe_id",
      `the SPIFFE ID ${spiffeId} names no agent (its path is not /agent/<client id>)`,
    );
  }
  return { spiffeId, clientId };
}
