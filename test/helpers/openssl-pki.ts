// A test PKI made by the `openssl` CLI (Debian's OpenSSL 3.0), an independent tool, so tests of our
// X.509 code never check certificates our own code made. Every certificate is signed by `openssl ca`
// (a throwaway database per call): unlike `openssl x509 -req`, it takes explicit -startdate/-enddate
// in 3.0, which the expired / not-yet-valid cases need.
//
//   const root = rootCa();                                   // self-signed, CA:TRUE, keyCertSign
//   const intermediate = intermediateCa(root);              // signed by root, pathlen:0
//   const agent = leafCertificate(intermediate, { uris: ["spiffe://acme.agents.mandate.local/agent/a1"] });
//   https.request({ key: agent.keyPem, cert: agent.pem + intermediate.pem, ... })
//
// Options take OpenSSL's own spellings (subject "/CN=x/O=y", keyUsage "digitalSignature",
// extendedKeyUsage "clientAuth"), so a wrong certificate is as easy to make as a right one.
import { execFileSync } from "node:child_process";
import { randomBytes, X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** "ec" is P-256, "rsa" is 2048 bits; the others exist for key-type/size refusal tests. */
export type KeyType = "ec" | "ec-p384" | "ec-secp256k1" | "rsa" | "rsa-1024" | "rsa-3072" | "ed25519" | "ed448";

export interface PkiKey {
  /** PKCS#8 PEM. */
  keyPem: string;
  keyFile: string;
}

export interface PkiCertificate extends PkiKey {
  pem: string;
  der: Uint8Array;
  certFile: string;
  /** The subject as given, OpenSSL -subj form ("/CN=agent"). */
  subject: string;
  /** Hex, upper case, no separators (as VerifiedAgentCertificate.serial). */
  serial: string;
  x509: X509Certificate;
}

export interface CertificateOptions {
  /** OpenSSL -subj form. Default "/CN=<role> <random>". */
  subject?: string;
  /** Default "ec" (P-256). Ignored when `key` is given. */
  keyType?: KeyType;
  /** Use this key instead of making one (e.g. a twin CA with another's name, or a renewal). */
  key?: PkiKey;
  /** URI SANs, in order: zero, one (an SVID) or several. */
  uris?: readonly string[];
  dnsNames?: readonly string[];
  /** IP address SANs, e.g. "127.0.0.1" for a test TLS server. */
  ipAddresses?: readonly string[];
  /** Mark subjectAltName critical (X509-SVID §3.1: required when the subject is empty). Default false. */
  sanCritical?: boolean;
  /** keyUsage bits, OpenSSL names (digitalSignature, keyCertSign, cRLSign, keyEncipherment, ...); [] omits
   *  the extension. Default: leaf ["digitalSignature"], CA ["keyCertSign", "cRLSign"]. */
  keyUsage?: readonly string[];
  /** Mark keyUsage critical (default true). */
  keyUsageCritical?: boolean;
  /** EKU names (clientAuth, serverAuth, codeSigning, ...); [] omits the extension. Default: leaf
   *  ["clientAuth", "serverAuth"], CA none. */
  extendedKeyUsage?: readonly string[];
  /** basicConstraints CA flag. Default: false for leaves, true for CAs. */
  ca?: boolean;
  /** Omit basicConstraints altogether. */
  noBasicConstraints?: boolean;
  /** Mark basicConstraints critical (default true). */
  basicConstraintsCritical?: boolean;
  /** Default: 5 minutes ago. */
  notBefore?: Date;
  /** Default: one day after now (roots and intermediates: 30 days). */
  notAfter?: Date;
  /** Leave out authorityKeyIdentifier (default: the issuer's key id). */
  noAuthorityKeyIdentifier?: boolean;
  /** Hex serial; default 16 random bytes. */
  serial?: string;
  /** Extra extension lines for the OpenSSL extension section, e.g. "nameConstraints=critical,permitted;URI:.x". */
  extraExtensions?: readonly string[];
}

const DAY_MS = 86_400_000;

function openssl(args: readonly string[], input?: string): string {
  try {
    return execFileSync("openssl", args, { input, stdio: ["pipe", "pipe", "pipe"], encoding: "utf8" });
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? "";
    throw new Error(`openssl ${args[0]} failed: ${stderr.trim() || String(error)}`);
  }
}

function workDir(): string {
  return mkdtempSync(join(tmpdir(), "mandate-pki-"));
}

const KEY_ARGS: Record<KeyType, string[]> = {
  ec: ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
  "ec-p384": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
  "ec-secp256k1": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:secp256k1"],
  rsa: ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
  "rsa-1024": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"],
  "rsa-3072": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:3072"],
  ed25519: ["-algorithm", "ED25519"],
  ed448: ["-algorithm", "ED448"],
};

/** A fresh private key (PKCS#8 PEM, also on disk). */
export function privateKey(type: KeyType = "ec"): PkiKey {
  const keyFile = join(workDir(), "key.pem");
  openssl(["genpkey", ...KEY_ARGS[type], "-out", keyFile]);
  return { keyPem: readFileSync(keyFile, "utf8"), keyFile };
}

/** A PKCS#10 request (RFC 2986) signed by `keyPem`; `sans` in OpenSSL form ("URI:spiffe://…", "DNS:x"). */
export function csr(
  keyPem: string,
  subject = "/CN=agent",
  sans: readonly string[] = [],
): { pem: string; der: Uint8Array } {
  const dir = workDir();
  const keyFile = join(dir, "key.pem");
  writeFileSync(keyFile, keyPem, { mode: 0o600 });
  const args = ["req", "-new", "-key", keyFile, "-subj", subject];
  if (sans.length > 0) args.push("-addext", `subjectAltName=${sans.join(",")}`);
  const pem = openssl(args);
  const der = execFileSync("openssl", ["req", "-outform", "DER"], { input: pem });
  return { pem, der: new Uint8Array(der) };
}

/** A self-signed root CA. */
export function rootCa(options: CertificateOptions = {}): PkiCertificate {
  return issue(undefined, "ca", options);
}

/** An intermediate CA signed by `issuer` (a root, or another intermediate). */
export function intermediateCa(issuer: PkiCertificate, options: CertificateOptions = {}): PkiCertificate {
  return issue(issuer, "intermediate", options);
}

/** An end-entity certificate signed by `issuer` (an intermediate or directly a root). */
export function leafCertificate(issuer: PkiCertificate, options: CertificateOptions = {}): PkiCertificate {
  return issue(issuer, "leaf", options);
}

/** A self-signed end-entity certificate, as RFC 8705 §2.2 self_signed_tls_client_auth clients use. */
export function selfSignedLeaf(options: CertificateOptions = {}): PkiCertificate {
  return issue(undefined, "leaf", options);
}

/** PEM of several certificates, e.g. a leaf and its intermediate for a TLS client's `cert`. */
export function pemChain(...certificates: readonly PkiCertificate[]): string {
  return certificates.map((c) => c.pem).join("");
}

type Role = "ca" | "intermediate" | "leaf";

function issue(issuer: PkiCertificate | undefined, role: Role, options: CertificateOptions): PkiCertificate {
  const dir = workDir();
  const key = options.key ?? privateKey(options.keyType ?? "ec");
  const subject =
    options.subject ?? `/CN=${role === "leaf" ? "agent" : `test ${role}`} ${randomBytes(4).toString("hex")}`;
  const serial = (options.serial ?? randomSerial()).toUpperCase();
  const now = Date.now();
  const notBefore = options.notBefore ?? new Date(now - 5 * 60_000);
  const notAfter = options.notAfter ?? new Date(now + (role === "leaf" ? 1 : 30) * DAY_MS);

  writeFileSync(join(dir, "index.txt"), "");
  writeFileSync(join(dir, "serial"), `${serial}\n`);
  writeFileSync(join(dir, "openssl.cnf"), caConfig(dir, extensionLines(role, options)));
  const request = csr(key.keyPem, subject).pem;
  writeFileSync(join(dir, "request.pem"), request);
  const certFile = join(dir, "cert.pem");
  const signing = issuer
    ? ["-cert", issuer.certFile, "-keyfile", issuer.keyFile]
    : ["-selfsign", "-keyfile", key.keyFile];
  openssl([
    "ca",
    "-batch",
    "-notext",
    "-preserveDN",
    "-config",
    join(dir, "openssl.cnf"),
    "-extensions",
    "extensions",
    ...signing,
    "-in",
    join(dir, "request.pem"),
    "-out",
    certFile,
    "-startdate",
    asn1Time(notBefore),
    "-enddate",
    asn1Time(notAfter),
  ]);
  const pem = readFileSync(certFile, "utf8");
  const x509 = new X509Certificate(pem);
  return {
    ...key,
    pem,
    der: new Uint8Array(x509.raw),
    certFile,
    subject,
    serial: x509.serialNumber.toUpperCase(),
    x509,
  };
}

function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] as number) & 0x7f) | 0x10; // positive, no leading zero byte
  return bytes.toString("hex");
}

/** GeneralizedTime, which `openssl ca -startdate/-enddate` accept (YYYYMMDDHHMMSSZ). */
function asn1Time(date: Date): string {
  return `${date.toISOString().replace(/[-:T]/g, "").slice(0, 14)}Z`;
}

function extensionLines(role: Role, o: CertificateOptions): string[] {
  const isCa = o.ca ?? role !== "leaf";
  const sans = [
    ...(o.uris ?? []).map((u) => `URI:${u}`),
    ...(o.dnsNames ?? []).map((d) => `DNS:${d}`),
    ...(o.ipAddresses ?? []).map((ip) => `IP:${ip}`),
  ];
  const eku = o.extendedKeyUsage ?? (role === "leaf" ? ["clientAuth", "serverAuth"] : []);
  return [
    ...basicConstraintsLine(role, isCa, o),
    ...keyUsageLine(isCa, o),
    ...(eku.length > 0 ? [`extendedKeyUsage=${eku.join(",")}`] : []),
    ...(sans.length > 0 ? [`subjectAltName=${o.sanCritical ? "critical," : ""}${sans.join(",")}`] : []),
    "subjectKeyIdentifier=hash",
    // OpenSSL 3 adds the key id unless told "none".
    o.noAuthorityKeyIdentifier ? "authorityKeyIdentifier=none" : "authorityKeyIdentifier=keyid",
    ...(o.extraExtensions ?? []),
  ];
}

function basicConstraintsLine(role: Role, isCa: boolean, o: CertificateOptions): string[] {
  if (o.noBasicConstraints) return [];
  const critical = (o.basicConstraintsCritical ?? true) ? "critical," : "";
  const pathLen = role === "intermediate" && isCa ? ",pathlen:0" : "";
  return [`basicConstraints=${critical}CA:${isCa ? "TRUE" : "FALSE"}${pathLen}`];
}

function keyUsageLine(isCa: boolean, o: CertificateOptions): string[] {
  const keyUsage = o.keyUsage ?? (isCa ? ["keyCertSign", "cRLSign"] : ["digitalSignature"]);
  if (keyUsage.length === 0) return [];
  return [`keyUsage=${(o.keyUsageCritical ?? true) ? "critical," : ""}${keyUsage.join(",")}`];
}

/** The least `openssl ca` needs: a throwaway database, any DN accepted as given (-preserveDN). */
function caConfig(dir: string, extensions: readonly string[]): string {
  return [
    "[ca]",
    "default_ca = test_ca",
    "[test_ca]",
    `dir = ${dir}`,
    "database = $dir/index.txt",
    "serial = $dir/serial",
    "new_certs_dir = $dir",
    "default_md = default",
    "policy = any_dn",
    "unique_subject = no",
    "email_in_dn = no",
    "copy_extensions = none",
    "[any_dn]",
    "commonName = optional",
    "[extensions]",
    ...extensions,
    "",
  ].join("\n");
}

/** RFC 8705 §3.1 thumbprint computed by openssl (an independent tool): base64url of the SHA-256 of the DER. */
export function opensslThumbprint(pem: string): string {
  const out = execFileSync("openssl", ["x509", "-noout", "-fingerprint", "-sha256"], { input: pem }).toString();
  return Buffer.from((out.split("=")[1] as string).trim().replaceAll(":", ""), "hex").toString("base64url");
}
