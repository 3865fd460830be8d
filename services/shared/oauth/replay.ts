// One-time-use memory for proof identifiers (DPoP `jti`, RFC 9449 §11.1; client-assertion `jti`,
// RFC 7523 §3 item 7). Replicas must share it, so production uses Redis; the embedded default keeps
// it in-process, which is only correct for a single replica — or, for the workers of `mandate dev
// --workers N`, in their primary process (runtime/worker-state.ts installs it here).
import { Redis } from "ioredis";

/** The shared replay store cannot answer: callers refuse the request (503 / UNAVAILABLE), never let it pass. */
export class ReplayStoreUnavailable extends Error {
  /** `where`: the store that did not answer ("Redis", "the primary process"). */
  constructor(cause: unknown, where = "Redis") {
    super(`the replay cache (${where}) is unavailable`, { cause });
    this.name = "ReplayStoreUnavailable";
  }
}

export interface ReplayCache {
  /** True the first time `key` is seen within `ttlMs`; false on every later sighting (a replay). */
  firstUse(key: string, ttlMs: number): Promise<boolean>;
  close(): Promise<void>;
  readonly kind: "memory" | "redis" | "primary";
}

export class MemoryReplayCache implements ReplayCache {
  readonly kind = "memory" as const;
  readonly #seen = new Map<string, number>();
  readonly #now: () => number;
  #sweepAt = 0;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  async firstUse(key: string, ttlMs: number): Promise<boolean> {
    return this.firstUseNow(key, ttlMs);
  }

  /** firstUse, synchronously (the primary answers a batch of its workers' checks in one message). */
  firstUseNow(key: string, ttlMs: number): boolean {
    const now = this.#now();
    if (now >= this.#sweepAt) this.#sweep(now);
    const until = this.#seen.get(key);
    if (until !== undefined && until > now) return false;
    this.#seen.set(key, now + ttlMs);
    return true;
  }

  #sweep(now: number): void {
    for (const [key, until] of this.#seen) if (until <= now) this.#seen.delete(key);
    this.#sweepAt = now + 10_000;
  }

  async close(): Promise<void> {
    this.#seen.clear();
  }
}

export class RedisReplayCache implements ReplayCache {
  readonly kind = "redis" as const;
  readonly #redis: Redis;

  constructor(url: string) {
    // Fail closed: a command that cannot reach Redis rejects (the request gets a 503), it never passes.
    this.#redis = new Redis(url, { lazyConnect: false, maxRetriesPerRequest: 1, enableOfflineQueue: true });
    this.#redis.on("error", () => {});
  }

  async firstUse(key: string, ttlMs: number): Promise<boolean> {
    // SET NX PX is atomic: of two replicas racing on the same jti exactly one gets "OK".
    try {
      const result = await this.#redis.set(`mandate:replay:${key}`, "1", "PX", Math.max(1, Math.ceil(ttlMs)), "NX");
      return result === "OK";
    } catch (error) {
      throw new ReplayStoreUnavailable(error);
    }
  }

  async close(): Promise<void> {
    this.#redis.disconnect();
  }
}

/** Redis when configured, else this process's memory (a dev worker's is its primary's: runtime/). */
export function openReplayCache(redisUrl: string | undefined): ReplayCache {
  return redisUrl ? new RedisReplayCache(redisUrl) : new MemoryReplayCache();
}
