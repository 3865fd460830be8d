// Each tenant's agent certificate authority, in the Signer. Its keys are ordinary Signer keys of two
// purposes — agent_ca_root (long-lived trust anchors) and agent_ca (intermediates that rotate) — so
// they live in the configured backend (the HSM through PKCS#11) and follow the key schedule with
// pre-publication and overlap (timing.ts). Each CA key gets one certificate, made once before the
// key is used (records.ts); an intermediate is certified by the root signing when it is made.
//
// What the CA signs it builds itself (profiles.ts): agent certificates whose only name is the SPIFFE
// ID Issue asks for, in the tenant's own trust domain, and CRLs. Nothing else can be signed with its
// keys (the raw Sign RPC refuses their purposes).
import { createPublicKey } from "node:crypto";
import type { JWK } from "jose";
import { agentCaCertificateCreated } from "../../shared/audit-events.ts";
import type { Clock } from "../../shared/clock.ts";
import { invalidArgument, unavailable } from "../../shared/errors.ts";
import type { Logger } from "../../shared/logger.ts";
import { issuerUrl } from "../../shared/oauth/issuer.ts";
import type {
  AgentCaClient,
  AgentCertificateRequest,
  AgentTrustBundle,
  IssuedAgentCertificate,
  RevokedAgentCertificate,
} from "../../shared/signing.ts";
import type { Store } from "../../shared/store/store.ts";
import { agentOfSpiffeId, agentSpiffeId, agentTrustDomain } from "../../shared/x509/spiffe.ts";
import type { KeyManager } from "../keys.ts";
import { isPublished, jwksMaxAgeSeconds, type KeyRecord, signingKey } from "../schedule.ts";
import { LONGEST_AGENT_CERTIFICATE_MS } from "./limits.ts";
import {
  BACKDATE_MS,
  buildCrl,
  buildIntermediateCertificate,
  buildLeafCertificate,
  buildRootCertificate,
  type CaCertificate,
  isCrlReason,
  parseCaCertificate,
  randomSerial,
} from "./profiles.ts";
import { AgentCaCertificateRecords, type CaRole } from "./records.ts";

export interface AgentCaOptions {
  /** The Signer's key manager: the CA keys' schedule, and the backend that signs with them. */
  keys: KeyManager;
  store: Store;
  clock: Clock;
  logger: Logger;
  /** agents.trustDomainSuffix: tenant T's agents are in the trust domain `T.<suffix>`. */
  trustDomainSuffix: string;
  /** Where the edge publishes each intermediate's CRL (the certificates' CRL distribution point). */
  publicBaseUrl: string;
}

/** A CA key's certificate, and the CA key that signed it (itself for a root). */
interface KnownCertificate {
  certificate: CaCertificate;
  issuerKeyId: string;
}

/** A published CA key with its certificate. */
interface CertifiedKey {
  key: KeyRecord;
  certificate: CaCertificate;
  issuerKeyId: string;
}

/** A tenant's CA as published now: what the bundle lists, and the intermediate that issues. */
interface CaState {
  roots: CertifiedKey[];
  intermediates: CertifiedKey[];
  issuing: CertifiedKey | undefined;
}

export class AgentCertificateAuthority implements AgentCaClient {
  readonly #keys: KeyManager;
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #trustDomainSuffix: string;
  readonly #publicBaseUrl: string;
  /** Per tenant, CA certificates by CA key id: rows never change, so a replica keeps what it read. */
  readonly #certificates = new Map<string, Map<string, KnownCertificate>>();
  /** Per tenant, the SPIFFE bundle sequence and the root set it was computed for. */
  readonly #sequences = new Map<string, { roots: string; sequence: number }>();
  #lastCrlNumber = 0;

  constructor(options: AgentCaOptions) {
    this.#keys = options.keys;
    this.#store = options.store;
    this.#clock = options.clock;
    this.#logger = options.logger;
    this.#trustDomainSuffix = options.trustDomainSuffix;
    this.#publicBaseUrl = options.publicBaseUrl;
  }

  async issueAgentCertificate(request: AgentCertificateRequest): Promise<IssuedAgentCertificate> {
    const { tenant } = request;
    const clientId = this.#requireAgentSpiffeId(tenant, request.spiffeId);
    const now = this.#clock.now();
    requireNotAfter(request.notAfter, now);
    requireAgentKey(request.publicKeySpki);
    const { issuing } = await this.#state(tenant);
    if (!issuing)
      throw unavailable(`tenant "${tenant}" has no agent CA intermediate yet; retry shortly`, "NO_AGENT_CA");
    const issuer = issuing.certificate;
    const serial = randomSerial();
    const notBefore = now - BACKDATE_MS; // relying parties' clock skew
    // The certificate cannot outlive its issuer's.
    const notAfter = Math.min(request.notAfter, issuer.notAfter);
    const certificateDer = await buildLeafCertificate(
      {
        tenant,
        clientId,
        spiffeId: request.spiffeId,
        publicKeySpki: request.publicKeySpki,
        serial,
        notBefore,
        notAfter,
        issuer,
        crlUrl: this.crlUrl(tenant, issuing.key.kid),
      },
      (data) => this.#keys.signWithKey(issuing.key, data),
    );
    // X.509 times have one-second precision: report what the certificate says.
    return {
      certificateDer,
      chainDer: [issuer.der],
      serial,
      notBefore: floorSecond(notBefore),
      notAfter: floorSecond(notAfter),
      issuerKid: issuing.key.kid,
    };
  }

  async trustBundle(tenant: string): Promise<AgentTrustBundle> {
    const { roots, intermediates } = await this.#state(tenant);
    const maxAgeSeconds = jwksMaxAgeSeconds(this.#keys.timingFor("agent_ca"));
    return {
      roots: roots.map((root) => root.certificate.der),
      intermediates: intermediates.map((intermediate) => intermediate.certificate.der),
      // SPIFFE Trust Domain and Bundle §4: the X.509 authorities (roots) as JWKs of use x509-svid.
      spiffeBundle: {
        keys: roots.map(({ key, certificate }) => spiffeAuthority(key, certificate)),
        spiffe_sequence: await this.#sequence(tenant, roots),
        spiffe_refresh_hint: maxAgeSeconds,
      },
      maxAgeSeconds,
    };
  }

  async signCrls(
    tenant: string,
    revoked: readonly RevokedAgentCertificate[],
    nextUpdate: number,
  ): Promise<Array<{ issuerKid: string; der: Uint8Array }>> {
    const now = this.#clock.now();
    requireCrlEntries(revoked);
    // RFC 5280 §5.1.2.5: the next CRL is due after this one.
    if (!Number.isFinite(nextUpdate) || nextUpdate <= now) {
      throw invalidArgument([{ field: "next_update", description: "must be in the future" }]);
    }
    const { intermediates } = await this.#state(tenant);
    const crls: Array<{ issuerKid: string; der: Uint8Array }> = [];
    for (const { key, certificate } of intermediates) {
      const der = await buildCrl(
        { issuer: certificate, revoked, thisUpdate: now, nextUpdate, number: this.#nextCrlNumber(now) },
        (data) => this.#keys.signWithKey(key, data),
      );
      crls.push({ issuerKid: key.kid, der });
    }
    return crls;
  }

  /** The CRL distribution point of the certificates an intermediate issues (served by the edge). */
  crlUrl(tenant: string, issuerKid: string): string {
    return `${issuerUrl(this.#publicBaseUrl, tenant)}/agents/crl/${issuerKid}.crl`;
  }

  /** The tenant's trust domain. */
  trustDomain(tenant: string): string {
    return agentTrustDomain(tenant, this.#trustDomainSuffix);
  }

  /** The client id the SPIFFE ID names, if it is exactly an agent ID in the tenant's trust domain. */
  #requireAgentSpiffeId(tenant: string, spiffeId: string): string {
    const trustDomain = this.trustDomain(tenant);
    const clientId = agentOfSpiffeId(spiffeId, trustDomain);
    // SPIFFE ID §2: compared as written; the CA issues only IDs of the form it defines.
    if (!clientId || agentSpiffeId(trustDomain, clientId) !== spiffeId) {
      throw invalidArgument([
        { field: "spiffe_id", description: `must be spiffe://${trustDomain}/agent/<client id> (tenant "${tenant}")` },
      ]);
    }
    return clientId;
  }

  /**
   * The tenant's published CA keys, each certified (made on first use: keys by the key manager, then
   * their certificates), and the intermediate issuing now.
   */
  async #state(tenant: string): Promise<CaState> {
    const rootKeys = await this.#keys.liveKeys(tenant, "agent_ca_root");
    const intermediateKeys = await this.#keys.liveKeys(tenant, "agent_ca");
    const now = this.#clock.now();
    const roots: CertifiedKey[] = [];
    for (const key of publishedNow(rootKeys, now)) {
      const certified = await this.#certified(tenant, key, "self");
      if (certified) roots.push(certified);
    }
    const activeRoot = signingKey(rootKeys, now);
    const signer = roots.find((root) => root.key.id === activeRoot?.id);
    const intermediates: CertifiedKey[] = [];
    for (const key of publishedNow(intermediateKeys, now)) {
      const certified = await this.#certified(tenant, key, signer);
      // Only while the root that certified it is published (a revoked root takes its intermediates).
      if (certified && roots.some((root) => root.key.id === certified.issuerKeyId)) intermediates.push(certified);
    }
    const issuingKey = signingKey(intermediateKeys, now);
    const issuing = intermediates.find((intermediate) => intermediate.key.id === issuingKey?.id);
    return { roots, intermediates, issuing };
  }

  /**
   * The key's certificate: read, or made now (once: replicas racing agree on the first written). A
   * root certifies itself; an intermediate is certified by `issuer`, the root signing now, and
   * without one waits for a later call.
   */
  async #certified(
    tenant: string,
    key: KeyRecord,
    issuer: CertifiedKey | "self" | undefined,
  ): Promise<CertifiedKey | undefined> {
    const known = this.#certificates.get(tenant)?.get(key.id) ?? (await this.#reload(tenant)).get(key.id);
    if (known) return { key, ...known };
    if (!issuer) return undefined;
    await this.#certify(tenant, key, issuer === "self" ? undefined : issuer);
    const made = (await this.#reload(tenant)).get(key.id);
    if (!made) throw unavailable("agent CA certificate not recorded; retry", "AGENT_CA_CHANGED");
    return { key, ...made };
  }

  async #reload(tenant: string): Promise<Map<string, KnownCertificate>> {
    const rows = await this.#store.forTenant(tenant).use(AgentCaCertificateRecords).all();
    const certificates = this.#certificates.get(tenant) ?? new Map<string, KnownCertificate>();
    for (const [keyId, row] of rows) {
      if (certificates.has(keyId)) continue;
      const certificate = parseCaCertificate(Buffer.from(row.der, "base64"));
      certificates.set(keyId, { certificate, issuerKeyId: row.issuer_key_id });
    }
    this.#certificates.set(tenant, certificates);
    return certificates;
  }

  /** Makes and records the certificate of a root (no issuer) or of an intermediate. */
  async #certify(tenant: string, key: KeyRecord, issuer: CertifiedKey | undefined): Promise<void> {
    const role: CaRole = issuer ? "intermediate" : "root";
    const serial = randomSerial();
    const notBefore = key.publishAt - BACKDATE_MS;
    const base = { tenant, kid: key.kid, publicJwk: key.publicJwk, serial, notBefore };
    let der: Uint8Array;
    let notAfter: number;
    if (!issuer) {
      notAfter = key.unpublishAt;
      const profile = { ...base, trustDomain: this.trustDomain(tenant), notAfter };
      der = await buildRootCertificate(profile, (data) => this.#keys.signWithKey(key, data));
    } else {
      // An intermediate never outlives the root that certified it.
      notAfter = Math.min(key.unpublishAt, issuer.certificate.notAfter);
      const profile = { ...base, notAfter, issuer: issuer.certificate };
      der = await buildIntermediateCertificate(profile, (data) => this.#keys.signWithKey(issuer.key, data));
    }
    const row = {
      tenant_id: tenant,
      key_id: key.id,
      role,
      kid: key.kid,
      serial,
      issuer_key_id: issuer?.key.id ?? key.id,
      der: Buffer.from(der).toString("base64"),
      not_before: floorSecond(notBefore),
      not_after: floorSecond(notAfter),
      created_at: this.#clock.now(),
    };
    // The certificate and its audit record commit together; a replica that lost the race records nothing.
    const scoped = this.#store.forTenant(tenant);
    const written = await scoped.transaction(async (tx) => {
      if (!(await scoped.use(AgentCaCertificateRecords, tx).insertOnce(row))) return false;
      const issuerKid = issuer?.key.kid ?? key.kid;
      const validity = { notBefore: row.not_before, notAfter: row.not_after };
      const event = agentCaCertificateCreated({ role, kid: key.kid, serial, issuerKid, ...validity });
      await scoped.recordEvent(tx, event, row.created_at);
      return true;
    });
    if (written) this.#logger.info({ tenant, role, kid: key.kid, serial }, "agent CA certificate made");
  }

  /**
   * SPIFFE bundle sequence: increases whenever the set of roots changes. The latest time the root set
   * changed (a root published, unpublished or revoked), in seconds, read from every root key ever
   * made, so it never goes back when old keys are destroyed; recomputed only when the set changes.
   */
  async #sequence(tenant: string, roots: readonly CertifiedKey[]): Promise<number> {
    const set = roots.map((root) => root.key.id).join(",");
    const cached = this.#sequences.get(tenant);
    if (cached?.roots === set) return cached.sequence;
    const now = this.#clock.now();
    let latest = 0;
    for (const key of await this.#keys.listKeys(tenant, "agent_ca_root")) {
      for (const at of [key.publishAt, key.unpublishAt, key.revokedAt]) {
        if (at !== null && at <= now) latest = Math.max(latest, at);
      }
    }
    const sequence = Math.floor(latest / 1000);
    this.#sequences.set(tenant, { roots: set, sequence });
    return sequence;
  }

  /** RFC 5280 §5.2.3: CRL numbers increase; milliseconds, bumped when two CRLs share one. */
  #nextCrlNumber(now: number): number {
    this.#lastCrlNumber = Math.max(now, this.#lastCrlNumber + 1);
    return this.#lastCrlNumber;
  }
}

function publishedNow(keys: readonly KeyRecord[], now: number): KeyRecord[] {
  return keys.filter((key) => isPublished(key, now)).sort((a, b) => a.activateAt - b.activateAt);
}

function floorSecond(ms: number): number {
  return Math.floor(ms / 1000) * 1000;
}

function spiffeAuthority(key: KeyRecord, certificate: CaCertificate): JWK {
  return { ...key.publicJwk, kid: key.kid, use: "x509-svid", x5c: [Buffer.from(certificate.der).toString("base64")] };
}

function requireNotAfter(notAfter: number, now: number): void {
  if (!Number.isFinite(notAfter) || notAfter <= now) {
    throw invalidArgument([{ field: "not_after", description: "must be in the future" }]);
  }
  if (notAfter > now + LONGEST_AGENT_CERTIFICATE_MS) {
    throw invalidArgument([{ field: "not_after", description: "an agent certificate lives at most 24 hours" }]);
  }
}

/** Curves every TLS stack verifies (RFC 8446 §4.2.7); RSA of at least 2048 bits (NIST SP 800-131A). */
const AGENT_CURVES = new Set(["prime256v1", "secp384r1"]);

/** The agent key must be one the CA certifies: Issue checks the CSR, the CA checks again (fail closed). */
function requireAgentKey(spki: Uint8Array): void {
  let problem: string | undefined;
  try {
    const key = createPublicKey({ key: Buffer.from(spki), format: "der", type: "spki" });
    const details = key.asymmetricKeyDetails ?? {};
    if (key.asymmetricKeyType === "ec" && !AGENT_CURVES.has(details.namedCurve ?? "")) {
      problem = "an EC key must be on P-256 or P-384";
    } else if (key.asymmetricKeyType === "rsa" && (details.modulusLength ?? 0) < 2048) {
      problem = "an RSA key must have at least 2048 bits";
    } else if (!["ec", "rsa", "ed25519"].includes(key.asymmetricKeyType ?? "")) {
      problem = "must be an EC (P-256, P-384), RSA or Ed25519 key";
    }
  } catch {
    problem = "must be a DER SubjectPublicKeyInfo";
  }
  if (problem) throw invalidArgument([{ field: "public_key_spki", description: problem }]);
}

const SERIAL = /^[0-9A-F]{1,40}$/;

function requireCrlEntries(revoked: readonly RevokedAgentCertificate[]): void {
  for (const [index, entry] of revoked.entries()) {
    if (!SERIAL.test(entry.serial)) {
      throw invalidArgument([{ field: `revoked[${index}].serial`, description: "must be upper-case hex" }]);
    }
    if (entry.reason && !isCrlReason(entry.reason)) {
      throw invalidArgument([{ field: `revoked[${index}].reason`, description: "must be an RFC 5280 reason name" }]);
    }
  }
}
