// The agent CA's certificate and CRL profiles, built with @peculiar/x509 and signed through the key
// backend: the library gets a Crypto whose `sign` is the backend's (raw R||S, which it encodes as the
// DER ECDSA-Sig-Value of RFC 5480 §2.2), so CA private keys never leave the backend (the HSM).
import "reflect-metadata";
import { createHash, createPublicKey, type JsonWebKey, randomBytes, webcrypto } from "node:crypto";
import { AsnConvert } from "@peculiar/asn1-schema";
import {
  AlgorithmIdentifier as AsnAlgorithmIdentifier,
  Extension as AsnExtension,
  Name as AsnName,
  Certificate,
  CRLNumber,
  Extensions,
  GeneralName,
  GeneralSubtree,
  GeneralSubtrees,
  id_ce_cRLNumber,
  id_ce_nameConstraints,
  NameConstraints,
  SubjectPublicKeyInfo,
  TBSCertificate,
  Validity,
  Version,
} from "@peculiar/asn1-x509";
import * as x509 from "@peculiar/x509";
import type { JWK } from "jose";
import type { RevokedAgentCertificate } from "../../shared/signing.ts";

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

/** Agent CA keys are P-256 (rotation.ts); every certificate and CRL they sign is ecdsa-with-SHA256. */
const KEY_ALGORITHM = { name: "ECDSA", namedCurve: "P-256" } as const;
const SIGNING_ALGORITHM = { name: "ECDSA", hash: "SHA-256" } as const;
/** Clock skew allowed for relying parties: certificates are valid from 5 minutes before they are made. */
export const BACKDATE_MS = 5 * 60_000;

/** Signs a to-be-signed structure with the CA key: the backend's raw R||S signature (JWS form). */
export type CaSign = (data: Uint8Array) => Promise<Uint8Array>;

/** A CA certificate, parsed once: what issuing under it needs. */
export interface CaCertificate {
  der: Uint8Array;
  subject: string;
  /** Subject key identifier, hex: the AKI of everything it signs. */
  keyId: string;
  notBefore: number;
  notAfter: number;
}

/** The named attributes Mandate sets in its subjects (RFC 5280 §4.1.2.6); none comes from the agent. */
function subjectName(tenant: string, commonName: string): x509.Name {
  // OIDs (RFC 4519): O 2.5.4.10, OU 2.5.4.11, CN 2.5.4.3. The JSON form needs no escaping of values.
  return new x509.Name([{ "2.5.4.10": ["Mandate"] }, { "2.5.4.11": [tenant] }, { "2.5.4.3": [commonName] }]);
}

/** RFC 5280 §4.1.2.2: a positive serial of at most 20 octets; 16 random ones, the first never zero. */
export function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] as number) & 0x7f) | 0x40;
  return bytes.toString("hex").toUpperCase();
}

/** The SubjectPublicKeyInfo (DER) of a CA key's public JWK. */
export function spkiOfJwk(jwk: JWK): Uint8Array {
  return createPublicKey({ key: jwk as JsonWebKey, format: "jwk" }).export({ type: "spki", format: "der" });
}

/** The Crypto the library signs with: the backend's signature for `sign`, WebCrypto for the rest. */
function backendCrypto(sign: CaSign): Crypto {
  const subtle = {
    sign: async (_algorithm: unknown, _key: unknown, data: BufferSource) => {
      const bytes = ArrayBuffer.isView(data)
        ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
        : new Uint8Array(data);
      // A copy: a Buffer's `.buffer` may be a whole shared pool, not just the signature.
      return new Uint8Array(await sign(bytes)).buffer;
    },
    digest: (algorithm: AlgorithmIdentifier, data: BufferSource) => webcrypto.subtle.digest(algorithm, data),
  };
  return { subtle, getRandomValues: (array: Uint8Array) => webcrypto.getRandomValues(array) } as unknown as Crypto;
}

/** What @peculiar/x509 reads of the signing key: its algorithm (the private half stays in the backend). */
const BACKEND_KEY = { algorithm: KEY_ALGORITHM, type: "private", extractable: false, usages: ["sign"] } as CryptoKey;

export function parseCaCertificate(der: Uint8Array): CaCertificate {
  const certificate = new x509.X509Certificate(der as BufferSource);
  const ski = certificate.getExtension(x509.SubjectKeyIdentifierExtension);
  if (!ski) throw new Error("CA certificate without a subject key identifier");
  return {
    der,
    subject: certificate.subject,
    keyId: ski.keyId,
    notBefore: certificate.notBefore.getTime(),
    notAfter: certificate.notAfter.getTime(),
  };
}

/** RFC 5280 §4.2.1.2 method (1): the SHA-1 of the subjectPublicKey BIT STRING (hashed here, synchronously). */
function subjectKeyId(spki: Uint8Array): x509.SubjectKeyIdentifierExtension {
  const { subjectPublicKey } = AsnConvert.parse(spki as BufferSource, SubjectPublicKeyInfo);
  return new x509.SubjectKeyIdentifierExtension(
    createHash("sha1").update(new Uint8Array(subjectPublicKey)).digest("hex"),
  );
}

/** Name constraints (RFC 5280 §4.2.1.10; SPIFFE X509-SVID §5.2): URIs only in the tenant's trust domain. */
function trustDomainConstraint(trustDomain: string): x509.Extension {
  // For URIs the constraint is the host part: a SPIFFE ID's host is its trust domain.
  const constraints = new NameConstraints({
    permittedSubtrees: new GeneralSubtrees([
      new GeneralSubtree({ base: new GeneralName({ uniformResourceIdentifier: trustDomain }) }),
    ]),
  });
  return new x509.Extension(id_ce_nameConstraints, true, AsnConvert.serialize(constraints));
}

/** What a CA certificate (root or intermediate) is made of. */
interface CaCertificateParts {
  serial: string;
  subject: x509.Name;
  issuer: x509.Name | string;
  spki: Uint8Array;
  notBefore: number;
  notAfter: number;
  /** RFC 5280 §4.2.1.9: how many intermediates may follow (root 1, intermediate 0). */
  pathLength: number;
  ski: x509.SubjectKeyIdentifierExtension;
  /** The issuer's key identifier (the AKI): its own SKI for a self-signed root. */
  issuerKeyId: string;
  extra: x509.Extension[];
}

/** A CA certificate: CA:true (critical), keyCertSign|cRLSign (critical), SKI and AKI. */
async function buildCaCertificate(parts: CaCertificateParts, sign: CaSign): Promise<Uint8Array> {
  const certificate = await x509.X509CertificateGenerator.create(
    {
      serialNumber: parts.serial,
      subject: parts.subject,
      issuer: parts.issuer,
      notBefore: new Date(parts.notBefore),
      notAfter: new Date(parts.notAfter),
      publicKey: parts.spki as BufferSource,
      signingKey: BACKEND_KEY,
      signingAlgorithm: SIGNING_ALGORITHM,
      extensions: [
        new x509.BasicConstraintsExtension(true, parts.pathLength, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        parts.ski,
        new x509.AuthorityKeyIdentifierExtension(parts.issuerKeyId),
        ...parts.extra,
      ],
    },
    backendCrypto(sign),
  );
  return new Uint8Array(certificate.rawData);
}

export interface RootProfile {
  tenant: string;
  trustDomain: string;
  kid: string;
  publicJwk: JWK;
  serial: string;
  notBefore: number;
  notAfter: number;
}

/** The tenant's self-signed root: path length 1 (one intermediate), URIs only in its trust domain. */
export function buildRootCertificate(profile: RootProfile, sign: CaSign): Promise<Uint8Array> {
  const spki = spkiOfJwk(profile.publicJwk);
  const name = subjectName(profile.tenant, `${profile.tenant} agent root CA ${profile.kid.slice(0, 8)}`);
  const ski = subjectKeyId(spki);
  const { serial, notBefore, notAfter } = profile;
  const extra = [trustDomainConstraint(profile.trustDomain)];
  const parts = { serial, subject: name, issuer: name, spki, notBefore, notAfter, pathLength: 1, ski, extra };
  return buildCaCertificate({ ...parts, issuerKeyId: ski.keyId }, sign);
}

export interface IntermediateProfile {
  tenant: string;
  kid: string;
  publicJwk: JWK;
  serial: string;
  notBefore: number;
  notAfter: number;
  issuer: CaCertificate;
}

/** An intermediate, signed by the root: path length 0 (it signs only end entities). */
export function buildIntermediateCertificate(profile: IntermediateProfile, sign: CaSign): Promise<Uint8Array> {
  const spki = spkiOfJwk(profile.publicJwk);
  const { serial, notBefore, notAfter, issuer } = profile;
  return buildCaCertificate(
    {
      serial,
      subject: subjectName(profile.tenant, `${profile.tenant} agent CA ${profile.kid.slice(0, 8)}`),
      issuer: issuer.subject,
      spki,
      notBefore,
      notAfter,
      pathLength: 0,
      ski: subjectKeyId(spki),
      issuerKeyId: issuer.keyId,
      extra: [],
    },
    sign,
  );
}

export interface LeafProfile {
  tenant: string;
  clientId: string;
  spiffeId: string;
  publicKeySpki: Uint8Array;
  serial: string;
  notBefore: number;
  notAfter: number;
  issuer: CaCertificate;
  crlUrl: string;
}

/** The key type of an agent's SubjectPublicKeyInfo, or undefined when it is not one. */
export function publicKeyType(spki: Uint8Array): string | undefined {
  try {
    return createPublicKey({ key: Buffer.from(spki), format: "der", type: "spki" }).asymmetricKeyType;
  } catch {
    return undefined;
  }
}

/**
 * An agent's X.509-SVID (SPIFFE X509-SVID §4): an end entity whose only name Mandate chose. Issued
 * on every enrollment and renewal, so built on @peculiar/x509's own ASN.1 layer (asn1-x509): the
 * extensions every leaf shares and the issuer's name are encoded once, and the certificate is
 * serialised once (the generator re-parses each extension and the result).
 */
export async function buildLeafCertificate(profile: LeafProfile, sign: CaSign): Promise<Uint8Array> {
  const rsa = publicKeyType(profile.publicKeySpki) === "rsa";
  const issuer = issuerParts(profile.issuer, profile.crlUrl);
  const tbsCertificate = new TBSCertificate({
    version: Version.v3,
    serialNumber: hexBytes(profile.serial),
    signature: ECDSA_WITH_SHA256,
    issuer: issuer.name,
    validity: new Validity({ notBefore: new Date(profile.notBefore), notAfter: new Date(profile.notAfter) }),
    subject: AsnConvert.parse(subjectName(profile.tenant, profile.clientId).toArrayBuffer(), AsnName),
    subjectPublicKeyInfo: AsnConvert.parse(profile.publicKeySpki as BufferSource, SubjectPublicKeyInfo),
    extensions: new Extensions([
      ...(rsa ? LEAF_EXTENSIONS_RSA : LEAF_EXTENSIONS),
      // §2: exactly one URI SAN, the SPIFFE ID.
      asnExtension(new x509.SubjectAlternativeNameExtension([{ type: "url", value: profile.spiffeId }], false)),
      asnExtension(subjectKeyId(profile.publicKeySpki)),
      ...issuer.extensions,
    ]),
  });
  const tbs = new Uint8Array(AsnConvert.serialize(tbsCertificate));
  // The backend's raw R||S as the DER ECDSA-Sig-Value (RFC 5480 §2.2), by the library's formatter.
  const signatureValue = EC_SIGNATURE.toAsnSignature(
    { ...KEY_ALGORITHM, ...SIGNING_ALGORITHM },
    (await sign(tbs)) as BufferSource,
  );
  if (!signatureValue) throw new Error("the backend's signature is not an ECDSA P-256 signature");
  const certificate = new Certificate({ tbsCertificate, signatureAlgorithm: ECDSA_WITH_SHA256, signatureValue });
  return new Uint8Array(AsnConvert.serialize(certificate));
}

/** RFC 5758 §3.2: ecdsa-with-SHA256, without parameters. */
const ECDSA_WITH_SHA256 = new AsnAlgorithmIdentifier({ algorithm: "1.2.840.10045.4.3.2" });
const EC_SIGNATURE = new x509.AsnEcSignatureFormatter();

function asnExtension(extension: x509.Extension): AsnExtension {
  return AsnConvert.parse(extension.rawData, AsnExtension);
}

function hexBytes(hex: string): ArrayBuffer {
  return new Uint8Array(Buffer.from(hex, "hex")).buffer;
}

/** The leaf extensions every X.509-SVID carries alike, encoded once. */
function leafExtensions(usages: number): AsnExtension[] {
  return [
    // §4.1: a leaf SVID is not a CA.
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(usages, true),
    // §4.4: serverAuth and clientAuth, for mTLS either way.
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
  ].map(asnExtension);
}
// §4.3: digitalSignature; keyEncipherment only where the key can encipher (RSA key transport).
const LEAF_EXTENSIONS = leafExtensions(x509.KeyUsageFlags.digitalSignature);
const LEAF_EXTENSIONS_RSA = leafExtensions(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment);

/** An intermediate's name and the extensions of its leaves that name it (AKI, CRL distribution point). */
interface IssuerParts {
  name: AsnName;
  extensions: AsnExtension[];
}

/** Encoded once per intermediate: a few per tenant. */
const issuerPartsCache = new Map<string, IssuerParts>();
function issuerParts(issuer: CaCertificate, crlUrl: string): IssuerParts {
  const cacheKey = `${issuer.keyId} ${crlUrl}`;
  let parts = issuerPartsCache.get(cacheKey);
  if (!parts) {
    parts = {
      name: AsnConvert.parse(issuer.der as BufferSource, Certificate).tbsCertificate.subject,
      extensions: [
        new x509.AuthorityKeyIdentifierExtension(issuer.keyId),
        new x509.CRLDistributionPointsExtension([crlUrl]),
      ].map(asnExtension),
    };
    if (issuerPartsCache.size >= 1024) issuerPartsCache.clear();
    issuerPartsCache.set(cacheKey, parts);
  }
  return parts;
}

/** RFC 5280 §5.3.1 reason names, as the library numbers them. */
const CRL_REASONS: Record<string, x509.X509CrlReason> = {
  unspecified: x509.X509CrlReason.unspecified,
  keyCompromise: x509.X509CrlReason.keyCompromise,
  affiliationChanged: x509.X509CrlReason.affiliationChanged,
  superseded: x509.X509CrlReason.superseded,
  cessationOfOperation: x509.X509CrlReason.cessationOfOperation,
  certificateHold: x509.X509CrlReason.certificateHold,
  privilegeWithdrawn: x509.X509CrlReason.privilegeWithdrawn,
};

export function isCrlReason(reason: string): boolean {
  return Object.hasOwn(CRL_REASONS, reason);
}

export interface CrlProfile {
  issuer: CaCertificate;
  revoked: readonly RevokedAgentCertificate[];
  thisUpdate: number;
  nextUpdate: number;
  /** RFC 5280 §5.2.3: increases with every CRL the issuer signs. */
  number: number;
}

/** A v2 CRL (RFC 5280 §5) signed by an intermediate: AKI, CRL number, entries with their reason codes. */
export async function buildCrl(profile: CrlProfile, sign: CaSign): Promise<Uint8Array> {
  const crl = await x509.X509CrlGenerator.create(
    {
      issuer: profile.issuer.subject,
      thisUpdate: new Date(profile.thisUpdate),
      nextUpdate: new Date(profile.nextUpdate),
      signingKey: BACKEND_KEY,
      signingAlgorithm: SIGNING_ALGORITHM,
      entries: profile.revoked.map((entry) => ({
        serialNumber: entry.serial,
        revocationDate: new Date(entry.revokedAt),
        // §5.3.1: the reasonCode is omitted rather than "unspecified".
        ...(entry.reason && entry.reason !== "unspecified" ? { reason: CRL_REASONS[entry.reason] } : {}),
      })),
      extensions: [
        new x509.AuthorityKeyIdentifierExtension(profile.issuer.keyId),
        new x509.Extension(id_ce_cRLNumber, false, AsnConvert.serialize(new CRLNumber(profile.number))),
      ],
    },
    backendCrypto(sign),
  );
  return new Uint8Array(crl.rawData);
}
