// Per-client quotas for authenticated traffic: the opt-in `rate_limit` of a client's metadata
// ({requests_per_second, burst}, set by an administrator) as a token-bucket rule. Any process can
// read it (the store is shared); answers are cached for a few seconds, so a changed quota applies
// everywhere within that time. A client without one is never throttled.
import type { RateRule } from "../rate-limit.ts";
import type { Store } from "../store/store.ts";

/** The client metadata member (RFC 7591-style snake case, as stored). */
export interface ClientRateLimit {
  requests_per_second: number;
  burst: number;
}

/** The bucket rule of a client's quota. */
export function quotaRule(limit: ClientRateLimit | undefined): RateRule | undefined {
  if (!limit || !(limit.requests_per_second > 0) || !(limit.burst >= 1)) return undefined;
  return { capacity: limit.burst, refillPerSecond: limit.requests_per_second };
}

/** The bucket key of a client's quota: the OAuth endpoints and the RPC layer share it. */
export function quotaKey(tenant: string, clientId: string): string {
  return `quota:${tenant}:${clientId}`;
}

const TTL_MS = 5000;
const MAX_ENTRIES = 10_000;

export class ClientQuotas {
  readonly #store: Store;
  readonly #now: () => number;
  readonly #cache = new Map<string, { rule: RateRule | undefined; until: number }>();

  constructor(store: Store, now: () => number = Date.now) {
    this.#store = store;
    this.#now = now;
  }

  /** The client's quota, or undefined when it has none (or does not exist). */
  async rule(tenant: string, clientId: string): Promise<RateRule | undefined> {
    const key = `${tenant}\n${clientId}`;
    const now = this.#now();
    const hit = this.#cache.get(key);
    if (hit && hit.until > now) return hit.rule;
    const row = await this.#store
      .forTenant(tenant)
      .db.selectFrom("oauth_clients")
      .select("metadata")
      .where("tenant_id", "=", tenant)
      .where("client_id", "=", clientId)
      .executeTakeFirst();
    let rule: RateRule | undefined;
    if (row) {
      try {
        rule = quotaRule((JSON.parse(row.metadata) as { rate_limit?: ClientRateLimit }).rate_limit);
      } catch {
        rule = undefined;
      }
    }
    if (this.#cache.size >= MAX_ENTRIES) this.#cache.clear();
    this.#cache.set(key, { rule, until: now + TTL_MS });
    return rule;
  }
}
