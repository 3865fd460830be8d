// Service-to-service mutual TLS for split mode. Every Mandate process holds a certificate whose
// only URI SAN is its SPIFFE ID, spiffe://<trust domain>/mandate/<service> (SPIFFE X.509-SVID §2),
// signed by the deployment's CA; servers ask for a client certificate but do not require one (agents
// and the CLI authenticate with tokens), and a verified one tells the access gate which Mandate
// service is calling. Certificates and keys come from files (cert-manager, SPIRE) and are re-read
// when they change. TLS 1.3 only, on both ends.
// Agents present certificates on the same listener (RFC 8705 mTLS, their SPIFFE X.509-SVIDs): the
// server's CA list is the deployment's CA plus every tenant's agent trust bundle (AgentCaBundles),
// so grpc-js verifies them and hands them to handlers (it does so only for verified peers). Passing
// the TLS layer proves nothing about the agent (any tenant's CA let it through): whoever uses the
// certificate verifies it against its own tenant's bundle (issue/agents/agent-trust.ts). And only
// the deployment's CA vouches for a Mandate service: peerIdentity checks who issued a certificate
// before believing the service it names.

import { X509Certificate } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import type { PeerCertificate, SecureContextOptions } from "node:tls";
import * as grpc from "@grpc/grpc-js";
import { type Config, SERVICE_NAMES } from "../config.ts";
import type { Logger } from "../logger.ts";
import type { AgentTrustBundle } from "../signing.ts";

/** What a certificate may name: a service, or the HTTP edge (which forwards calls for outside callers). */
export const SERVICE_IDENTITIES = [...SERVICE_NAMES, "edge"] as const;

/** The Mandate service a verified peer certificate names, or undefined. */
export type PeerIdentity = (certificate: PeerCertificate) => string | undefined;

/** The Mandate service named by a subjectAltName string ("URI:spiffe://td/mandate/issue, DNS:..."). */
export function serviceOfSubjectAltName(subjectAltName: string | undefined, trustDomain: string): string | undefined {
  const uris = (subjectAltName ?? "")
    .split(/,\s*/)
    .filter((entry) => entry.startsWith("URI:"))
    .map((entry) => entry.slice(4));
  // SPIFFE X.509-SVID §2: exactly one URI SAN, the SPIFFE ID.
  if (uris.length !== 1) return undefined;
  const match = /^spiffe:\/\/([^/]+)\/mandate\/([a-z]+)$/.exec(uris[0] as string);
  if (!match || match[1] !== trustDomain) return undefined;
  const service = match[2] as string;
  return (SERVICE_IDENTITIES as readonly string[]).includes(service) ? service : undefined;
}

export function spiffeId(trustDomain: string, service: string): string {
  return `spiffe://${trustDomain}/mandate/${service}`;
}

export class TlsConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TlsConfigError";
  }
}

interface Material {
  cert: Buffer;
  key: Buffer;
  ca: Buffer;
}

/** The process's certificate, key and CA bundle, re-read from their files when they change. */
export class TlsFiles {
  readonly trustDomain: string;
  readonly #paths: { certFile: string; keyFile: string; caFile: string };
  #material: Material;
  #stamp: string;
  /** Bumped whenever the files changed; holders of connections made with older material renew them. */
  generation = 0;
  /** The Mandate service this process's own certificate names. */
  identity: string;
  readonly #listeners = new Set<() => void>();
  #timer: NodeJS.Timeout | undefined;

  constructor(tls: Config["tls"]) {
    const { certFile, keyFile, caFile } = tls;
    if (!certFile || !keyFile || !caFile)
      throw new TlsConfigError("tls.certFile, tls.keyFile and tls.caFile are required");
    this.trustDomain = tls.trustDomain;
    this.#paths = { certFile, keyFile, caFile };
    this.#material = this.#read();
    this.#stamp = this.#currentStamp();
    this.identity = this.#identityOf(this.#material.cert);
  }

  get material(): Material {
    return this.#material;
  }

  /** Re-reads the files if they changed since the last read; true when they did. */
  refresh(): boolean {
    const stamp = this.#currentStamp();
    if (stamp === this.#stamp) return false;
    const material = this.#read();
    this.identity = this.#identityOf(material.cert);
    this.#material = material;
    this.#stamp = stamp;
    this.generation++;
    for (const listener of this.#listeners) listener();
    return true;
  }

  /** Checks the files every `intervalMs` (renewals by cert-manager or SPIRE); `onChange` hears of each. */
  watch(intervalMs = 30_000): void {
    this.#timer ??= setInterval(() => {
      try {
        this.refresh();
      } catch {
        // A half-written renewal: keep the current material and look again next time.
      }
    }, intervalMs).unref();
  }

  onChange(listener: () => void): void {
    this.#listeners.add(listener);
  }

  close(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #currentStamp(): string {
    return Object.values(this.#paths)
      .map((path) => {
        try {
          const stat = statSync(path);
          return `${stat.mtimeMs}:${stat.size}`;
        } catch {
          return "missing";
        }
      })
      .join("|");
  }

  #read(): Material {
    const read = (key: "certFile" | "keyFile" | "caFile", path: string) => {
      try {
        return readFileSync(path);
      } catch (error) {
        throw new TlsConfigError(`tls.${key} (${path}) cannot be read: ${(error as NodeJS.ErrnoException).code}`);
      }
    };
    return {
      cert: read("certFile", this.#paths.certFile),
      key: read("keyFile", this.#paths.keyFile),
      ca: read("caFile", this.#paths.caFile),
    };
  }

  #identityOf(pem: Buffer): string {
    let certificate: X509Certificate;
    try {
      certificate = new X509Certificate(pem);
    } catch (error) {
      throw new TlsConfigError(`tls.certFile is not a PEM certificate: ${(error as Error).message}`);
    }
    const service = serviceOfSubjectAltName(certificate.subjectAltName, this.trustDomain);
    if (!service) {
      throw new TlsConfigError(
        `tls.certFile must name one Mandate service as its only URI SAN, ${spiffeId(this.trustDomain, "<service>")} ` +
          `with <service> one of ${SERVICE_IDENTITIES.join(", ")}; it has: ${certificate.subjectAltName ?? "no SAN"}`,
      );
    }
    return service;
  }

  /** Server identity check for outgoing calls: the peer must be one of `expected` in our trust domain. */
  checkServer(expected: readonly string[]): (host: string, certificate: PeerCertificate) => Error | undefined {
    return (_host, certificate) => {
      const service = serviceOfSubjectAltName(certificate.subjectaltname, this.trustDomain);
      if (service && (expected.length === 0 || expected.includes(service))) return undefined;
      return new Error(
        `the server's certificate names ${certificate.subjectaltname ?? "nothing"}, not ${expected.map((s) => spiffeId(this.trustDomain, s)).join(" or ")}`,
      );
    };
  }

  /** TLS options for an outgoing connection to a Mandate service expected to be one of `expected`. */
  clientOptions(expected: readonly string[]): SecureContextOptions & {
    checkServerIdentity: (host: string, certificate: PeerCertificate) => Error | undefined;
    minVersion: "TLSv1.3";
  } {
    const { cert, key, ca } = this.#material;
    return { cert, key, ca, minVersion: "TLSv1.3", checkServerIdentity: this.checkServer(expected) };
  }
}

/**
 * grpc-js server credentials for Mandate: TLS 1.3, a client certificate requested and verified
 * against the CA when presented, but not required (token callers have none); grpc-js hands a
 * handler the peer certificate only when it verified (AuthContext), which is what the gate trusts.
 */
export class MandateServerCredentials extends grpc.ServerCredentials {
  /**
   * With `agents`, agents' certificates verify too (their tenants' roots and intermediates join the
   * CA list): a certificate of no known CA still connects (tokens need none) but reaches no handler.
   */
  constructor(files: TlsFiles, agents?: AgentCaBundles) {
    // A replaced secure context keeps only what it is given: TLS 1.3 is part of every one.
    const context = () => {
      const { cert, key, ca } = files.material;
      return { cert, key, ca: agents ? [ca, ...agents.pems] : ca, minVersion: "TLSv1.3" as const };
    };
    super({ requestCert: true, rejectUnauthorized: false, minVersion: "TLSv1.3" }, context());
    // Renewed certificates, and changed agent trust bundles, serve new connections.
    files.onChange(() => this.updateSecureContextOptions(context()));
    agents?.onChange(() => this.updateSecureContextOptions(context()));
  }

  _equals(other: grpc.ServerCredentials): boolean {
    return other === this;
  }
}

/**
 * The PeerIdentity of a process whose CA is `files`: the Mandate service a verified certificate
 * names, when the deployment's CA issued it. The TLS layer also trusts tenants' agent CAs, and a
 * certificate one of them issued is an agent's whatever its SAN says (SPIFFE X.509-SVID §5.2: a
 * trust domain's CA vouches for its own IDs only): its issuer must be a certificate of `tls.caFile`
 * (RFC 5280 §4.1.2.4 issuer name and §6.1.3 signature), or it names no service. So tls.caFile holds
 * the CA that signs service certificates itself (with SPIRE under an upstream CA: its intermediate).
 */
export function peerIdentity(files: TlsFiles): PeerIdentity {
  const issuers = new IssuerCheck(files);
  return (certificate) => {
    const service = serviceOfSubjectAltName(certificate.subjectaltname, files.trustDomain);
    return service && issuers.issuedByDeploymentCa(certificate) ? service : undefined;
  };
}

/** Whether a certificate was issued by one of the deployment CA's certificates; remembered per certificate. */
class IssuerCheck {
  readonly #files: TlsFiles;
  #authorities: { generation: number; certificates: X509Certificate[] } | undefined;
  readonly #seen = new Map<string, boolean>();
  constructor(files: TlsFiles) {
    this.#files = files;
  }

  issuedByDeploymentCa(certificate: PeerCertificate): boolean {
    const authorities = this.#currentAuthorities();
    const key = certificate.fingerprint256;
    const known = this.#seen.get(key);
    if (known !== undefined) return known;
    let leaf: X509Certificate;
    try {
      leaf = new X509Certificate(certificate.raw);
    } catch {
      return false;
    }
    const issued = authorities.some((authority) => leaf.checkIssued(authority) && leaf.verify(authority.publicKey));
    if (this.#seen.size >= 10_000) this.#seen.clear();
    this.#seen.set(key, issued);
    return issued;
  }

  #currentAuthorities(): X509Certificate[] {
    const generation = this.#files.generation;
    if (this.#authorities?.generation !== generation) {
      this.#seen.clear();
      this.#authorities = { generation, certificates: certificatesOfPem(this.#files.material.ca.toString("utf8")) };
    }
    return this.#authorities.certificates;
  }
}

function certificatesOfPem(pem: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.flatMap((block) => {
    try {
      return [new X509Certificate(block)];
    } catch {
      return [];
    }
  });
}

/** Where AgentCaBundles reads the agent CAs: the tenants, and each one's trust bundle from the Signer. */
export interface AgentCaSource {
  tenants(): Promise<string[]>;
  trustBundle(tenant: string): Promise<Pick<AgentTrustBundle, "roots" | "intermediates">>;
}

/**
 * Every tenant's agent CA certificates (roots and published intermediates, so an agent that sends
 * its leaf alone still verifies), as PEM for a TLS server's CA list; re-read every `intervalMs`
 * (intermediates rotate), as soon as a new tenant appears (the tenant list is read every
 * `tenantCheckMs`) and on `refresh()`. A tenant whose bundle cannot be read keeps the certificates
 * last read for it.
 */
export class AgentCaBundles {
  readonly #source: AgentCaSource;
  readonly #logger: Logger;
  readonly #byTenant = new Map<string, string[]>();
  readonly #listeners = new Set<() => void>();
  #pems: string[] = [];
  #timers: NodeJS.Timeout[] = [];
  #pending: Promise<void> | undefined;
  /** The tenants of the last read, whether or not their bundles could be read. */
  #tenants = new Set<string>();

  constructor(source: AgentCaSource, logger: Logger) {
    this.#source = source;
    this.#logger = logger;
  }

  /** The CA certificates of every tenant's agents, PEM. */
  get pems(): readonly string[] {
    return this.#pems;
  }

  onChange(listener: () => void): void {
    this.#listeners.add(listener);
  }

  /** Reads every tenant's bundle now (one read at a time); listeners hear of a change. */
  refresh(): Promise<void> {
    this.#pending ??= this.#read().finally(() => {
      this.#pending = undefined;
    });
    return this.#pending;
  }

  start(intervalMs = 60_000, tenantCheckMs = 5_000): Promise<void> {
    if (this.#timers.length > 0) return this.refresh();
    const warn = (error: unknown) => this.#logger.warn({ err: error }, "agent trust bundles not refreshed");
    this.#timers = [
      setInterval(() => this.refresh().catch(warn), intervalMs).unref(),
      setInterval(() => this.#readNewTenants().catch(warn), tenantCheckMs).unref(),
    ];
    return this.refresh();
  }

  stop(): void {
    for (const timer of this.#timers) clearInterval(timer);
    this.#timers = [];
  }

  async #readNewTenants(): Promise<void> {
    const tenants = await this.#source.tenants();
    if (tenants.some((tenant) => !this.#tenants.has(tenant))) await this.refresh();
  }

  async #read(): Promise<void> {
    const tenants = await this.#source.tenants();
    this.#tenants = new Set(tenants);
    for (const tenant of tenants) {
      try {
        const bundle = await this.#source.trustBundle(tenant);
        this.#byTenant.set(tenant, [...bundle.roots, ...bundle.intermediates].map(pemOf));
      } catch (error) {
        this.#logger.warn({ err: error, tenant }, "a tenant's agent trust bundle could not be read");
      }
    }
    const pems = [...new Set([...this.#byTenant.values()].flat())].sort();
    if (pems.length === this.#pems.length && pems.every((pem, i) => pem === this.#pems[i])) return;
    this.#pems = pems;
    for (const listener of this.#listeners) listener();
  }
}

function pemOf(der: Uint8Array): string {
  return new X509Certificate(der).toString();
}

/** Whether `host` is a loopback address or name, where a port is reachable from this machine only. */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || host === "[::1]" || /^127\.\d+\.\d+\.\d+$/.test(host);
}
