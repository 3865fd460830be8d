// The one way Mandate fetches a URL that someone else chose (client ID metadata documents, client
// JWKS, and later federation metadata) without letting them aim the server at its own network
// (SSRF): https only, no credentials in the URL, no special-use host names (refused before any DNS
// query), every address the name resolves to must be public — checked on the addresses actually
// connected to, so DNS rebinding cannot swap one in — no redirects, no connection reuse, a deadline
// on the whole exchange and a small body limit.
//
// "Public" is decided on the parsed address (ipaddr.js), allow-list style: IPv4 unicast outside every
// special-purpose range (RFC 6890 registry), IPv6 only inside global unicast 2000::/3 and outside its
// special-purpose blocks; IPv6 forms that embed an IPv4 address (mapped, translated, 6to4, ISATAP)
// are judged by the IPv4 address they lead to, and NAT64 and Teredo are refused outright.
import { lookup as dnsLookup } from "node:dns";
import { request } from "node:https";
import { BlockList, isIP, type LookupFunction } from "node:net";
import ipaddr from "ipaddr.js";

export class UnsafeFetchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UnsafeFetchError";
  }
}

/** IPv4 special-purpose blocks (RFC 6890 and its registry), on top of ipaddr.js's own ranges. */
const BLOCKED_V4 = new BlockList();
for (const [net, prefix] of [
  ["0.0.0.0", 8], // "this network" (RFC 791)
  ["10.0.0.0", 8], // private (RFC 1918)
  ["100.64.0.0", 10], // shared address space, carrier-grade NAT (RFC 6598)
  ["127.0.0.0", 8], // loopback
  ["169.254.0.0", 16], // link-local, cloud metadata services (RFC 3927)
  ["172.16.0.0", 12], // private
  ["192.0.0.0", 24], // IETF protocol assignments (RFC 6890)
  ["192.0.2.0", 24], // documentation (RFC 5737)
  ["192.88.99.0", 24], // 6to4 relay anycast (RFC 7526)
  ["192.168.0.0", 16], // private
  ["198.18.0.0", 15], // benchmarking (RFC 2544)
  ["198.51.100.0", 24], // documentation
  ["203.0.113.0", 24], // documentation
  ["224.0.0.0", 4], // multicast
  ["240.0.0.0", 4], // reserved, and the broadcast address
] as const) {
  BLOCKED_V4.addSubnet(net, prefix, "ipv4");
}

/** Special-purpose blocks inside global unicast 2000::/3 (everything outside it is refused anyway). */
const BLOCKED_V6 = new BlockList();
for (const [net, prefix] of [
  ["2001::", 23], // IETF protocol assignments: Teredo 2001::/32, benchmarking, ORCHID... (RFC 2928)
  ["2001:db8::", 32], // documentation (RFC 3849)
  ["3fff::", 20], // documentation (RFC 9637)
  ["2620:4f:8000::", 48], // AS112 (RFC 7534)
] as const) {
  BLOCKED_V6.addSubnet(net, prefix, "ipv6");
}

function isPublicV4(address: ipaddr.IPv4): boolean {
  return address.range() === "unicast" && !BLOCKED_V4.check(address.toString(), "ipv4");
}

/** The IPv4 address an IPv6 address leads to, for the forms that embed one. */
function embeddedV4(address: ipaddr.IPv6): ipaddr.IPv4 | undefined {
  const p = address.parts as [number, number, number, number, number, number, number, number];
  const v4 = (hi: number, lo: number) => new ipaddr.IPv4([hi >> 8, hi & 0xff, lo >> 8, lo & 0xff]);
  // ::ffff:a.b.c.d (IPv4-mapped, RFC 4291 §2.5.5.2) and ::ffff:0:a.b.c.d (IPv4-translated, RFC 2765).
  if (address.isIPv4MappedAddress() || address.range() === "rfc6145") return v4(p[6], p[7]);
  // 2002:AABB:CCDD::/48 (6to4, RFC 3056 §2): the relay forwards to the embedded IPv4 address.
  if (p[0] === 0x2002) return v4(p[1], p[2]);
  // ISATAP interface identifiers ...:0:5efe:a.b.c.d / ...:200:5efe:a.b.c.d (RFC 5214 §6.1).
  if ((p[4] & 0xfdff) === 0 && p[5] === 0x5efe) return v4(p[6], p[7]);
  return undefined;
}

/** Whether `address` (an IP literal) is a public unicast address a fetch may connect to. */
export function isPublicAddress(address: string): boolean {
  // Strict forms only: no zone ids, no shorthand IPv4 ("127.1", "0x7f.1").
  if (isIP(address) === 0) return false;
  let parsed: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    parsed = ipaddr.parse(address);
  } catch {
    return false;
  }
  if (parsed.kind() === "ipv4") return isPublicV4(parsed as ipaddr.IPv4);
  const v6 = parsed as ipaddr.IPv6;
  if (v6.zoneId) return false;
  const embedded = embeddedV4(v6);
  if (embedded && !isPublicV4(embedded)) return false;
  if (v6.isIPv4MappedAddress() || v6.range() === "rfc6145") return true; // judged by its IPv4 address
  // Everything else (::/96 IPv4-compatible, ::7f00:1, 64:ff9b::/96 and 64:ff9b:1::/48 NAT64, fec0::/10
  // site-local, fc00::/7, fe80::/10, multicast...) lies outside global unicast 2000::/3 (RFC 4291 §2.4).
  if ((v6.parts[0] as number) >> 13 !== 0b001) return false;
  return ["unicast", "6to4"].includes(v6.range()) && !BLOCKED_V6.check(v6.toNormalizedString(), "ipv6");
}

/**
 * Special-use and local names (RFC 6761, RFC 6762, RFC 8375 and the like): refused without a DNS
 * query. Also single-label names (resolved through search domains) and trailing-dot forms.
 */
const LOCAL_SUFFIXES = [
  "localhost",
  "local",
  "internal",
  "localdomain",
  "home.arpa",
  "lan",
  "intranet",
  "corp",
  "private",
  "invalid",
  "test",
  "onion",
  "alt",
  "arpa",
];

export function isSpecialUseHostname(hostname: string): boolean {
  const host = hostname.toLowerCase();
  if (host.endsWith(".") || !host.includes(".")) return true;
  return LOCAL_SUFFIXES.some((suffix) => host === suffix || host.endsWith(`.${suffix}`));
}

/** Why a URL may not be fetched (or registered for fetching), or undefined when it may. */
export function fetchTargetProblem(url: string, options: { allowPrivate?: boolean | undefined } = {}) {
  let target: URL;
  try {
    target = new URL(url);
  } catch {
    return "not a URL";
  }
  if (target.protocol !== "https:") return "only https URLs are fetched";
  if (target.username || target.password) return "URLs with credentials are not fetched";
  if (options.allowPrivate) return undefined;
  // The URL parser has already normalised IPv4 shorthand ("127.1", "0x7f.1", "2130706433").
  const host = target.hostname.replace(/^\[|\]$/g, "");
  if (isIP(host)) return isPublicAddress(host) ? undefined : `${host} is not a public address`;
  if (isSpecialUseHostname(host)) return `${host} is a local or special-use name`;
  return undefined;
}

export interface SafeFetchOptions {
  maxBytes: number;
  /** Deadline for the whole exchange: DNS, connection, TLS, headers and body. */
  timeoutMs: number;
  /** Tests only: allow loopback and private addresses (oauth.allowPrivateMetadataHosts). */
  allowPrivate?: boolean | undefined;
  accept?: string;
  /** POST with this body (an OIDC token request); GET when absent. */
  post?: { body: string; headers: Record<string, string> } | undefined;
}

export interface SafeResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** The body decoded as UTF-8 (invalid sequences replaced; use `bytes` to decode strictly). */
  body: string;
  bytes: Buffer;
}

export function safeFetch(url: string, options: SafeFetchOptions): Promise<SafeResponse> {
  const problem = fetchTargetProblem(url, options);
  if (problem) return Promise.reject(new UnsafeFetchError(problem));
  const target = new URL(url);
  const lookup: LookupFunction = (hostname, lookupOptions, callback) => {
    dnsLookup(hostname, { ...lookupOptions, all: true }, (error, addresses) => {
      if (error) return callback(error, "", 0);
      const list = addresses as Array<{ address: string; family: number }>;
      const bad = list.find((a) => !options.allowPrivate && !isPublicAddress(a.address));
      if (bad || list.length === 0) {
        return callback(new UnsafeFetchError(`${hostname} resolves to a non-public address`), "", 0);
      }
      if (lookupOptions.all) return (callback as unknown as (e: null, a: typeof list) => void)(null, list);
      const first = list[0] as { address: string; family: number };
      callback(null, first.address, first.family);
    });
  };
  return new Promise((resolve, reject) => {
    const req = request(
      target,
      {
        method: options.post ? "POST" : "GET",
        lookup,
        // A fresh connection each time: a pooled socket would skip the address check.
        agent: false,
        timeout: options.timeoutMs,
        headers: {
          ...options.post?.headers,
          accept: options.accept ?? "application/json",
          "user-agent": "mandate",
          ...(options.post ? { "content-length": String(Buffer.byteLength(options.post.body)) } : {}),
        },
      },
      (res) => {
        const status = res.statusCode ?? 0;
        // No redirects: a redirect could lead anywhere, including inside the network.
        if (status >= 300 && status < 400) {
          res.resume();
          return req.destroy(new UnsafeFetchError("redirects are not followed"));
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (chunk: Buffer) => {
          size += chunk.length;
          if (size > options.maxBytes) {
            req.destroy(new UnsafeFetchError(`the response is larger than ${options.maxBytes} bytes`));
          } else chunks.push(chunk);
        });
        res.on("end", () => {
          clearTimeout(deadline);
          const bytes = Buffer.concat(chunks);
          resolve({ status, headers: res.headers, body: bytes.toString("utf8"), bytes });
        });
        res.on("error", reject);
      },
    );
    // The socket timeout catches silence; the deadline also catches a server that trickles bytes.
    const deadline = setTimeout(
      () => req.destroy(new UnsafeFetchError(`no complete response within ${options.timeoutMs} ms`)),
      options.timeoutMs,
    );
    req.on("timeout", () => req.destroy(new UnsafeFetchError(`no response within ${options.timeoutMs} ms`)));
    req.on("error", (error) => {
      clearTimeout(deadline);
      reject(error);
    });
    req.on("close", () => clearTimeout(deadline));
    req.end(options.post?.body);
  });
}
