// The address a request comes from, for per-IP limits: the socket's peer, unless that peer is a
// proxy listed in `http.trustedProxies` — then the nearest X-Forwarded-For hop that is not itself a
// trusted proxy (the header's left part is whatever the client wrote, so it is never trusted).
import type { IncomingMessage } from "node:http";
import { BlockList, isIP } from "node:net";
import ipaddr from "ipaddr.js";

export class ClientAddresses {
  readonly #trusted = new BlockList();
  readonly #any: boolean;

  /** `trustedProxies`: IP addresses or CIDR ranges (e.g. "10.0.0.0/8", "fd00::/8"). */
  constructor(trustedProxies: readonly string[] = []) {
    for (const entry of trustedProxies) {
      const [address, prefix] = entry.split("/") as [string, string | undefined];
      const family = isIP(address);
      if (family === 0) throw new Error(`not an IP address or CIDR range: ${entry}`);
      const type = family === 4 ? "ipv4" : "ipv6";
      if (prefix === undefined) this.#trusted.addAddress(address, type);
      else this.#trusted.addSubnet(address, Number(prefix), type);
    }
    this.#any = trustedProxies.length > 0;
  }

  of(req: IncomingMessage): string {
    let address = normalize(req.socket.remoteAddress ?? "");
    if (!this.#any || !this.#isTrusted(address)) return address;
    const header = req.headers["x-forwarded-for"];
    const hops = (Array.isArray(header) ? header.join(",") : (header ?? ""))
      .split(",")
      .map((hop) => normalize(hop.trim()))
      .filter((hop) => isIP(hop) !== 0);
    // Walk from the nearest hop back while the hops are our own proxies.
    while (hops.length > 0 && this.#isTrusted(address)) address = hops.pop() as string;
    return address;
  }

  /** The key a per-IP limit counts under: the address, or its /64 for IPv6 (one host holds a whole /64). */
  static limitKey(address: string): string {
    if (isIP(address) !== 6) return address;
    try {
      const parts = ipaddr.IPv6.parse(address).parts.slice(0, 4);
      return `${parts.map((p) => p.toString(16)).join(":")}::/64`;
    } catch {
      return address;
    }
  }

  #isTrusted(address: string): boolean {
    const family = isIP(address);
    return family !== 0 && this.#trusted.check(address, family === 4 ? "ipv4" : "ipv6");
  }
}

/** IPv4-mapped IPv6 ("::ffff:1.2.3.4", what dual-stack sockets report) as plain IPv4. */
function normalize(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return mapped ? (mapped[1] as string) : address;
}
