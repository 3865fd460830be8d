// Fetching URLs that clients chose (client ID metadata documents, jwks_uri) without letting them
// aim the server at its own network (SSRF): https only, every address the name resolves to must be
// public (checked on the address actually connected to, so DNS rebinding cannot swap it in), no
// redirects, a short timeout and a small body limit.

import { lookup as dnsLookup } from "node:dns";
import { request } from "node:https";
import { BlockList, isIP, type LookupFunction } from "node:net";

export class UnsafeFetchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UnsafeFetchError";
  }
}

const BLOCKED = new BlockList();
for (const [net, prefix] of [
  ["0.0.0.0", 8],
  ["10.0.0.0", 8],
  ["100.64.0.0", 10],
  ["127.0.0.0", 8],
  ["169.254.0.0", 16],
  ["172.16.0.0", 12],
  ["192.0.0.0", 24],
  ["192.0.2.0", 24],
  ["192.168.0.0", 16],
  ["198.18.0.0", 15],
  ["198.51.100.0", 24],
  ["203.0.113.0", 24],
  ["224.0.0.0", 4],
  ["240.0.0.0", 4],
] as const) {
  BLOCKED.addSubnet(net, prefix, "ipv4");
}
// IPv4-mapped IPv6 (::ffff:a.b.c.d) is checked as IPv4 in isPublicAddress: BlockList matches IPv4
// addresses against mapped ranges, so listing ::ffff:0:0/96 here would block every IPv4 address.
for (const [net, prefix] of [
  ["::", 128],
  ["::1", 128],
  ["64:ff9b::", 96],
  ["100::", 64],
  ["2001:db8::", 32],
  ["fc00::", 7],
  ["fe80::", 10],
  ["ff00::", 8],
] as const) {
  BLOCKED.addSubnet(net, prefix, "ipv6");
}

export function isPublicAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 0) return false;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return !BLOCKED.check(mapped[1] as string, "ipv4");
  return !BLOCKED.check(address, family === 4 ? "ipv4" : "ipv6");
}

export interface SafeFetchOptions {
  maxBytes: number;
  timeoutMs: number;
  /** Tests only: allow loopback and private addresses. */
  allowPrivate?: boolean;
  accept?: string;
}

export interface SafeResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export function safeFetch(url: string, options: SafeFetchOptions): Promise<SafeResponse> {
  let target: URL;
  try {
    target = new URL(url);
  } catch {
    return Promise.reject(new UnsafeFetchError("not a URL"));
  }
  if (target.protocol !== "https:") return Promise.reject(new UnsafeFetchError("only https URLs are fetched"));
  if (target.username || target.password)
    return Promise.reject(new UnsafeFetchError("URLs with credentials are not fetched"));
  const host = target.hostname.replace(/^\[|\]$/g, "");
  if (isIP(host) && !options.allowPrivate && !isPublicAddress(host)) {
    return Promise.reject(new UnsafeFetchError(`${host} is not a public address`));
  }
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
        method: "GET",
        lookup,
        timeout: options.timeoutMs,
        headers: { accept: options.accept ?? "application/json", "user-agent": "mandate" },
      },
      (res) => {
        const status = res.statusCode ?? 0;
        // No redirects: a redirect could lead anywhere, including inside the network.
        if (status >= 300 && status < 400) {
          res.resume();
          return reject(new UnsafeFetchError("redirects are not followed"));
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (chunk: Buffer) => {
          size += chunk.length;
          if (size > options.maxBytes) {
            req.destroy(new UnsafeFetchError(`the response is larger than ${options.maxBytes} bytes`));
          } else chunks.push(chunk);
        });
        res.on("end", () => resolve({ status, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new UnsafeFetchError(`no response within ${options.timeoutMs} ms`)));
    req.on("error", reject);
    req.end();
  });
}
