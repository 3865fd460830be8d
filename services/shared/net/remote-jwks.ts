// JWK Sets published at a URL someone else chose (a client's jwks_uri, RFC 7591 §2), fetched only
// through the SSRF-safe fetcher and cached. Every way a fetch can fail — refused address, DNS error,
// connection refused, timeout, an HTTP error, a body that is not a JWK Set — surfaces as the same
// JwksUnavailable, so callers can answer without telling an attacker which hosts or ports respond.
import { createLocalJWKSet, errors, type JSONWebKeySet, type JWTVerifyGetKey } from "jose";
import { safeFetch } from "./safe-fetch.ts";

export class JwksUnavailable extends Error {
  constructor(options?: { cause?: unknown }) {
    super("the JWK Set could not be retrieved", options);
    this.name = "JwksUnavailable";
  }
}

export interface RemoteJwksOptions {
  /** Tests only: allow loopback and private addresses. */
  allowPrivate?: boolean | undefined;
  now?: () => number;
  timeoutMs?: number;
  maxBytes?: number;
  /** How long a fetched set is used before it is fetched again. */
  ttlMs?: number;
  /** Least time between two fetches of one URL (a failed one included), so keys cannot be used to hammer a host. */
  cooldownMs?: number;
  maxEntries?: number;
}

interface Entry {
  keys?: JWTVerifyGetKey | undefined;
  fetchedAt: number;
  pending?: Promise<JWTVerifyGetKey> | undefined;
}

export class RemoteJwks {
  readonly #entries = new Map<string, Entry>();
  readonly #options: Required<Omit<RemoteJwksOptions, "allowPrivate">> & { allowPrivate: boolean };

  constructor(options: RemoteJwksOptions = {}) {
    this.#options = {
      allowPrivate: options.allowPrivate ?? false,
      now: options.now ?? Date.now,
      timeoutMs: options.timeoutMs ?? 3000,
      maxBytes: options.maxBytes ?? 64 * 1024,
      ttlMs: options.ttlMs ?? 5 * 60_000,
      cooldownMs: options.cooldownMs ?? 30_000,
      maxEntries: options.maxEntries ?? 10_000,
    };
  }

  /** A jose key resolver for `uri`: refetches once (after the cooldown) when no key matches the token's kid. */
  getKey(uri: string): JWTVerifyGetKey {
    return async (header, token) => {
      const keys = await this.#load(uri, false);
      try {
        return await keys(header, token);
      } catch (error) {
        if (!(error instanceof errors.JWKSNoMatchingKey)) throw error;
        const fresher = await this.#load(uri, true);
        if (fresher === keys) throw error;
        return fresher(header, token);
      }
    };
  }

  async #load(uri: string, keyMissing: boolean): Promise<JWTVerifyGetKey> {
    const now = this.#options.now();
    let entry = this.#entries.get(uri);
    if (entry?.pending) return entry.pending;
    const age = entry ? now - entry.fetchedAt : Number.POSITIVE_INFINITY;
    if (entry && age < this.#options.cooldownMs) {
      if (entry.keys) return entry.keys;
      throw new JwksUnavailable();
    }
    if (entry?.keys && !keyMissing && age < this.#options.ttlMs) return entry.keys;
    if (!entry) {
      if (this.#entries.size >= this.#options.maxEntries)
        this.#entries.delete(this.#entries.keys().next().value as string);
      entry = { fetchedAt: now };
      this.#entries.set(uri, entry);
    }
    const current = entry;
    current.fetchedAt = now;
    current.pending = this.#fetch(uri).then(
      (keys) => {
        current.keys = keys;
        current.pending = undefined;
        return keys;
      },
      (error: unknown) => {
        // A failed refresh keeps no stale keys: the publisher may have withdrawn them.
        current.keys = undefined;
        current.pending = undefined;
        throw error;
      },
    );
    return current.pending;
  }

  async #fetch(uri: string): Promise<JWTVerifyGetKey> {
    try {
      const response = await safeFetch(uri, {
        maxBytes: this.#options.maxBytes,
        timeoutMs: this.#options.timeoutMs,
        allowPrivate: this.#options.allowPrivate,
        accept: "application/jwk-set+json, application/json",
      });
      if (response.status !== 200) throw new Error(`HTTP ${response.status}`);
      const set = JSON.parse(response.body) as JSONWebKeySet;
      if (typeof set !== "object" || set === null || !Array.isArray(set.keys)) throw new Error("not a JWK Set");
      return createLocalJWKSet(set);
    } catch (error) {
      throw new JwksUnavailable({ cause: error });
    }
  }
}
