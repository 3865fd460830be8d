// net.cidr_* as OPA (topdown/cidr.go) on Go's net package: addresses parse as netip.ParseAddr
// (dotted IPv4 without leading zeros, RFC 4291 IPv6 with an optional trailing IPv4, no zone in a
// CIDR), and IPv4-mapped IPv6 addresses compare as IPv4, as net.IPNet.Contains does.
import { type Builtin, str } from "./args.ts";

type IP = Uint8Array;

const V4_IN_V6 = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

function parseIPv4Fields(s: string, out: IP, at: number): boolean {
  const fields = s.split(".");
  if (fields.length !== 4) return false;
  for (let i = 0; i < 4; i++) {
    const f = fields[i] as string;
    if (!/^\d{1,3}$/.test(f) || (f.length > 1 && f[0] === "0")) return false;
    const v = Number(f);
    if (v > 255) return false;
    out[at + i] = v;
  }
  return true;
}

/** netip.ParseAddr as 16 bytes (IPv4 as ::ffff:a.b.c.d), with its bit length; undefined if invalid or zoned. */
function parseAddr(s: string): { ip: IP; bits: 32 | 128 } | undefined {
  const first = /[.:%]/.exec(s)?.[0];
  if (first === ".") {
    const ip = new Uint8Array(16);
    ip.set(V4_IN_V6);
    return parseIPv4Fields(s, ip, 12) ? { ip, bits: 32 } : undefined;
  }
  if (first !== ":" || s.includes("%")) return undefined;
  const ip = new IPv6Text(s).parse();
  return ip ? { ip, bits: 128 } : undefined;
}

type Step = "next" | "end" | "invalid";

/** RFC 4291 text: groups of up to four hex digits, one "::" for a run of zero groups, an optional trailing IPv4 address. */
class IPv6Text {
  readonly #ip = new Uint8Array(16);
  #rest: string;
  /** Bytes filled so far. */
  #filled = 0;
  /** Where "::" stands, in bytes; -1 if it does not appear. */
  #ellipsis = -1;

  constructor(text: string) {
    this.#rest = text;
  }

  parse(): IP | undefined {
    if (this.#rest.startsWith("::")) {
      this.#ellipsis = 0;
      this.#rest = this.#rest.slice(2);
      if (this.#rest === "") return this.#ip;
    }
    let step: Step = "next";
    while (this.#filled < 16 && step === "next") step = this.#group();
    if (step === "invalid" || this.#rest !== "") return undefined;
    return this.#expandEllipsis() ? this.#ip : undefined;
  }

  /** One group, and the separator after it. */
  #group(): Step {
    const digits = /^[0-9A-Fa-f]*/.exec(this.#rest)?.[0] ?? "";
    if (digits.length === 0 || digits.length > 4) return "invalid";
    if (this.#rest[digits.length] === ".") return this.#trailingIPv4();
    const v = Number.parseInt(digits, 16);
    this.#ip[this.#filled] = v >> 8;
    this.#ip[this.#filled + 1] = v & 0xff;
    this.#filled += 2;
    this.#rest = this.#rest.slice(digits.length);
    return this.#separator();
  }

  /** A trailing IPv4 address fills the last four bytes. */
  #trailingIPv4(): Step {
    if ((this.#ellipsis < 0 && this.#filled !== 12) || this.#filled + 4 > 16) return "invalid";
    if (!parseIPv4Fields(this.#rest, this.#ip, this.#filled)) return "invalid";
    this.#rest = "";
    this.#filled += 4;
    return "end";
  }

  /** After a group: the end, ":" before the next group, or (once) "::". */
  #separator(): Step {
    if (this.#rest === "") return "end";
    if (this.#rest[0] !== ":" || this.#rest.length === 1) return "invalid";
    this.#rest = this.#rest.slice(1);
    if (this.#rest[0] !== ":") return "next";
    if (this.#ellipsis >= 0) return "invalid";
    this.#ellipsis = this.#filled;
    this.#rest = this.#rest.slice(1);
    return this.#rest === "" ? "end" : "next";
  }

  /** Moves the groups after "::" to the end, zeros in between; "::" must stand for at least one group. */
  #expandEllipsis(): boolean {
    if (this.#filled === 16) return this.#ellipsis < 0;
    if (this.#ellipsis < 0) return false;
    const n = 16 - this.#filled;
    for (let j = this.#filled - 1; j >= this.#ellipsis; j--) this.#ip[j + n] = this.#ip[j] as number;
    this.#ip.fill(0, this.#ellipsis, this.#ellipsis + n);
    return true;
  }
}

/** net.IP.To4: the 4-byte form of an IPv4 or IPv4-mapped address. */
function to4(ip: IP): IP | undefined {
  if (ip.length === 4) return ip;
  if (ip.length === 16 && V4_IN_V6.every((b, i) => ip[i] === b)) return ip.slice(12);
  return undefined;
}

function cidrMask(ones: number, bits: number): IP {
  const m = new Uint8Array(bits / 8);
  for (let i = 0; i < m.length; i++) {
    const n = Math.max(0, Math.min(8, ones - i * 8));
    m[i] = (0xff << (8 - n)) & 0xff;
  }
  return m;
}

/** net.IP.Mask. */
function maskIP(ip: IP, mask: IP): IP | undefined {
  let m = mask;
  let a = ip;
  if (m.length === 16 && a.length === 4 && m.slice(0, 12).every((b) => b === 0xff)) m = m.slice(12);
  if (m.length === 4 && a.length === 16 && V4_IN_V6.every((b, i) => a[i] === b)) a = a.slice(12);
  if (a.length !== m.length) return undefined;
  return a.map((b, i) => b & (m[i] as number));
}

interface IPNet {
  ip: IP;
  mask: IP;
}

function parseCIDR(s: string): { ip: IP; net: IPNet } {
  const slash = s.indexOf("/");
  const addr = slash < 0 ? undefined : parseAddr(s.slice(0, slash));
  const prefix = slash < 0 ? "" : s.slice(slash + 1);
  if (!addr || !/^\d+$/.test(prefix) || Number(prefix) > addr.bits) throw new Error(`invalid CIDR address: ${s}`);
  const mask = cidrMask(Number(prefix), addr.bits);
  return { ip: addr.ip, net: { ip: maskIP(addr.ip, mask) as IP, mask } };
}

/** net.IPNet.Contains. */
function contains(n: IPNet, ipIn: IP): boolean {
  let nn = to4(n.ip) ?? n.ip;
  let m = n.mask;
  if (m.length === 4 && nn.length !== 4) return false;
  if (m.length === 16 && nn.length === 4) m = m.slice(12);
  if (nn.length !== 4 && nn.length !== 16) nn = new Uint8Array(0);
  const ip = to4(ipIn) ?? ipIn;
  if (ip.length !== nn.length) return false;
  for (let i = 0; i < ip.length; i++) {
    if (((nn[i] as number) & (m[i] as number)) !== ((ip[i] as number) & (m[i] as number))) return false;
  }
  return true;
}

/** The last address of a network (OPA's getLastIP): its address with every host bit set. */
function lastIP(n: IPNet): IP {
  return n.ip.map((b, i) => b | (~(n.mask[n.mask.length - n.ip.length + i] ?? 0) & 0xff));
}

/** net.IP.String: dotted IPv4 (also for IPv4-mapped), else RFC 5952 IPv6. */
function ipString(ip: IP): string {
  const v4 = to4(ip);
  if (v4) return Array.from(v4).join(".");
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((ip[i] as number) << 8) | (ip[i + 1] as number));
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; i++) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i >= 2 && j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
  }
  if (bestStart < 0) return groups.map((g) => g.toString(16)).join(":");
  const head = groups.slice(0, bestStart).map((g) => g.toString(16));
  const tail = groups.slice(bestStart + bestLen).map((g) => g.toString(16));
  return `${head.join(":")}::${tail.join(":")}`;
}

/** Addresses beyond this many are refused by net.cidr_expand (OPA relies on its query timeout). */
const MAX_EXPAND = 1 << 20;

export const netBuiltins: Record<string, Builtin> = {
  "net.cidr_contains": (cidr, cidrOrIP) => {
    const a = parseCIDR(str(cidr, 1)).net;
    const b = str(cidrOrIP, 1);
    const ip = b.includes("/") ? undefined : parseAddr(b);
    if (ip) return contains(a, ip.ip);
    let other: IPNet;
    try {
      other = parseCIDR(b).net;
    } catch {
      throw new Error(`not a valid textual representation of an IP address or CIDR: ${b}`);
    }
    // A contains B when it contains B's first and last addresses.
    return contains(a, other.ip) && contains(a, lastIP(other));
  },

  "net.cidr_intersects": (cidr1, cidr2) => {
    const a = parseCIDR(str(cidr1, 1)).net;
    const b = parseCIDR(str(cidr2, 1)).net;
    return contains(a, b.ip) || contains(b, a.ip);
  },

  "net.cidr_is_valid": (cidr) => {
    if (typeof cidr !== "string") return false;
    try {
      parseCIDR(cidr);
      return true;
    } catch {
      return false;
    }
  },

  // A set in OPA: returned as an array in set (string) order.
  "net.cidr_expand": (cidr) => {
    const { ip, net } = parseCIDR(str(cidr, 1));
    const start = maskIP(ip, net.mask);
    if (!start) return [];
    const ones = net.mask.reduce((n, b) => n + (b.toString(2).match(/1/g)?.length ?? 0), 0);
    const hostBits = net.mask.length * 8 - ones;
    if (hostBits > 20) throw new Error(`too many addresses in ${cidr} (more than ${MAX_EXPAND})`);
    const out: string[] = [];
    const cur = start.slice();
    while (contains(net, cur)) {
      out.push(ipString(cur));
      if (out.length > MAX_EXPAND) break;
      let j = cur.length - 1;
      for (; j >= 0; j--) {
        cur[j] = ((cur[j] as number) + 1) & 0xff;
        if (cur[j] !== 0) break;
      }
      if (j < 0) break;
    }
    return out.sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
  },
};
