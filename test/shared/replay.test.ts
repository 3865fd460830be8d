// The one-time-use memory behind DPoP and client-assertion replay detection: in-process, and in
// Redis (the real server on 127.0.0.1:6379) where replicas must share it.
import { randomUUID } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import {
  MemoryReplayCache,
  RedisReplayCache,
  type ReplayCache,
  ReplayStoreUnavailable,
} from "../../services/shared/oauth/replay.ts";

const REDIS_URL = process.env.MANDATE_TEST_REDIS_URL ?? "redis://127.0.0.1:6379/0";
const opened: ReplayCache[] = [];
const open = (make: () => ReplayCache) => {
  const cache = make();
  opened.push(cache);
  return cache;
};
afterAll(async () => {
  for (const cache of opened) await cache.close();
});

describe.each([
  ["memory", () => new MemoryReplayCache()],
  ["redis", () => new RedisReplayCache(REDIS_URL)],
] as const)("%s replay cache", (_name, make) => {
  it("accepts a key once within its lifetime, and again after it lapses", async () => {
    const cache = open(make);
    const key = `test:${randomUUID()}`;
    expect(await cache.firstUse(key, 200)).toBe(true);
    expect(await cache.firstUse(key, 200)).toBe(false);
    expect(await cache.firstUse(`${key}:other`, 200)).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(await cache.firstUse(key, 200)).toBe(true);
  });

  it("lets exactly one of many concurrent uses through", async () => {
    const cache = open(make);
    const key = `test:${randomUUID()}`;
    const results = await Promise.all(Array.from({ length: 20 }, () => cache.firstUse(key, 5000)));
    expect(results.filter(Boolean)).toHaveLength(1);
  });
});

describe("redis replay cache across replicas", () => {
  it("is shared: a key used through one connection is a replay through another", async () => {
    const a = open(() => new RedisReplayCache(REDIS_URL));
    const b = open(() => new RedisReplayCache(REDIS_URL));
    const key = `test:${randomUUID()}`;
    expect(await a.firstUse(key, 5000)).toBe(true);
    expect(await b.firstUse(key, 5000)).toBe(false);
  });

  it("fails closed when Redis is unreachable: the check rejects instead of passing", async () => {
    const down = open(() => new RedisReplayCache("redis://127.0.0.1:1/0"));
    await expect(down.firstUse(`test:${randomUUID()}`, 5000)).rejects.toBeInstanceOf(ReplayStoreUnavailable);
  });
});
