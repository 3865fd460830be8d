// The client certificate a request presented: from the TLS handshake when the connection is ours,
// or, behind a TLS-terminating proxy, from the header that proxy sets, believed only when the
// request comes from a configured proxy address. Nothing here verifies the certificate (our mTLS
// listener accepts any certificate): certificate-chain.ts does, against the tenant's bundle.
//
// Headers:
// · RFC 9440 §2: `Client-Cert` is an RFC 8941 Byte Sequence (`:<base64 DER>:`), `Client-Cert-Chain`
//   a List of Byte Sequences (the intermediates, leaf excluded).
// · Envoy's `X-Forwarded-Client-Cert`: comma-separated elements of `key=value` pairs separated by
//   semicolons, values optionally double-quoted with backslash escapes; `Cert` is the URL-encoded
//   PEM leaf and `Chain` the URL-encoded PEM chain (Envoy includes the leaf in it; we drop it).
//   Each proxy that forwards appends its element, so the LAST element is the one the nearest proxy —
//   the one we trust — added; earlier elements are whatever came before it and are ignored.
import { X509Certificate } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { BlockList, isIP } from "node:net";
import { type DetailedPeerCertificate, TLSSocket } from "node:tls";
import type { Logger } from "../logger.ts";
import { CertificateRefused, type PresentedCertificate } from "./types.ts";

export interface PresentedCertificateOptions {
  /** Which proxy header carries the certificate, if any. */
  header: "none" | "client-cert" | "x-forwarded-client-cert";
  /** Addresses (IPs or CIDR ranges) of the proxies whose header is believed. */
  proxies: readonly string[];
}

/**
 * The certificate the request's client presented, or undefined when it presented none. A header
 * from a trusted proxy that does not parse is CertificateRefused("malformed").
 *
 * A configured proxy's header wins over the TLS handshake: a proxy that re-originates mutual TLS to
 * us presents its own certificate, not the agent's. Without the header, the handshake's certificate.
 */
export function presentedCertificate(
  req: IncomingMessage,
  options: PresentedCertificateOptions,
  logger?: Logger,
): PresentedCertificate | undefined {
  return (options.header === "none" ? undefined : fromProxyHeader(req, options, logger)) ?? tlsCertificate(req);
}

function fromProxyHeader(
  req: IncomingMessage,
  options: PresentedCertificateOptions,
  logger: Logger | undefined,
): PresentedCertificate | undefined {
  const value = headerValue(req, options.header);
  const chainValue = options.header === "client-cert" ? headerValue(req, "client-cert-chain") : undefined;
  if (value === undefined && chainValue === undefined) return undefined;
  const address = req.socket.remoteAddress ?? "";
  if (!addressInRanges(address, options.proxies)) {
    logger?.debug(
      { remoteAddress: address, header: options.header },
      "client certificate header ignored: not from a configured proxy",
    );
    return undefined;
  }
  return options.header === "client-cert" ? parseClientCertHeaders(value, chainValue) : parseXfcc(value as string);
}

/** Whether `address` (IPv4, IPv6, or IPv4-mapped IPv6) is one of `ranges` (IPs or CIDR ranges). */
export function addressInRanges(address: string, ranges: readonly string[]): boolean {
  const ip = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1] ?? address;
  const family = isIP(ip);
  if (family === 0 || ranges.length === 0) return false;
  const list = new BlockList();
  for (const range of ranges) {
    const [base, prefix] = range.split("/") as [string, string | undefined];
    const rangeFamily = isIP(base);
    if (rangeFamily === 0) continue; // config validation refuses these; never widen on a bad entry
    const type = rangeFamily === 4 ? "ipv4" : "ipv6";
    if (prefix === undefined) list.addAddress(base, type);
    else list.addSubnet(base, Number(prefix), type);
  }
  return list.check(ip, family === 4 ? "ipv4" : "ipv6");
}

/** The peer certificate of a TLS connection, with the chain the handshake exposes (leaf excluded). */
function tlsCertificate(req: IncomingMessage): PresentedCertificate | undefined {
  const socket = req.socket;
  if (!(socket instanceof TLSSocket)) return undefined;
  const peer = socket.getPeerCertificate(true) as DetailedPeerCertificate | undefined;
  if (!peer?.raw) return undefined;
  const chain: Uint8Array[] = [];
  const seen = new Set<DetailedPeerCertificate>([peer]);
  // A self-signed certificate is its own issuerCertificate: stop at any certificate already seen.
  for (let next = peer.issuerCertificate; next?.raw && !seen.has(next); next = next.issuerCertificate) {
    seen.add(next);
    chain.push(new Uint8Array(next.raw));
  }
  return { leaf: new Uint8Array(peer.raw), chain, source: "tls" };
}

/** A proxy's header names certificates: each must be DER X.509, or the header is malformed. */
function certificatesParse(presented: PresentedCertificate): PresentedCertificate {
  for (const [i, der] of [presented.leaf, ...presented.chain].entries()) {
    try {
      new X509Certificate(der);
    } catch {
      throw malformed(
        i === 0 ? "the header's certificate is not DER X.509" : `chain certificate ${i} is not DER X.509`,
      );
    }
  }
  return presented;
}

function headerValue(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value.join(",") : value;
}

// RFC 9440 -------------------------------------------------------------------------------------

/** RFC 8941 §3.3.5 Byte Sequence, with optional parameters (§3.1.2), which RFC 9440 defines none of. */
const SF_BINARY = /^:([A-Za-z0-9+/]*={0,2}):((?:;[a-z*][a-z0-9_.*-]*(?:=[^;,]*)?)*)$/;

/** RFC 9440 §2: the certificate in `Client-Cert` and the chain in `Client-Cert-Chain` (header values). */
export function parseClientCertHeaders(
  value: string | undefined,
  chainValue: string | undefined,
): PresentedCertificate {
  // RFC 9440 §2.2: Client-Cert-Chain never comes without Client-Cert.
  if (value === undefined) throw malformed("Client-Cert-Chain without Client-Cert");
  const leaf = sfBinary(value.trim(), "Client-Cert");
  const members = chainValue?.trim() ? chainValue.split(",") : [];
  const chain = members.map((member, i) => sfBinary(member.trim(), `Client-Cert-Chain member ${i + 1}`));
  return certificatesParse({ leaf, chain, source: "client-cert-header" });
}

function sfBinary(item: string, what: string): Uint8Array {
  const match = SF_BINARY.exec(item);
  if (!match) throw malformed(`${what} is not a structured-field Byte Sequence (RFC 8941 §3.3.5)`);
  const der = new Uint8Array(Buffer.from(match[1] as string, "base64"));
  if (der.length === 0) throw malformed(`${what} is empty`);
  return der;
}

// X-Forwarded-Client-Cert ------------------------------------------------------------------------

/** The certificate the nearest proxy put in an `X-Forwarded-Client-Cert` header value. */
export function parseXfcc(value: string): PresentedCertificate {
  const elements = xfccElements(value);
  const nearest = elements[elements.length - 1];
  const cert = nearest?.get("cert");
  if (cert === undefined) throw malformed("the nearest X-Forwarded-Client-Cert element has no Cert");
  const [leaf, ...extra] = pemCertificates(urlDecode(cert, "Cert"), "Cert");
  if (!leaf || extra.length > 0) throw malformed("X-Forwarded-Client-Cert Cert is not exactly one PEM certificate");
  const chainPem = nearest?.get("chain");
  const chain = chainPem === undefined ? [] : pemCertificates(urlDecode(chainPem, "Chain"), "Chain");
  return certificatesParse({
    leaf,
    // Envoy's Chain starts with the leaf itself; keep only what is above it.
    chain: chain.filter((der) => !Buffer.from(der).equals(Buffer.from(leaf))),
    source: "xfcc-header",
  });
}

/** Splits the header into its elements' key → value maps (keys lower-cased; URI/DNS may repeat, so later wins). */
function xfccElements(value: string): Map<string, string>[] {
  const elements: Map<string, string>[] = [];
  let element = new Map<string, string>();
  let at = 0;
  while (at < value.length) {
    const equals = value.indexOf("=", at);
    if (equals < 0) throw malformed("an X-Forwarded-Client-Cert pair has no '='");
    const key = value.slice(at, equals).trim().toLowerCase();
    if (!/^[a-z]+$/.test(key)) throw malformed("an X-Forwarded-Client-Cert key is not a word");
    const [pairValue, end] = xfccValue(value, equals + 1);
    if ((key === "cert" || key === "chain") && element.has(key))
      throw malformed(`X-Forwarded-Client-Cert repeats ${key}`);
    element.set(key, pairValue);
    at = end + 1;
    if (value[end] === "," || end >= value.length) {
      elements.push(element);
      element = new Map();
    }
  }
  if (elements.length === 0 || value.trimEnd().endsWith(",") || value.trimEnd().endsWith(";")) {
    throw malformed("X-Forwarded-Client-Cert has an empty element or pair");
  }
  return elements;
}

/** One value from `start`: quoted (backslash escapes) or bare; returns it and where its separator is. */
function xfccValue(header: string, start: number): [string, number] {
  let at = start;
  while (header[at] === " ") at++;
  return header[at] === '"' ? quotedValue(header, at) : bareValue(header, at);
}

function bareValue(header: string, start: number): [string, number] {
  let end = start;
  while (end < header.length && header[end] !== ";" && header[end] !== ",") end++;
  const bare = header.slice(start, end).trim();
  if (bare.includes('"') || bare.includes("\\")) throw malformed("an X-Forwarded-Client-Cert value has a stray quote");
  return [bare, end];
}

/** A quoted value from its opening quote at `start`. */
function quotedValue(header: string, start: number): [string, number] {
  let text = "";
  let at = start + 1;
  for (; at < header.length && header[at] !== '"'; at++) {
    if (header[at] === "\\") at++;
    if (at >= header.length) break;
    text += header[at];
  }
  if (header[at] !== '"') throw malformed("an X-Forwarded-Client-Cert quoted value is not closed");
  at++;
  while (header[at] === " ") at++;
  if (at < header.length && header[at] !== ";" && header[at] !== ",") {
    throw malformed("an X-Forwarded-Client-Cert quoted value is followed by text");
  }
  return [text, at];
}

function urlDecode(text: string, what: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw malformed(`X-Forwarded-Client-Cert ${what} is not URL-encoded`);
  }
}

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----\r?\n([A-Za-z0-9+/=\r\n]+)-----END CERTIFICATE-----/g;

/** The DER of each PEM certificate in `text`, which must hold nothing else but whitespace. */
function pemCertificates(text: string, what: string): Uint8Array[] {
  const ders: Uint8Array[] = [];
  const rest = text.replace(PEM_BLOCK, (_, body: string) => {
    ders.push(new Uint8Array(Buffer.from(body.replace(/\s/g, ""), "base64")));
    return "";
  });
  if (rest.trim() !== "")
    throw malformed(`X-Forwarded-Client-Cert ${what} holds something other than PEM certificates`);
  if (ders.some((der) => der.length === 0)) throw malformed(`X-Forwarded-Client-Cert ${what} has an empty certificate`);
  return ders;
}

function malformed(message: string): CertificateRefused {
  return new CertificateRefused("malformed", message);
}
