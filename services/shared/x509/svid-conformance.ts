// The SPIFFE X.509-SVID profile (spiffe/spiffe standards/X509-SVID.md): reading the extensions
// node:crypto does not expose (basic constraints, key usage bits, EKU, URI SANs; via @peculiar/x509)
// and checking a certificate against the profile. certificate-chain.ts refuses agent certificates on
// the security-relevant subset; svidProblems is the full conformance check of what our CA issues.
import "reflect-metadata";
import { webcrypto } from "node:crypto";
import * as x509 from "@peculiar/x509";
import { parseSpiffeId } from "./spiffe.ts";
import { CertificateRefused } from "./types.ts";

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

/** Key usage bits; re-exported so users need not load @peculiar/x509 before its reflect-metadata polyfill. */
export const KeyUsageFlags = x509.KeyUsageFlags;

const CLIENT_AUTH = "1.3.6.1.5.5.7.3.2";
const SERVER_AUTH = "1.3.6.1.5.5.7.3.1";
const SUBJECT_ALT_NAME = "2.5.29.17";
/** RFC 5280 §4.2: extensions this code processes; a critical one outside this set fails the certificate. */
const UNDERSTOOD_EXTENSIONS = new Set([
  "2.5.29.14", // subjectKeyIdentifier
  "2.5.29.15", // keyUsage
  SUBJECT_ALT_NAME,
  "2.5.29.19", // basicConstraints
  "2.5.29.35", // authorityKeyIdentifier
  "2.5.29.37", // extKeyUsage
]);

/** What the profile checks read from a certificate. */
export interface CertificateProfile {
  /** basicConstraints, or undefined when the extension is absent (RFC 5280: then not a CA). */
  basicConstraints: { ca: boolean; pathLength: number | undefined; critical: boolean } | undefined;
  /** keyUsage bits (x509.KeyUsageFlags), or undefined when absent. */
  keyUsage: { flags: number; critical: boolean } | undefined;
  /** extKeyUsage OIDs, or undefined when absent. */
  extendedKeyUsage: string[] | undefined;
  /** URI SANs in order. */
  uris: string[];
  sanCritical: boolean;
  subjectEmpty: boolean;
  /** authorityKeyIdentifier keyIdentifier (hex, lower case), when present. */
  authorityKeyId: string | undefined;
  /** subjectKeyIdentifier (hex, lower case), when present. */
  subjectKeyId: string | undefined;
  /** Critical extensions outside the ones this code understands (RFC 5280 §4.2 requires refusing them). */
  unknownCriticalExtensions: string[];
}

/** Reads a certificate's profile; a certificate that does not parse is CertificateRefused("malformed"). */
export function certificateProfile(der: Uint8Array): CertificateProfile {
  let certificate: x509.X509Certificate;
  try {
    certificate = new x509.X509Certificate(new Uint8Array(der));
  } catch (error) {
    throw new CertificateRefused("malformed", `the certificate is not DER X.509: ${(error as Error).message}`);
  }
  try {
    return readProfile(certificate);
  } catch (error) {
    if (error instanceof CertificateRefused) throw error;
    throw new CertificateRefused("malformed", `a certificate extension does not parse: ${(error as Error).message}`);
  }
}

function readProfile(certificate: x509.X509Certificate): CertificateProfile {
  const basic = certificate.getExtension(x509.BasicConstraintsExtension);
  const keyUsage = certificate.getExtension(x509.KeyUsagesExtension);
  const eku = certificate.getExtension(x509.ExtendedKeyUsageExtension);
  const sans = certificate.getExtensions(x509.SubjectAlternativeNameExtension);
  if (sans.length > 1) throw new CertificateRefused("malformed", "the certificate has two subjectAltName extensions");
  const san = sans[0];
  return {
    basicConstraints: basic ? { ca: basic.ca, pathLength: basic.pathLength, critical: basic.critical } : undefined,
    keyUsage: keyUsage ? { flags: keyUsage.usages, critical: keyUsage.critical } : undefined,
    extendedKeyUsage: eku ? eku.usages.map(String) : undefined,
    uris: san ? san.names.items.filter((name) => name.type === "url").map((name) => name.value) : [],
    sanCritical: san?.critical ?? false,
    subjectEmpty: certificate.subjectName.toJSON().length === 0,
    authorityKeyId: certificate.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId?.toLowerCase(),
    subjectKeyId: certificate.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId.toLowerCase(),
    unknownCriticalExtensions: certificate.extensions
      .filter((extension) => extension.critical && !UNDERSTOOD_EXTENSIONS.has(extension.type))
      .map((extension) => extension.type),
  };
}

/** X509-SVID §4.1 / RFC 5280 §4.2.1.9: whether the certificate says it is a CA. */
export function isCa(profile: CertificateProfile): boolean {
  return profile.basicConstraints?.ca === true;
}

/** Whether keyUsage has all of `flags`. */
export function hasKeyUsage(profile: CertificateProfile, flags: number): boolean {
  return profile.keyUsage !== undefined && (profile.keyUsage.flags & flags) === flags;
}

/** RFC 5280 §4.2.1.12: an EKU extension, when present, must allow TLS client authentication. */
export function allowsClientAuth(profile: CertificateProfile): boolean {
  return profile.extendedKeyUsage === undefined || profile.extendedKeyUsage.includes(CLIENT_AUTH);
}

/** The profile, or why the certificate cannot be read: a conformance check reports it as a problem. */
function profileOrProblem(der: Uint8Array): CertificateProfile | string {
  try {
    return certificateProfile(der);
  } catch (error) {
    return (error as Error).message;
  }
}

/** Why a leaf is not a conforming X509-SVID; empty when it conforms. */
export function svidProblems(der: Uint8Array): string[] {
  const profile = profileOrProblem(der);
  if (typeof profile === "string") return [profile];
  return [
    ...leafSpiffeIdProblems(profile),
    ...leafConstraintProblems(profile),
    ...leafKeyUsageProblems(profile),
    ...leafExtendedKeyUsageProblems(profile),
    ...profile.unknownCriticalExtensions.map((oid) => `RFC 5280 §4.2: unrecognized critical extension ${oid}`),
  ];
}

/** Why a CA certificate is not a conforming X509-SVID signing certificate; empty when it conforms. */
export function signingCertificateProblems(der: Uint8Array): string[] {
  const profile = profileOrProblem(der);
  if (typeof profile === "string") return [profile];
  const problems: string[] = [];
  // §3.2, §4.1: a signing certificate is a CA certificate.
  if (!isCa(profile)) problems.push("§4.1: basicConstraints cA is not true on a signing certificate");
  // §4.3: key usage present, critical, keyCertSign set.
  if (!profile.keyUsage) problems.push("§4.3: no keyUsage extension");
  else {
    if (!profile.keyUsage.critical) problems.push("§4.3: keyUsage is not critical");
    if (!hasKeyUsage(profile, x509.KeyUsageFlags.keyCertSign)) problems.push("§4.3: keyCertSign is not set");
  }
  // §3.2: a SPIFFE ID is optional; when present it is one, with no path.
  if (profile.uris.length > 1) problems.push(`§5.2: ${profile.uris.length} URI SANs; at most one is allowed`);
  for (const uri of profile.uris) {
    const id = parseSpiffeId(uri);
    if (typeof id === "string") problems.push(`§2: the URI SAN ${JSON.stringify(uri)} is not a SPIFFE ID: ${id}`);
    else if (id.path !== "") problems.push(`§3.2: the signing certificate's SPIFFE ID ${uri} has a path`);
  }
  return problems;
}

function leafSpiffeIdProblems(profile: CertificateProfile): string[] {
  // §2, §5.2: exactly one URI SAN, the SPIFFE ID.
  if (profile.uris.length !== 1) return [`§2/§5.2: ${profile.uris.length} URI SANs; a leaf SVID has exactly one`];
  const uri = profile.uris[0] as string;
  const id = parseSpiffeId(uri);
  if (typeof id === "string") return [`§2: the URI SAN ${JSON.stringify(uri)} is not a SPIFFE ID: ${id}`];
  const problems: string[] = [];
  // §3.1: a leaf's SPIFFE ID has a non-root path.
  if (id.path === "") problems.push(`§3.1: the leaf's SPIFFE ID ${uri} has no path`);
  // §3.1 / RFC 5280 §4.1.2.6: without a subject, the SAN extension is critical.
  if (profile.subjectEmpty && !profile.sanCritical)
    problems.push("§3.1: empty subject and a non-critical subjectAltName");
  return problems;
}

function leafConstraintProblems(profile: CertificateProfile): string[] {
  // §4.1: leaf certificates set cA false (we require the extension to say so explicitly).
  if (!profile.basicConstraints) return ["§4.1: no basicConstraints extension (a leaf SVID sets cA false)"];
  return profile.basicConstraints.ca ? ["§4.1: basicConstraints cA is true on a leaf"] : [];
}

function leafKeyUsageProblems(profile: CertificateProfile): string[] {
  // §4.3: key usage present and critical; digitalSignature set; keyCertSign and cRLSign not set.
  if (!profile.keyUsage) return ["§4.3: no keyUsage extension"];
  const problems: string[] = [];
  if (!profile.keyUsage.critical) problems.push("§4.3: keyUsage is not critical");
  if (!hasKeyUsage(profile, x509.KeyUsageFlags.digitalSignature)) problems.push("§4.3: digitalSignature is not set");
  if (hasKeyUsage(profile, x509.KeyUsageFlags.keyCertSign)) problems.push("§4.3: keyCertSign is set on a leaf");
  if (hasKeyUsage(profile, x509.KeyUsageFlags.cRLSign)) problems.push("§4.3: cRLSign is set on a leaf");
  return problems;
}

function leafExtendedKeyUsageProblems(profile: CertificateProfile): string[] {
  // §4.4: EKU SHOULD be present; when it is, serverAuth and clientAuth MUST both be set.
  const eku = profile.extendedKeyUsage;
  if (!eku) return [];
  const problems: string[] = [];
  if (!eku.includes(SERVER_AUTH)) problems.push("§4.4: extendedKeyUsage lacks id-kp-serverAuth");
  if (!eku.includes(CLIENT_AUTH)) problems.push("§4.4: extendedKeyUsage lacks id-kp-clientAuth");
  return problems;
}
