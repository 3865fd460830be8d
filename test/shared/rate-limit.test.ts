// Token-bucket rate limits: in-process buckets, Redis-backed buckets shared by two limiters (as two
// replicas would share them; the real server on 127.0.0.1:6379, a key prefix of its own per test),
// and the fall-back to in-process buckets when Redis cannot be reached. No timing assertions: time
// is a fake clock for the in-process buckets, and bursts are bounded.
import { randomUUID } from "node:crypto";
import { createServer } from "node:net";
import { Writable } from "node:stream";
import { afterAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../services/shared/config.ts";
import { createLogger } from "../../services/shared/logger.ts";
import { ClientAddresses } from "../../services/shared/net/client-ip.ts";
import { ClientQuotas, quotaRule } from "../../services/shared/oauth/client-quota.ts";
import { MemoryRateLimiter, openRateLimiter, type RateLimiter } from "../../services/shared/rate-limit.ts";
import { Store } from "../../services/shared/store/store.ts";
import { engines } from "../helpers/engines.ts";

const REDIS_URL = process.env.MANDATE_TEST_REDIS_URL ?? "redis://127.0.0.1:6379/0";
const opened: RateLimiter[] = [];
const open = (limiter: RateLimiter) => {
  opened.push(limiter);
  return limiter;
};
afterAll(async () => {
  for (const limiter of opened) await limiter.close();
});

/** A port nothing listens on. */
function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

describe("in-process token buckets", () => {
  it("allows a burst of `capacity`, then refuses with Retry-After until tokens refill", async () => {
    let now = 1_000_000;
    const limiter = open(new MemoryRateLimiter(() => now));
    const rule = { capacity: 3, refillPerSecond: 0.5 };
    for (let i = 0; i < 3; i++) expect((await limiter.take("k", rule)).allowed).toBe(true);
    expect(await limiter.take("k", rule)).toEqual({ allowed: false, retryAfterSeconds: 2 });
    expect((await limiter.take("other", rule)).allowed).toBe(true);
    now += 2000; // one token back
    expect((await limiter.take("k", rule)).allowed).toBe(true);
    expect((await limiter.take("k", rule)).allowed).toBe(false);
  });

  it("cost 0 only checks (counting failures), and memory stays bounded", async () => {
    let now = 0;
    const limiter = new MemoryRateLimiter(() => now, 100);
    const rule = { capacity: 2, refillPerSecond: 1 };
    for (let i = 0; i < 5; i++) expect((await limiter.take("check", rule, 0)).allowed).toBe(true);
    await limiter.take("check", rule, 2);
    expect(await limiter.take("check", rule, 0)).toEqual({ allowed: false, retryAfterSeconds: 1 });
    now += 1000;
    expect((await limiter.take("check", rule, 0)).allowed).toBe(true);
    for (let i = 0; i < 1000; i++) await limiter.take(`key-${i}`, rule);
    expect(limiter.size).toBeLessThanOrEqual(100);
  });
});

describe("Redis-backed token buckets", () => {
  it("share one bucket between two limiters (two replicas)", async () => {
    const keyPrefix = `mandate:test:rl:${randomUUID()}:`;
    const a = open(openRateLimiter({ redisUrl: REDIS_URL, keyPrefix }));
    const b = open(openRateLimiter({ redisUrl: REDIS_URL, keyPrefix }));
    const rule = { capacity: 4, refillPerSecond: 0.01 };
    const results = [];
    for (let i = 0; i < 3; i++) {
      results.push(await a.take("client", rule));
      results.push(await b.take("client", rule));
    }
    expect(results.map((r) => r.allowed)).toEqual([true, true, true, true, false, false]);
    expect(results[5]?.retryAfterSeconds).toBeGreaterThanOrEqual(1);
    // The bucket is exhausted for both; another key is not.
    expect((await b.take("client", rule)).allowed).toBe(false);
    expect((await a.take("another", rule)).allowed).toBe(true);
  });

  it("lets exactly `capacity` of many concurrent takes through", async () => {
    const keyPrefix = `mandate:test:rl:${randomUUID()}:`;
    const a = open(openRateLimiter({ redisUrl: REDIS_URL, keyPrefix }));
    const b = open(openRateLimiter({ redisUrl: REDIS_URL, keyPrefix }));
    const rule = { capacity: 5, refillPerSecond: 0.01 };
    const decisions = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).take("burst", rule)));
    expect(decisions.filter((d) => d.allowed)).toHaveLength(5);
  });

  it("falls back to in-process buckets, with a warning, when Redis is unreachable", async () => {
    const lines: string[] = [];
    const logger = createLogger(
      "warn",
      new Writable({
        write(chunk, _encoding, done) {
          lines.push(String(chunk));
          done();
        },
      }),
    );
    const limiter = open(
      openRateLimiter({ redisUrl: `redis://127.0.0.1:${await closedPort()}/0`, logger, redisTimeoutMs: 300 }),
    );
    const rule = { capacity: 2, refillPerSecond: 0.01 };
    const decisions = [];
    for (let i = 0; i < 4; i++) decisions.push(await limiter.take("down", rule));
    // Never throws; the limit still holds (in this process).
    expect(decisions.map((d) => d.allowed)).toEqual([true, true, false, false]);
    expect(decisions[3]?.retryAfterSeconds).toBeGreaterThanOrEqual(1);
    expect(lines.some((line) => line.includes("Redis is unavailable"))).toBe(true);
  });
});

describe("client quotas", () => {
  it("turns the rate_limit metadata into a rule; none means no quota", () => {
    expect(quotaRule({ requests_per_second: 2, burst: 5 })).toEqual({ capacity: 5, refillPerSecond: 2 });
    expect(quotaRule(undefined)).toBeUndefined();
    expect(quotaRule({ requests_per_second: 0, burst: 5 })).toBeUndefined();
  });

  it("reads a client's quota through the tenant-scoped store, cached", async () => {
    const db = await (engines[0] as (typeof engines)[number]).open();
    const store = Store.open({ url: db.url });
    try {
      await store.migrate();
      await store.db.insertInto("tenants").values({ id: "acme", display_name: "Acme", created_at: 0 }).execute();
      const metadata = (extra: Record<string, unknown>) => JSON.stringify({ client_name: "x", ...extra });
      await store.db
        .insertInto("oauth_clients")
        .values([
          {
            tenant_id: "acme",
            client_id: "limited",
            metadata: metadata({ rate_limit: { requests_per_second: 1, burst: 3 } }),
            secret_hash: null,
            created_at: 0,
          },
          { tenant_id: "acme", client_id: "free", metadata: metadata({}), secret_hash: null, created_at: 0 },
        ])
        .execute();
      const quotas = new ClientQuotas(store);
      expect(await quotas.rule("acme", "limited")).toEqual({ capacity: 3, refillPerSecond: 1 });
      expect(await quotas.rule("acme", "free")).toBeUndefined();
      expect(await quotas.rule("acme", "ghost")).toBeUndefined();
    } finally {
      await store.close();
      await db.dispose();
    }
  });
});

describe("configuration and client addresses", () => {
  it("reads rules as <per second>:<burst> or objects, with the documented defaults", () => {
    const config = loadConfig({
      env: { MANDATE_RATE_LIMITS_REGISTRATION: "0.5:20", MANDATE_HTTP_TRUSTED_PROXIES: "10.0.0.0/8, 192.0.2.7" },
    });
    expect(config.rateLimits.enabled).toBe(true);
    expect(config.rateLimits.registration).toEqual({ capacity: 20, refillPerSecond: 0.5 });
    expect(config.rateLimits.failedClientAuth.perClient).toEqual({ capacity: 20, refillPerSecond: 0.1 });
    expect(config.rateLimits.unauthenticatedRpc).toEqual({ capacity: 500, refillPerSecond: 50 });
    expect(config.http.trustedProxies).toEqual(["10.0.0.0/8", "192.0.2.7"]);
    expect(() => loadConfig({ env: { MANDATE_RATE_LIMITS_LOGIN_PER_IP: "fast" } })).toThrow(
      /rateLimits\.login\.perIp \(from env MANDATE_RATE_LIMITS_LOGIN_PER_IP\)/,
    );
    expect(() => loadConfig({ env: { MANDATE_HTTP_TRUSTED_PROXIES: "proxy.example" } })).toThrow(/trustedProxies/);
  });

  it("believes X-Forwarded-For only from trusted proxies, and counts IPv6 clients per /64", () => {
    const request = (remoteAddress: string, forwarded?: string) =>
      ({ socket: { remoteAddress }, headers: forwarded ? { "x-forwarded-for": forwarded } : {} }) as never;
    const direct = new ClientAddresses();
    expect(direct.of(request("::ffff:198.51.100.9", "203.0.113.5"))).toBe("198.51.100.9");
    const behindProxy = new ClientAddresses(["10.0.0.0/8"]);
    expect(behindProxy.of(request("10.1.2.3", "203.0.113.5, 10.9.9.9"))).toBe("203.0.113.5");
    expect(behindProxy.of(request("198.51.100.9", "203.0.113.5"))).toBe("198.51.100.9");
    expect(ClientAddresses.limitKey("2001:db8:1:2:3:4:5:6")).toBe("2001:db8:1:2::/64");
    expect(ClientAddresses.limitKey("198.51.100.9")).toBe("198.51.100.9");
  });
});
