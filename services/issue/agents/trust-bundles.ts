// Each tenant's agent trust bundle from the CA in the Signer, cached for the bundle's own max age
// (its roots and intermediates also parsed once, for chain verification).
import { X509Certificate } from "node:crypto";
import type { Clock } from "../../shared/clock.ts";
import type { AgentCaClient, AgentTrustBundle } from "../../shared/signing.ts";

/** A bundle is fetched again sooner than its max age when asked to (a certificate names a CA it lacks), at most this often. */
const FORCED_REFRESH_INTERVAL_MS = 10_000;

export interface CachedBundle {
  bundle: AgentTrustBundle;
  roots: X509Certificate[];
  intermediates: X509Certificate[];
  fetchedAt: number;
  expiresAt: number;
}

export class TrustBundles {
  readonly #agentCa: AgentCaClient;
  readonly #clock: Clock;
  readonly #bundles = new Map<string, CachedBundle>();

  constructor(agentCa: AgentCaClient, clock: Clock) {
    this.#agentCa = agentCa;
    this.#clock = clock;
  }

  /** The tenant's bundle; `refresh` fetches it again unless it was fetched just now (a rotation). */
  async of(tenant: string, refresh = false): Promise<CachedBundle> {
    const now = this.#clock.now();
    const cached = this.#bundles.get(tenant);
    if (cached && cached.expiresAt > now && (!refresh || now - cached.fetchedAt < FORCED_REFRESH_INTERVAL_MS)) {
      return cached;
    }
    const bundle = await this.#agentCa.trustBundle(tenant);
    const entry = {
      bundle,
      roots: bundle.roots.map((der) => new X509Certificate(der)),
      intermediates: bundle.intermediates.map((der) => new X509Certificate(der)),
      fetchedAt: now,
      expiresAt: now + bundle.maxAgeSeconds * 1000,
    };
    this.#bundles.set(tenant, entry);
    return entry;
  }
}
