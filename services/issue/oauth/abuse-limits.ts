// Abuse limits of the OAuth endpoints (config `rateLimits`), as token buckets of the shared rate
// limiter: registrations and authorization requests per client IP; failed client authentications
// per client id and per IP; failed logins per account and per IP (only failures are counted, and a
// request is refused up front while either bucket is empty); and the opt-in per-client quota of an
// authenticated client (`rate_limit` in its metadata), which applies even when `enabled` is off.
import { createHash } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { Config } from "../../shared/config.ts";
import { ClientAddresses } from "../../shared/net/client-ip.ts";
import { quotaKey, quotaRule } from "../../shared/oauth/client-quota.ts";
import type { RateDecision, RateLimiter, RateRule } from "../../shared/rate-limit.ts";
import type { RegisteredClient } from "../clients/metadata.ts";
import { SlowDown } from "./errors.ts";

const ALLOWED: RateDecision = { allowed: true, retryAfterSeconds: 0 };

export class AbuseLimits {
  readonly #limiter: RateLimiter;
  readonly #rules: Config["rateLimits"];
  readonly #addresses: ClientAddresses;

  constructor(limiter: RateLimiter, rules: Config["rateLimits"], trustedProxies: readonly string[]) {
    this.#limiter = limiter;
    this.#rules = rules;
    this.#addresses = new ClientAddresses(trustedProxies);
  }

  /** The client address a request's per-IP limits count under. */
  ipKey(req: IncomingMessage): string {
    return ClientAddresses.limitKey(this.#addresses.of(req));
  }

  /** POST /oauth2/register: one token per attempt, per IP. */
  async registration(req: IncomingMessage): Promise<void> {
    if (!this.#rules.enabled) return;
    const decision = await this.#limiter.take(`reg:${this.ipKey(req)}`, this.#rules.registration);
    if (!decision.allowed) throw new SlowDown(decision.retryAfterSeconds, "too many registrations from this address");
  }

  /** The authorization endpoint: one token per request, per IP (the caller renders the page). */
  async authorize(req: IncomingMessage): Promise<RateDecision> {
    if (!this.#rules.enabled) return ALLOWED;
    return this.#limiter.take(`authz:${this.ipKey(req)}`, this.#rules.authorize);
  }

  /** Refuses a client authentication while its client id or its IP has failed too often. */
  async beforeClientAuthentication(tenant: string, clientId: string | undefined, req: IncomingMessage): Promise<void> {
    if (!this.#rules.enabled) return;
    const refused = await this.#check(this.#clientAuthBuckets(tenant, clientId, req), 0);
    if (refused) throw new SlowDown(refused, "too many failed client authentications; retry later");
  }

  async clientAuthenticationFailed(tenant: string, clientId: string | undefined, req: IncomingMessage): Promise<void> {
    if (!this.#rules.enabled) return;
    await this.#check(this.#clientAuthBuckets(tenant, clientId, req), 1);
  }

  /** Seconds to wait before this account or IP may try a password again; 0 when it may now. */
  async beforeLogin(tenant: string, username: string, req: IncomingMessage): Promise<number> {
    if (!this.#rules.enabled) return 0;
    return this.#check(this.#loginBuckets(tenant, username, req), 0);
  }

  /** Counts a wrong password; returns the seconds to wait when this failure used up a bucket. */
  async loginFailed(tenant: string, username: string, req: IncomingMessage): Promise<number> {
    if (!this.#rules.enabled) return 0;
    await this.#check(this.#loginBuckets(tenant, username, req), 1);
    return this.#check(this.#loginBuckets(tenant, username, req), 0);
  }

  /** The client's own quota (metadata rate_limit), for every request it authenticates. */
  async quota(client: RegisteredClient): Promise<void> {
    const rule = quotaRule(client.metadata.rate_limit);
    if (!rule) return;
    const decision = await this.#limiter.take(quotaKey(client.tenant, client.clientId), rule);
    if (!decision.allowed) {
      throw new SlowDown(decision.retryAfterSeconds, "the client exceeded its request quota (rate_limit)");
    }
  }

  #clientAuthBuckets(tenant: string, clientId: string | undefined, req: IncomingMessage): Array<[string, RateRule]> {
    const { perClient, perIp } = this.#rules.failedClientAuth;
    const buckets: Array<[string, RateRule]> = [[`fca:ip:${this.ipKey(req)}`, perIp]];
    if (clientId) buckets.push([`fca:client:${tenant}:${bounded(clientId)}`, perClient]);
    return buckets;
  }

  #loginBuckets(tenant: string, username: string, req: IncomingMessage): Array<[string, RateRule]> {
    const { perAccount, perIp } = this.#rules.login;
    return [
      [`login:ip:${this.ipKey(req)}`, perIp],
      [`login:account:${tenant}:${bounded(username.toLowerCase())}`, perAccount],
    ];
  }

  /** Takes `cost` from each bucket; the longest Retry-After of the refusals, 0 when none refused. */
  async #check(buckets: Array<[string, RateRule]>, cost: number): Promise<number> {
    const decisions = await Promise.all(buckets.map(([key, rule]) => this.#limiter.take(key, rule, cost)));
    return Math.max(0, ...decisions.filter((d) => !d.allowed).map((d) => d.retryAfterSeconds));
  }
}

/** Keys stay short whatever a request claims (client ids and usernames come from the caller). */
function bounded(value: string): string {
  return value.length <= 128 ? value : `h:${createHash("sha256").update(value).digest("base64url")}`;
}
