// RFC 8705 (OAuth 2.0 Mutual-TLS Client Authentication and Certificate-Bound Access Tokens) at the
// authorization server: the two certificate authentication methods and the binding of tokens.
//
// · tls_client_auth (§2.1): the certificate chains to the tenant's agent CA and is not on its deny
//   list (services.agentCertificates: "validated against trust anchors"), and its subject or one SAN
//   equals the one value the client registered (§2.1.2). An agent registered with none of them is
//   matched on the URI SAN of its own SPIFFE ID.
// · self_signed_tls_client_auth (§2.2): no CA; the certificate is one the client registered in its
//   jwks (x5c[0], or a key equal to the certificate's), and within its validity.
// · Binding (§3): a token issued to a client that authenticated with a certificate, or that asked
//   for certificate-bound tokens (tls_client_certificate_bound_access_tokens) and presented one,
//   carries cnf {"x5t#S256": SHA-256 of the certificate's DER}. Its token_type stays Bearer (§3).
//   A DPoP proof in the same request wins (RFC 9449 §5 token_type DPoP): one binding per token.
// · Refresh tokens (§4): Mandate's certificate clients are confidential, so a refresh token is bound
//   to the client by its authentication at every refresh, not to one certificate (agents' certificates
//   live an hour and renew; a refresh with the renewed one must work). Public clients cannot ask for
//   certificate-bound tokens (clients/metadata.ts).
import "reflect-metadata";
import { createPublicKey, type JsonWebKey, X509Certificate as NodeCertificate, webcrypto } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { TLSSocket } from "node:tls";
import * as x509 from "@peculiar/x509";
import type { Config } from "../../shared/config.ts";
import type { Logger } from "../../shared/logger.ts";
import { agentSpiffeId, agentTrustDomain } from "../../shared/x509/spiffe.ts";
import { x5tS256 } from "../../shared/x509/thumbprint.ts";
import {
  CertificateRefused,
  type PresentedCertificate,
  type VerifiedAgentCertificate,
} from "../../shared/x509/types.ts";
import {
  type AuthMethod,
  type ClientMetadata,
  type RegisteredClient,
  TLS_CLIENT_AUTH_NAMES,
} from "../clients/metadata.ts";
import type { OAuthServices } from "./context.ts";
import { InvalidClient, InvalidRequest } from "./errors.ts";

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export const CERTIFICATE_AUTH_METHODS = ["tls_client_auth", "self_signed_tls_client_auth"] as const;
export type CertificateAuthMethod = (typeof CERTIFICATE_AUTH_METHODS)[number];

export type TlsClientAuthName = (typeof TLS_CLIENT_AUTH_NAMES)[number];

/** What a token is bound to and how the client proved itself, for cnf and the audit event. */
export interface CertificateBinding {
  /** §3.1: the `cnf.x5t#S256` of the token. */
  x5tS256: string;
  /** The certificate's serial, hex upper case. */
  serial: string;
  /** The agent's SPIFFE ID, when the certificate is an agent's (tls_client_auth). */
  spiffeId?: string | undefined;
}

export function isCertificateAuthMethod(method: string): method is CertificateAuthMethod {
  return (CERTIFICATE_AUTH_METHODS as readonly string[]).includes(method);
}

/** The refusal every certificate failure reads as: the reason is logged, not told. */
const REFUSED = "the client certificate was refused";

/**
 * Authenticates `client` by the certificate it presented with its registered method (§2.1 / §2.2).
 * invalid_client when there is none or it does not prove the client; the reason is logged.
 */
export async function authenticateByCertificate(
  services: Pick<OAuthServices, "agentCertificates" | "config" | "clock" | "logger">,
  client: RegisteredClient,
  method: CertificateAuthMethod,
  presented: PresentedCertificate | undefined,
): Promise<CertificateBinding> {
  if (!presented) throw new InvalidClient(`${method} needs a client certificate: connect over mutual TLS`);
  const refuse = (reason: string, detail: string): never => {
    logRefusal(services.logger, client, method, reason, detail);
    throw new InvalidClient(REFUSED);
  };
  if (method === "self_signed_tls_client_auth") return selfSigned(client, presented, services.clock.now(), refuse);
  let verified: Awaited<ReturnType<OAuthServices["agentCertificates"]["verify"]>>;
  try {
    verified = await services.agentCertificates.verify(client.tenant, presented);
  } catch (error) {
    if (error instanceof CertificateRefused) return refuse(error.reason, error.message);
    throw error;
  }
  // An agent's certificate names its own client: another agent's never authenticates it.
  if (client.metadata.kind === "agent" && verified.clientId !== client.clientId) {
    return refuse("other_agent", `the certificate is agent ${verified.clientId}'s (${verified.spiffeId})`);
  }
  const expected = expectedName(client, services.config.agents.trustDomainSuffix);
  if (!expected) return refuse("registration", `the client registered no ${TLS_CLIENT_AUTH_NAMES.join(" / ")}`);
  if (!certificateHasName(presented.leaf, expected.member, expected.value, verified)) {
    return refuse("name_mismatch", `the certificate has no ${expected.member} equal to "${expected.value}"`);
  }
  return { x5tS256: verified.x5tS256, serial: verified.serial, spiffeId: verified.spiffeId };
}

/** The binding of a certificate the client presented without authenticating with it (§3 alone). */
export function presentedBinding(presented: PresentedCertificate): CertificateBinding {
  return { x5tS256: x5tS256(presented.leaf), serial: serialOf(presented.leaf) };
}

/**
 * The certificate a request's tokens are bound to, if any: the authenticating one, or — for a client
 * registered with tls_client_certificate_bound_access_tokens — the one it presented.
 */
export function certificateBindingOf(
  client: RegisteredClient,
  authenticated: CertificateBinding | undefined,
  presented: PresentedCertificate | undefined,
): CertificateBinding | undefined {
  if (authenticated) return authenticated;
  if (!client.metadata.tls_client_certificate_bound_access_tokens || !presented) return undefined;
  return presentedBinding(presented);
}

/** §3.4: a client registered for certificate-bound tokens gets none without a certificate to bind them to. */
export function requireBoundCertificate(client: RegisteredClient, binding: CertificateBinding | undefined): void {
  if (client.metadata.tls_client_certificate_bound_access_tokens && !binding) {
    throw new InvalidRequest(
      "this client's tokens are bound to its certificate (tls_client_certificate_bound_access_tokens): connect over mutual TLS",
    );
  }
}

/** §2.1.2: the registered subject or SAN (exactly one), or an agent's own SPIFFE ID by default. */
export function expectedName(
  client: RegisteredClient,
  trustDomainSuffix: string,
): { member: TlsClientAuthName; value: string } | undefined {
  const metadata = client.metadata as ClientMetadata & Partial<Record<TlsClientAuthName, string>>;
  const member = TLS_CLIENT_AUTH_NAMES.find((name) => metadata[name] !== undefined);
  if (member) return { member, value: metadata[member] as string };
  if (metadata.kind !== "agent") return undefined;
  const spiffeId = agentSpiffeId(agentTrustDomain(client.tenant, trustDomainSuffix), client.clientId);
  return { member: "tls_client_auth_san_uri", value: spiffeId };
}

/**
 * §2.1.2: whether the agent certificate's subject DN or one SAN of the kind equals `value` exactly.
 * DNS, email and IP SANs are matched by Node's native checks, without wildcards or the subject's
 * CN; the URI SAN of an X.509-SVID is its one SPIFFE ID, verified already; only a subject DN needs
 * the certificate decoded here.
 */
export function certificateHasName(
  der: Uint8Array,
  member: TlsClientAuthName,
  value: string,
  verified: Pick<VerifiedAgentCertificate, "spiffeId">,
): boolean {
  const certificate = new NodeCertificate(der);
  const exact = { subject: "never", wildcards: false, partialWildcards: false } as const;
  switch (member) {
    case "tls_client_auth_san_dns":
      return certificate.checkHost(value, exact)?.toLowerCase() === value.toLowerCase();
    case "tls_client_auth_san_email":
      return certificate.checkEmail(value, { subject: "never" }) === value;
    case "tls_client_auth_san_ip":
      return certificate.checkIP(canonicalIp(value)) !== undefined;
    case "tls_client_auth_san_uri":
      // SPIFFE X509-SVID §2: exactly one URI SAN, the SPIFFE ID.
      return verified.spiffeId === value;
    case "tls_client_auth_subject_dn": {
      return canonicalDn(value) === canonicalSubject(der);
    }
  }
}

/**
 * An RFC 4514 distinguished name in one spelling (attribute types upper case, values as decoded),
 * or undefined when it does not parse. RFC 4514 §2.1 writes the last RDN first.
 */
export function canonicalDn(dn: string): string | undefined {
  try {
    const rdns = new x509.Name(dn).toJSON();
    // An empty name would match every certificate with an empty subject (as X.509-SVIDs may have).
    return rdns.length > 0 ? canonicalRdns(rdns) : undefined;
  } catch {
    return undefined;
  }
}

/** A certificate's subject in the spelling of canonicalDn (its RDNs, last first as RFC 4514 writes them). */
function canonicalSubject(der: Uint8Array): string {
  return canonicalRdns(new x509.X509Certificate(Uint8Array.from(der)).subjectName.toJSON().reverse());
}

function canonicalRdns(rdns: x509.JsonName): string {
  return JSON.stringify(
    rdns.map((rdn) =>
      Object.entries(rdn)
        .map(([type, values]) => [type.toUpperCase(), values])
        .sort(),
    ),
  );
}

/** An IP address in one spelling (IPv6 compressed, lower case); the input when it is not one. */
export function canonicalIp(ip: string): string {
  try {
    return ip.includes(":") ? new URL(`http://[${ip}]/`).hostname.slice(1, -1) : new URL(`http://${ip}/`).hostname;
  } catch {
    return ip;
  }
}

/** §2.2: the certificate is one the client registered (x5c[0], or a key equal to its key), and valid now. */
function selfSigned(
  client: RegisteredClient,
  presented: PresentedCertificate,
  now: number,
  refuse: (reason: string, detail: string) => never,
): CertificateBinding {
  let certificate: NodeCertificate;
  try {
    certificate = new NodeCertificate(presented.leaf);
  } catch {
    return refuse("malformed", "the certificate does not parse");
  }
  // RFC 5280 §4.1.2.5: outside its validity a certificate proves nothing, self-signed or not.
  if (now < Date.parse(certificate.validFrom))
    return refuse("not_yet_valid", `not valid before ${certificate.validFrom}`);
  if (now > Date.parse(certificate.validTo)) return refuse("expired", `expired at ${certificate.validTo}`);
  const keys = client.metadata.jwks?.keys ?? [];
  if (!keys.some((jwk) => registersCertificate(jwk, presented.leaf, certificate))) {
    return refuse("unregistered_certificate", "neither the certificate nor its key is in the client's jwks");
  }
  return { x5tS256: x5tS256(presented.leaf), serial: certificate.serialNumber.toUpperCase() };
}

/** Whether a registered JWK names this certificate: its x5c[0] is the certificate, or the key is its key. */
function registersCertificate(jwk: Record<string, unknown>, der: Uint8Array, certificate: NodeCertificate): boolean {
  const x5c = jwk.x5c;
  if (Array.isArray(x5c) && typeof x5c[0] === "string") {
    return Buffer.from(x5c[0], "base64").equals(Buffer.from(der));
  }
  try {
    const registered = createPublicKey({ key: jwk as JsonWebKey, format: "jwk" });
    return registered.equals(certificate.publicKey);
  } catch {
    return false;
  }
}

function serialOf(der: Uint8Array): string {
  try {
    return new NodeCertificate(der).serialNumber.toUpperCase();
  } catch {
    return "";
  }
}

function logRefusal(logger: Logger, client: RegisteredClient, method: AuthMethod, reason: string, detail: string) {
  logger.info(
    { tenant: client.tenant, clientId: client.clientId, method, reason, detail },
    "client certificate refused (RFC 8705)",
  );
}

/** The mTLS listener's public base URL (http.mtls.publicUrl, default https://{host}:{port}), or undefined when it is off. */
export function mtlsBaseUrl(config: Config): string | undefined {
  const { mtls } = config.http;
  if (mtls.port === undefined) return undefined;
  if (mtls.publicUrl) return mtls.publicUrl;
  const host = mtls.host ?? config.http.host;
  // A wildcard listener is reached on loopback, as the HTTP edge's default public URL is.
  const shown = ["0.0.0.0", "::", "[::]"].includes(host) ? "127.0.0.1" : host;
  return `https://${shown.includes(":") ? `[${shown}]` : shown}:${mtls.port}`;
}

/**
 * The URL a request reached an endpoint at: its mTLS alias (§5) when it came over the mTLS listener,
 * else `url`. A DPoP proof's htu names the URL the client called (RFC 9449 §4.3).
 */
export function endpointAsReached(config: Config, req: IncomingMessage, url: string): string {
  const base = mtlsBaseUrl(config);
  if (!base || !(req.socket as TLSSocket | undefined)?.encrypted) return url;
  return `${base}${url.slice(config.publicBaseUrl.length)}`;
}
