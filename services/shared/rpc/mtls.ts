// Service-to-service mutual TLS for split mode. Every Mandate process holds a certificate whose
// only URI SAN is its SPIFFE ID, spiffe://<trust domain>/mandate/<service> (SPIFFE X.509-SVID §2),
// signed by the deployment's CA; servers ask for a client certificate but do not require one (agents
// and the CLI authenticate with tokens), and a verified one tells the access gate which Mandate
// service is calling. Certificates and keys come from files (cert-manager, SPIRE) and are re-read
// when they change. TLS 1.3 only, on both ends.

import { X509Certificate } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import type { PeerCertificate, SecureContextOptions } from "node:tls";
import * as grpc from "@grpc/grpc-js";
import { type Config, SERVICE_NAMES } from "../config.ts";

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
  constructor(files: TlsFiles) {
    const { cert, key, ca } = files.material;
    super({ requestCert: true, rejectUnauthorized: false, minVersion: "TLSv1.3" }, { cert, key, ca });
    // Renewed certificates serve new connections.
    files.onChange(() => {
      const { cert, key, ca } = files.material;
      this.updateSecureContextOptions({ cert, key, ca });
    });
  }

  _equals(other: grpc.ServerCredentials): boolean {
    return other === this;
  }
}

/** The PeerIdentity of a process whose CA is `files`: the Mandate service a verified certificate names. */
export function peerIdentity(files: TlsFiles): PeerIdentity {
  return (certificate) => serviceOfSubjectAltName(certificate.subjectaltname, files.trustDomain);
}

/** Whether `host` is a loopback address or name, where a port is reachable from this machine only. */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || host === "[::1]" || /^127\.\d+\.\d+\.\d+$/.test(host);
}
