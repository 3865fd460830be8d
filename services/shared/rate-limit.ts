// Token-bucket rate limits (abuse limits on the public surface, per-client quotas). Buckets are shared
// by every replica through Redis when `redis.url` is set — one atomic Lua script per decision, keys
// that expire once the bucket would be full again — and kept in-process otherwise, in a bounded map.
// If Redis cannot answer, the decision falls back to this process's bucket and a warning is logged:
// the limit still holds per replica, and the caller never sees an error. (`mandate dev --workers N`
// without Redis keeps the shared buckets in its primary process instead: runtime/worker-state.ts.)
import { Redis } from "ioredis";
import type { Logger } from "./logger.ts";

/** A token bucket: `capacity` tokens (the burst), refilled continuously at `refillPerSecond`. */
export interface RateRule {
  capacity: number;
  refillPerSecond: number;
}

/** `retryAfterSeconds` is at least 1 when refused (an HTTP Retry-After value), 0 when allowed. */
export interface RateDecision {
  allowed: boolean;
  retryAfterSeconds: number;
}

export interface RateLimiter {
  /**
   * Takes `cost` tokens (default 1) from the bucket `key` under `rule`. A cost of 0 only checks:
   * allowed when at least one token is left, nothing taken (used to refuse a request up front when
   * only its failures are counted).
   */
  take(key: string, rule: RateRule, cost?: number): Promise<RateDecision>;
  close(): Promise<void>;
}

export interface RateLimiterOptions {
  redisUrl?: string | undefined;
  logger?: Logger;
  /** Prefix of the Redis keys (default "mandate:rl:"); tests use their own. */
  keyPrefix?: string;
  /** Clock of the in-process buckets (Redis uses its own clock, the same for every replica). */
  now?: () => number;
  /** Most buckets kept in-process (least recently used ones go first). */
  maxMemoryBuckets?: number;
  /** How long a Redis decision may take before this process decides alone. */
  redisTimeoutMs?: number;
}

export function openRateLimiter(options: RateLimiterOptions): RateLimiter {
  const memory = new MemoryRateLimiter(options.now, options.maxMemoryBuckets);
  return options.redisUrl ? new RedisRateLimiter(options.redisUrl, memory, options) : memory;
}

/** The decision for a bucket holding `tokens` (already refilled), as both implementations make it. */
function decide(tokens: number, rule: RateRule, cost: number): { allowed: boolean; left: number; retry: number } {
  const need = cost > 0 ? cost : 1;
  if (tokens >= need) return { allowed: true, left: tokens - cost, retry: 0 };
  return { allowed: false, left: tokens, retry: Math.max(1, Math.ceil((need - tokens) / rule.refillPerSecond)) };
}

export function checkRateRule(rule: RateRule, cost: number): void {
  if (!(rule.capacity > 0 && rule.refillPerSecond > 0 && Number.isFinite(rule.refillPerSecond))) {
    throw new RangeError("a rate rule needs a positive capacity and refill rate");
  }
  if (!(cost >= 0 && Number.isFinite(cost))) throw new RangeError("the cost of a rate-limited call must be >= 0");
}

export class MemoryRateLimiter implements RateLimiter {
  /** Map order is recency order: a bucket is re-inserted on every use, the oldest evicted first. */
  readonly #buckets = new Map<string, { tokens: number; at: number }>();
  readonly #now: () => number;
  readonly #max: number;

  constructor(now: () => number = Date.now, maxBuckets = 100_000) {
    this.#now = now;
    this.#max = maxBuckets;
  }

  async take(key: string, rule: RateRule, cost = 1): Promise<RateDecision> {
    return this.takeNow(key, rule, cost);
  }

  takeNow(key: string, rule: RateRule, cost = 1): RateDecision {
    checkRateRule(rule, cost);
    const now = this.#now();
    const bucket = this.#buckets.get(key);
    const elapsed = bucket ? Math.max(0, now - bucket.at) / 1000 : 0;
    const tokens = bucket ? Math.min(rule.capacity, bucket.tokens + elapsed * rule.refillPerSecond) : rule.capacity;
    const { allowed, left, retry } = decide(tokens, rule, cost);
    this.#buckets.delete(key);
    // A full bucket is the default state: no need to remember it.
    if (left < rule.capacity) {
      this.#buckets.set(key, { tokens: left, at: now });
      while (this.#buckets.size > this.#max) this.#buckets.delete(this.#buckets.keys().next().value as string);
    }
    return { allowed, retryAfterSeconds: retry };
  }

  get size(): number {
    return this.#buckets.size;
  }

  async close(): Promise<void> {
    this.#buckets.clear();
  }
}

// KEYS[1] bucket; ARGV capacity, refill per second, cost. Redis's clock (TIME) is the one clock all
// replicas share. Returns {allowed (0/1), retry seconds as a string}.
const TAKE_SCRIPT = `
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = capacity
  at = now
end
tokens = math.min(capacity, tokens + math.max(0, now - at) / 1000 * rate)
local need = cost
if need <= 0 then need = 1 end
local allowed = 0
local retry = 0
if tokens >= need then
  allowed = 1
  tokens = tokens - cost
else
  retry = math.ceil((need - tokens) / rate)
  if retry < 1 then retry = 1 end
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - tokens) / rate * 1000) + 1000)
return {allowed, tostring(retry)}
`;

type RedisWithTake = Redis & {
  mandateRateTake(key: string, capacity: number, rate: number, cost: number): Promise<[number, string]>;
};

const WARN_EVERY_MS = 30_000;

/**
 * This process's own buckets, for the decisions the shared ones cannot make: the limit still holds
 * per process, and a warning (at most every 30 s) says which shared store did not answer.
 */
export class FallbackBuckets {
  readonly #memory: MemoryRateLimiter;
  readonly #logger: Logger | undefined;
  readonly #shared: string;
  #warnedAt = Number.NEGATIVE_INFINITY;

  /** `shared`: what holds the shared buckets, for the warning ("Redis", "the primary process"). */
  constructor(memory: MemoryRateLimiter, logger: Logger | undefined, shared: string) {
    this.#memory = memory;
    this.#logger = logger;
    this.#shared = shared;
  }

  take(key: string, rule: RateRule, cost: number, error: unknown): RateDecision {
    const now = Date.now();
    if (now - this.#warnedAt >= WARN_EVERY_MS) {
      this.#warnedAt = now;
      this.#logger?.warn(
        { err: error instanceof Error ? error.message : String(error) },
        `rate limits: ${this.#shared} is unavailable; using this process's buckets`,
      );
    }
    return this.#memory.takeNow(key, rule, cost);
  }

  close(): Promise<void> {
    return this.#memory.close();
  }
}

export class RedisRateLimiter implements RateLimiter {
  readonly #redis: RedisWithTake;
  readonly #fallback: FallbackBuckets;
  readonly #prefix: string;
  readonly #timeoutMs: number;

  constructor(url: string, fallback: MemoryRateLimiter, options: RateLimiterOptions = {}) {
    this.#fallback = new FallbackBuckets(fallback, options.logger, "Redis");
    this.#prefix = options.keyPrefix ?? "mandate:rl:";
    this.#timeoutMs = options.redisTimeoutMs ?? 500;
    // One retry per command and a bounded wait: a limiter must answer quickly, Redis or not.
    const redis = new Redis(url, {
      maxRetriesPerRequest: 1,
      connectTimeout: 2000,
      retryStrategy: (times) => Math.min(times * 200, 2000),
    });
    redis.on("error", () => {});
    redis.defineCommand("mandateRateTake", { numberOfKeys: 1, lua: TAKE_SCRIPT });
    this.#redis = redis as RedisWithTake;
  }

  async take(key: string, rule: RateRule, cost = 1): Promise<RateDecision> {
    checkRateRule(rule, cost);
    const status = this.#redis.status;
    // Reconnecting or closed: do not queue behind a dead connection.
    if (status !== "ready" && status !== "connecting" && status !== "connect" && status !== "wait") {
      return this.#fallback.take(key, rule, cost, new Error(`Redis connection is ${status}`));
    }
    let timer: NodeJS.Timeout | undefined;
    try {
      const [allowed, retry] = await Promise.race([
        this.#redis.mandateRateTake(`${this.#prefix}${key}`, rule.capacity, rule.refillPerSecond, cost),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`no answer from Redis within ${this.#timeoutMs} ms`)),
            this.#timeoutMs,
          );
        }),
      ]);
      return allowed === 1
        ? { allowed: true, retryAfterSeconds: 0 }
        : { allowed: false, retryAfterSeconds: Math.max(1, Number(retry) || 1) };
    } catch (error) {
      return this.#fallback.take(key, rule, cost, error);
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    this.#redis.disconnect();
    await this.#fallback.close();
  }
}
